"""`modaclip serve` as a process: the served version, and a new one swapped in when production moves.

A server of production (`--model production`, or `auto` once the registry has one) checks the
registry every `serve.follow_seconds` (for a server in its own clone, after `git fetch REMOTE --tags`;
the version's files then come from the DVC remote through `model_versions.materialise`). When production
moved, by a promote or a rollback, the new version's engine, images and text encoder process are
loaded on a worker thread beside the ones serving, then swapped in with one assignment. Each request
leases the version live when it arrived (`Serving.lease`, by an ASGI middleware) and reads it through
`Serving.current()`, so it finishes on the version it started on; the old text encoder stops when the
old version's last request is done, and the rest of it is freed with its last reference.

A load that fails (a version whose files cannot be restored, a text encoder that will not start)
leaves the old version serving, and /health says `degraded` with the reason until a check succeeds.
The search log (feedback/search_log.py) belongs to the process, not to a version: every version's
service writes to the same one, each search naming the version that answered it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import faiss
import numpy as np
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from modaclip.core.errors import ModaclipError
from modaclip.core.git import git
from modaclip.embed.index import index_kind_of
from modaclip.embed.stored import TOWERS_DIR
from modaclip.feedback.search_log import LogConfig, SearchLog
from modaclip.registry import model_versions
from modaclip.registry.model_choice import PRODUCTION, SearchSource, no_production_message, version_source
from modaclip.search.engine import CatalogSearch
from modaclip.serve.app import ModelWorkers, Service, ServiceSettings, app_for, build_service
from modaclip.serve.catalog_images import CatalogImages
from modaclip.serve.text_encoder_process import SupervisedTextEncoder, TextEncoderProcess

log = logging.getLogger(__name__)

PROBES = ["red summer dress", "men black leather shoes"]
RETIRED_GRACE_S = 60.0  # a request still running this long on a swapped-out version loses its text encoder


@dataclass(frozen=True)
class Follow:
    """What a server follows: the registry of `root`, checked every `every_s` seconds (0: pinned), its tags
    fetched from the git remote `fetch_from` first when one is named. `requested` is the `--model` given."""

    root: Path
    requested: str
    every_s: float
    fetch_from: str = ""


@dataclass(eq=False)
class Generation:
    """One loaded version: the service its requests use and the text encoder process it owns."""

    service: Service
    encoder: SupervisedTextEncoder
    loaded_at: datetime
    leases: int = 0  # requests running on it
    retired: bool = False  # swapped out: its encoder stops when `leases` reaches 0

    @property
    def source(self) -> SearchSource:
        return self.service.settings.source


def start_text_encoder(
    source: SearchSource, engine: CatalogSearch, threads: int, timeout_s: float
) -> SupervisedTextEncoder:
    """The supervised child process that embeds text queries, checked to embed as the served model does."""
    start = partial(TextEncoderProcess, source.model, Path(source.embeddings) / TOWERS_DIR, threads)
    encoder = SupervisedTextEncoder(start, timeout_s)
    try:
        if not np.allclose(encoder(PROBES), engine.embedder.embed_texts(PROBES), atol=1e-4):
            raise ModaclipError(f"the text encoder process loaded {source.model} but embeds differently from it")
    except BaseException:
        encoder.close()
        raise
    return encoder


def load_generation(
    source: SearchSource, settings: ServiceSettings, workers: ModelWorkers, text_threads: int
) -> Generation:
    """Everything one version serves with (engine, images, text encoder), loaded beside whatever serves now."""
    engine = CatalogSearch.open(source.model, source.embeddings, source.catalog)
    images = CatalogImages.load(engine.catalog_dir, engine.ids.tolist())
    encoder = start_text_encoder(source, engine, text_threads, settings.limits.encode_timeout_s)
    service = build_service(engine, images, replace(settings, source=source), text_encoder=encoder, workers=workers)
    log.info(
        "loaded %s: %d products, %.1f MB of images, %s index",
        source.description,
        len(engine),
        images.nbytes / 2**20,
        index_kind_of(engine.index),
    )
    return Generation(service, encoder, _now())


_leased: ContextVar[Generation | None] = ContextVar("modaclip_leased_generation", default=None)


class Serving:
    """The version being served, swapped in one step when production moves (app.Served for the routes)."""

    def __init__(self, first: Generation, follow: Follow, load: Callable[[SearchSource], Generation]) -> None:
        self._live = first
        self._follow = follow
        self._load = load
        self._last_check: datetime | None = None
        self._problem: str | None = None
        self._app: FastAPI | None = None  # the app serving, told of each swap (its /metrics read the live version)

    def current(self) -> Service:
        """The service of the version this request started on (the live one outside a request)."""
        return (_leased.get() or self._live).service

    @contextmanager
    def lease(self) -> Iterator[Service]:
        """Hold the live version for one request; a swapped-out version's encoder stops after its last one."""
        generation = self._live
        generation.leases += 1
        token = _leased.set(generation)
        try:
            yield generation.service
        finally:
            _leased.reset(token)
            generation.leases -= 1
            if generation.retired and not generation.leases:
                _stop_soon(generation.encoder)

    def status(self) -> dict[str, Any]:
        """What /health adds: ok or degraded (and why), when this version was loaded, and the last check."""
        return {
            "status": "degraded" if self._problem else "ok",
            "problem": self._problem,
            "loaded": self._live.loaded_at.isoformat(),
            "follow": {
                "model": self._follow.requested,
                "every_s": self._follow.every_s,
                "fetch_from": self._follow.fetch_from or None,
                "last_check": self._last_check.isoformat() if self._last_check else None,
            },
        }

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """The checker runs while the server does (when following); the live encoder stops with the server.

        The search log is flushed and closed here, as the app stops: on SIGTERM uvicorn re-raises the signal
        once the app has stopped, so nothing after `uvicorn.run` runs."""
        checker = asyncio.create_task(self._check_forever()) if self._follow.every_s > 0 else None
        try:
            yield
        finally:
            if checker:
                checker.cancel()
                with suppress(asyncio.CancelledError):
                    await checker
            search_log = self._live.service.settings.search_log
            if search_log is not None:
                await anyio.to_thread.run_sync(search_log.close)

    def attach(self, app: FastAPI) -> None:
        """The app whose `state.service` each swap replaces (what /metrics and unleased calls read)."""
        self._app = app

    def close(self) -> None:
        self._live.encoder.close()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self._follow.every_s)
            await self.check()

    async def check(self) -> None:
        """Look at the registry once; a moved production is loaded on a worker thread, then swapped in."""
        try:
            loaded = await anyio.to_thread.run_sync(self._load_if_moved, abandon_on_cancel=True)
        except Exception as err:  # any failed load keeps the old version serving; /health says why
            self._report(f"{_one_line(err)}; still serving {self._live.source.description}", err)
        else:
            self._problem = None
            if loaded is not None:
                self._swap(loaded)
        finally:
            self._last_check = _now()

    def _load_if_moved(self) -> Generation | None:
        """The new production's generation, or None when production is what serves (worker thread)."""
        root, live = self._follow.root, self._live.source
        if self._follow.fetch_from:
            fetch_tags(root, self._follow.fetch_from)
        version = model_versions.production(root)
        if version is None:
            if live.kind == PRODUCTION:
                raise ModaclipError(no_production_message(root))
            return None  # auto, still before the first promotion: the working tree's model serves
        if live.kind == PRODUCTION and live.version == version.version:
            return None
        log.info("production is now %s: loading it beside %s", version.version, live.description)
        try:
            return self._load(version_source(root, version))
        except ModaclipError as err:
            raise ModaclipError(f"cannot load production {version.version}: {err}") from err

    def _swap(self, new: Generation) -> None:
        """One assignment: requests from now on get `new`; the old one's encoder stops after its last request."""
        old, self._live = self._live, new
        if self._app is not None:
            self._app.state.service = new.service
        old.retired = True
        log.info("now serving %s (was %s)", new.source.description, old.source.description)
        if not old.leases:
            _stop_soon(old.encoder)
        else:
            asyncio.get_running_loop().call_later(RETIRED_GRACE_S, _stop_soon, old.encoder)

    def _report(self, problem: str, err: Exception) -> None:
        if problem != self._problem:  # once per distinct problem, not at every check
            log.error("%s", problem, exc_info=not isinstance(err, ModaclipError))
        self._problem = problem


def _stop_soon(encoder: SupervisedTextEncoder) -> None:
    """Stop a swapped-out text encoder on a worker thread (closing waits for the child to exit)."""
    asyncio.get_running_loop().run_in_executor(None, encoder.close)


def fetch_tags(root: Path, remote: str) -> None:
    """`git fetch REMOTE --tags`: the registry's moves made elsewhere (GTO tags and the commits they name)."""
    try:
        git(root, "fetch", "--quiet", "--tags", remote)
    except ModaclipError as err:
        raise ModaclipError(f"cannot fetch the registry's tags: {err}") from err


class LeaseMiddleware:
    """Each HTTP request runs on the version live when it arrived, from its first byte to its last."""

    def __init__(self, app: ASGIApp, serving: Serving) -> None:
        self.app, self.serving = app, serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.serving.lease() as service:
            scope.setdefault("state", {})["service"] = service  # what app.current_service gives the routes
            await self.app(scope, receive, send)


def following_app(serving: Serving) -> FastAPI:
    """The app over the live version, each request leasing the version live when it arrived."""
    app = app_for(serving.current(), lifespan=serving.lifespan, follow_status=serving.status)
    app.add_middleware(LeaseMiddleware, serving=serving)
    serving.attach(app)
    return app


def serve(settings: ServiceSettings, follow: Follow, search_log: LogConfig | None) -> None:
    """Load `settings.source`, start its text encoder process, answer requests (following production) until
    interrupted, logging searches and events to `search_log` (None: no log); the log is closed at the end."""
    faiss.omp_set_num_threads(1)  # a single query's index search is too small to gain from threads
    opened = open_search_log(search_log)  # first: a bad path fails before the slow load
    try:
        serve_with(replace(settings, search_log=opened), follow)
    finally:
        if opened is not None:
            opened.close()


def open_search_log(config: LogConfig | None) -> SearchLog | None:
    if config is None:
        log.info("search log off (--no-log)")
        return None
    kept = f"{config.retention_days} days kept" if config.retention_days else "kept forever"
    log.info("search log: %s (%s; --no-log turns it off)", config.path, kept)
    return SearchLog(config)


def serve_with(settings: ServiceSettings, follow: Follow) -> None:
    params = settings.params
    text_threads = params.text_threads or max(1, (os.cpu_count() or 2) // 2)  # 0: half the cores
    log.info("starting the text encoder process (%d thread%s)", text_threads, "s"[: text_threads > 1])
    workers = ModelWorkers(params.threads)  # one bound on heavy calls, whichever version they run on
    load = partial(load_generation, settings=settings, workers=workers, text_threads=text_threads)
    serving = Serving(load(settings.source), follow, load)
    if follow.every_s:
        fetched = f", its tags fetched from {follow.fetch_from}" if follow.fetch_from else ""
        log.info("following production: the registry is checked every %g s%s", follow.every_s, fetched)
    limits = settings.limits
    try:
        uvicorn.run(
            following_app(serving),
            host=params.host,
            port=params.port,
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=limits.keep_alive_s,
            timeout_graceful_shutdown=limits.shutdown_s,
        )
    finally:
        serving.close()


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or err.__class__.__name__


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
