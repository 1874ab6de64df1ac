"""A server that follows production: swaps on a promote and a rollback, keeps the old version when the new
one cannot load, lets in-flight requests finish on the version they started on.

The registry is real (GTO tags in a tiny git repo); each version's files are the tiny served model, and
a version's catalog is told apart by its size (v2 serves the first 40 products)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_registry import commit, repo  # noqa: F401 (the fixture)
from test_serve import started  # noqa: F401 (the fixture)

from modaclip.cli import main
from modaclip.core.config import ServeParams
from modaclip.core.errors import ModaclipError
from modaclip.core.git import git
from modaclip.registry import model_versions
from modaclip.registry.model_choice import SearchSource, search_source_for
from modaclip.search.engine import CatalogSearch
from modaclip.serve.app import ServiceSettings, build_service
from modaclip.serve.catalog_images import CatalogImages
from modaclip.serve.follow import Follow, Generation, Serving, following_app

SMALL = 40  # products v2's catalog keeps


class FakeEncoder:
    """Stands in for the text encoder process: embeds in this process, can hold a batch until released."""

    def __init__(self, engine: CatalogSearch) -> None:
        self.engine = engine
        self.closed = False
        self.release: asyncio.Event | None = None

    async def encode(self, texts: list[str]) -> np.ndarray:
        if self.release is not None:
            await self.release.wait()
        return self.engine.embedder.embed_texts(texts)

    def close(self) -> None:
        self.closed = True


def first_products(engine: CatalogSearch, count: int) -> CatalogSearch:
    return CatalogSearch(
        engine.embedder,
        engine.ids[:count],
        engine.vectors[:count],
        info=engine.info.iloc[:count],
        catalog_dir=engine.catalog_dir,
    )


@pytest.fixture
def registry_of_two(repo: Path, served_paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """v1 in production, v2 staged; restoring a version gives the served model's folders."""
    monkeypatch.setattr(model_versions, "materialise", lambda root, version: dict(served_paths))
    for n, stage in ((1, model_versions.PROD_STAGE), (2, model_versions.STAGING_STAGE)):
        head = commit(repo, {"metrics/eval.json": "{}", "round": str(n)}, f"run {n}")
        model_versions.register(repo, head, f"v{n}.0.0", stage=stage, reason=f"round {n}")
    return repo


@pytest.fixture
def loader(served_engine: CatalogSearch, served_images: CatalogImages) -> dict[str, Any]:
    """What loads a version (v2 with a smaller catalog), the encoders it started, and versions that fail to load."""
    made: dict[str, Any] = {"encoders": {}, "failing": set()}

    def load(source: SearchSource) -> Generation:
        if source.version in made["failing"]:
            raise ModaclipError(f"cannot restore modaclip-model@{source.version} from the DVC cache")
        engine = first_products(served_engine, SMALL) if source.version == "v2.0.0" else served_engine
        encoder = FakeEncoder(engine)
        made["encoders"].setdefault(source.version, []).append(encoder)
        settings = ServiceSettings(source=source, params=ServeParams())
        service = build_service(engine, served_images, settings, encode_text=encoder.encode)
        return Generation(service, encoder, datetime.now(timezone.utc))  # type: ignore[arg-type]

    made["load"] = load
    return made


def serving_production(root: Path, loader: dict[str, Any]) -> Serving:
    load: Callable[[SearchSource], Generation] = loader["load"]
    return Serving(load(search_source_for("production", root=root)), Follow(root, "production", 30), load)


def run(session: Callable[[httpx.AsyncClient], Any], serving: Serving) -> Any:
    async def main() -> Any:
        transport = httpx.ASGITransport(app=following_app(serving))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await session(client)

    return asyncio.run(main())


def test_a_promote_and_a_rollback_are_followed_and_health_names_the_version(
    registry_of_two: Path, loader: dict[str, Any], served_engine: CatalogSearch
) -> None:
    serving = serving_production(registry_of_two, loader)

    async def session(client: httpx.AsyncClient) -> list[dict]:
        seen = [(await client.get("/health")).json()]
        await serving.check()  # nothing moved
        seen.append({**(await client.get("/health")).json(), "v1 loads": len(loader["encoders"]["v1.0.0"])})
        model_versions.promote(registry_of_two, "v2")
        await serving.check()
        seen.append((await client.get("/health")).json())
        seen.append((await client.get("/api/facets")).json())
        model_versions.rollback(registry_of_two)
        await serving.check()
        seen.append((await client.get("/health")).json())
        return seen

    start, unchanged, promoted, facets, rolled_back = run(session, serving)
    assert (start["version"], start["status"], start["follow"]["last_check"]) == ("v1.0.0", "ok", None)
    assert unchanged["version"] == "v1.0.0" and unchanged["follow"]["last_check"] is not None
    assert unchanged["v1 loads"] == 1, "an unchanged production is not loaded again"
    assert (promoted["version"], promoted["status"], promoted["catalog_size"]) == ("v2.0.0", "ok", SMALL)
    assert promoted["model"].startswith("production v2.0.0") and promoted["since"] is not None
    assert facets["catalog_size"] == SMALL, "the routes serve the new version's catalog"
    assert (rolled_back["version"], rolled_back["catalog_size"]) == ("v1.0.0", len(served_engine))
    assert rolled_back["since"] > promoted["since"], "since: when production last moved"
    assert loader["encoders"]["v1.0.0"][0].closed and loader["encoders"]["v2.0.0"][0].closed
    assert not loader["encoders"]["v1.0.0"][1].closed, "the live version's encoder runs"


def test_a_failed_load_keeps_the_old_version_serving_and_health_says_degraded(
    registry_of_two: Path, loader: dict[str, Any]
) -> None:
    serving = serving_production(registry_of_two, loader)
    loader["failing"].add("v2.0.0")

    async def session(client: httpx.AsyncClient) -> list[Any]:
        model_versions.promote(registry_of_two, "v2")
        await serving.check()
        health = (await client.get("/health")).json()
        search = await client.get("/api/search", params={"q": "red dress", "k": 100})
        health["v1 stopped"] = loader["encoders"]["v1.0.0"][0].closed
        loader["failing"].clear()  # the DVC remote is back
        await serving.check()
        return [health, search, (await client.get("/health")).json()]

    degraded, search, recovered = run(session, serving)
    assert (degraded["status"], degraded["version"]) == ("degraded", "v1.0.0")
    assert degraded["problem"].startswith("cannot load production v2.0.0: cannot restore")
    assert "still serving production v1.0.0" in degraded["problem"] and "\n" not in degraded["problem"]
    assert search.status_code == 200 and len(search.json()["results"]) == 100, "the old version keeps answering"
    assert not degraded["v1 stopped"]
    assert (recovered["status"], recovered["problem"], recovered["version"]) == ("ok", None, "v2.0.0")


def test_production_gone_from_view_keeps_serving_and_says_degraded(
    registry_of_two: Path, loader: dict[str, Any]
) -> None:
    serving = serving_production(registry_of_two, loader)
    for tag in git(registry_of_two, "tag", "-l", "*#prod#*").split():
        git(registry_of_two, "tag", "-d", tag)  # as in a clone whose prod tags were lost

    async def session(client: httpx.AsyncClient) -> dict:
        await serving.check()
        return (await client.get("/health")).json()

    health = run(session, serving)
    assert (health["status"], health["version"]) == ("degraded", "v1.0.0")
    assert "no production version is visible" in health["problem"]


def test_requests_in_flight_finish_on_the_version_they_started_on(
    registry_of_two: Path, loader: dict[str, Any], served_engine: CatalogSearch
) -> None:
    serving = serving_production(registry_of_two, loader)
    old = loader["encoders"]["v1.0.0"][0]
    old.release = asyncio.Event()

    async def session(client: httpx.AsyncClient) -> list[Any]:
        in_flight = asyncio.create_task(client.get("/api/search", params={"q": "red dress", "k": 100}))
        while old.release is not None and serving._live.leases == 0:  # the request holds v1
            await asyncio.sleep(0.01)
        model_versions.promote(registry_of_two, "v2")
        await serving.check()
        during = (await client.get("/api/facets")).json()["catalog_size"]
        closed_before_it_ended = old.closed
        old.release.set()
        response = await in_flight
        await asyncio.sleep(0.2)  # the old encoder is stopped on a worker thread
        return [during, closed_before_it_ended, response, old.closed]

    during, closed_early, response, closed_after = run(session, serving)
    assert during == SMALL, "a new request is answered by v2 while the old one runs"
    assert response.status_code == 200 and len(response.json()["results"]) == 100, "finished on v1's catalog"
    assert not closed_early and closed_after, "v1's encoder stopped only after its last request"


def test_auto_serves_the_working_tree_until_the_first_promotion_then_follows_production(
    repo: Path,  # noqa: F811
    loader: dict[str, Any],
    served_paths: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_versions, "materialise", lambda root, version: dict(served_paths))
    load = loader["load"]
    serving = Serving(load(search_source_for("auto", root=repo)), Follow(repo, "auto", 30), load)

    async def session(client: httpx.AsyncClient) -> list[dict]:
        before = (await client.get("/health")).json()
        await serving.check()
        model_versions.register(
            repo,
            commit(repo, {"metrics/eval.json": "{}"}, "run 1"),
            "v1.0.0",
            stage=model_versions.PROD_STAGE,
            reason="",
        )
        await serving.check()
        return [before, (await client.get("/health")).json()]

    before, after = run(session, serving)
    assert (before["source"], before["version"], before["status"]) == ("pipeline", None, "ok")
    assert "working tree's fine-tuned model" in before["model"] and before["follow"]["model"] == "auto"
    assert (after["source"], after["version"]) == ("production", "v1.0.0")


def test_serve_follows_with_auto_or_production_and_pins_anything_else(
    repo: Path,  # noqa: F811
    served_paths: dict[str, Path],
    started: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(repo)
    (repo / "params.yaml").write_text("serve:\n  follow_seconds: 7\n")
    main(["serve"])
    assert (started["source"].kind, started["follow"].requested, started["follow"].every_s) == ("pipeline", "auto", 7)
    main(["serve", "--follow-seconds", "0"])
    assert started["follow"].every_s == 0
    main(["serve", "--model", str(served_paths["model"])])
    assert started["follow"].every_s == 0, "a model folder is pinned"
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--model", "production"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "no production version is visible" in err
    with pytest.raises(SystemExit):
        main(["serve", "--follow-seconds", "-1"])
    err = capsys.readouterr().err
    assert "--follow-seconds (serve.follow_seconds): Input should be greater than or equal to 0 (got -1)" in err
