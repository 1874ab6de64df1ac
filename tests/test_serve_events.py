"""The search log through the real app: every search answer carries a search_id and lands in the log file with
what was shown, POST /api/events records what the shopper did, a failing store leaves searches answering and is
reported in /health and /metrics, `--log`/`--no-log` pick the file, and a following server keeps one log."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from test_follow import FakeEncoder, registry_of_two  # noqa: F401 (the fixture)
from test_registry import repo  # noqa: F401 (the fixture registry_of_two uses)
from test_search_log import full_store
from test_serve import assert_error, make_client, product_image, started  # noqa: F401 (the fixture)

from modaclip.cli import main
from modaclip.core.config import ServeParams
from modaclip.feedback import log_schema
from modaclip.feedback.log_schema import read_log
from modaclip.feedback.search_log import LogConfig, LogStats, SearchLog
from modaclip.registry import model_versions
from modaclip.registry.model_choice import search_source_for
from modaclip.search.engine import CatalogSearch
from modaclip.serve import follow
from modaclip.serve.app import ModelWorkers, ServiceSettings
from modaclip.serve.catalog_images import CatalogImages
from modaclip.serve.follow import Follow, Serving, following_app

PAGE = 5


@dataclass
class Logged:
    """A test client over an app that logs to `path`, and its log."""

    client: TestClient
    log: SearchLog
    path: Path

    def stats_when(self, done: Callable[[LogStats], bool], timeout_s: float = 20) -> LogStats:
        deadline = time.monotonic() + timeout_s
        while not done(stats := self.log.stats()):
            assert time.monotonic() < deadline, f"the log writer never got there: {stats}"
            time.sleep(0.02)
        return stats


@pytest.fixture
def logged(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path], tmp_path: Path
) -> Iterator[Callable[..., Logged]]:
    """Opens apps that log to tmp_path/log.sqlite (through `connect` when given); all closed at the end."""
    opened: list[tuple[TestClient, SearchLog]] = []

    def open_app(connect: Any = log_schema.connect) -> Logged:
        path = tmp_path / "log.sqlite"
        search_log = SearchLog(LogConfig(path, 90), connect=connect)
        client = make_client(served_engine, served_images, served_paths, search_log=search_log).__enter__()
        opened.append((client, search_log))
        return Logged(client, search_log, path)

    yield open_app
    for client, search_log in opened:
        client.__exit__(None, None, None)
        search_log.close()


def ids(page: dict[str, Any]) -> list[str]:
    return [str(hit["id"]) for hit in page["results"]]


def test_each_search_and_event_through_the_app_lands_in_the_log(
    logged: Callable[..., Logged], served_engine: CatalogSearch, served_images: CatalogImages
) -> None:
    app = logged()
    client = app.client
    product = int(served_engine.ids[4])
    text = client.get("/api/search", params={"q": "red dress", "k": PAGE, "gender": "Women", "session": "abc"}).json()
    second = client.get(
        "/api/search", params={"q": "red dress", "k": PAGE, "offset": PAGE, "hybrid": "true", "session": " "}
    ).json()
    similar = client.get(f"/api/similar/{product}", params={"k": PAGE, "session": "abc"}).json()
    photo = {"image": ("a.jpg", product_image(served_images, product), "image/jpeg")}
    upload = client.post("/api/similar", params={"k": PAGE, "baseColour": "Red,Blue"}, files=photo).json()
    opened_id = text["results"][2]["id"]
    for event in ("open", "add"):
        answer = client.post(
            "/api/events", json={"search_id": text["search_id"], "product_id": opened_id, "event": event}
        )
        assert answer.status_code == 202 and answer.json() == {"logged": True}
    model = client.get("/health").json()["model"]
    app.log.close()

    tables = read_log([app.path])
    rows = tables.searches.set_index("search_id")
    assert text["ignored_parameters"] == [] and len({text["search_id"], second["search_id"]}) == 2
    first = rows.loc[text["search_id"]]
    assert (first["kind"], first["query"], first["session"], first["mode"], first["offset"]) == (
        "text",
        "red dress",
        "abc",
        "vector",
        0,
    )
    assert first["filters"] == {"gender": ["Women"]} and first["shown"] == ids(text) and first["model"] == model
    paged = rows.loc[second["search_id"]]
    assert (paged["offset"], paged["mode"], paged["shown"]) == (PAGE, "hybrid", ids(second)) and pd.isna(
        paged["session"]
    )
    by_product = rows.loc[similar["search_id"]]
    assert (by_product["kind"], by_product["query"], by_product["shown"]) == (
        "similar_product",
        str(product),
        ids(similar),
    )
    by_photo = rows.loc[upload["search_id"]]
    assert (by_photo["kind"], by_photo["filters"]) == ("similar_image", {"baseColour": ["Red", "Blue"]})
    assert pd.isna(by_photo["query"])
    events = tables.events[["search_id", "product_id", "event"]].values.tolist()
    assert events == [[text["search_id"], str(opened_id), "open"], [text["search_id"], str(opened_id), "add"]]
    assert app.log.stats().written == 6


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"not json", 422, "body: Invalid JSON"),
        (b'{"search_id": "ab", "product_id": 1, "event": "open"}', 422, "search_id: String should match pattern"),
        (b'{"search_id": "' + b"a" * 32 + b'", "product_id": 1, "event": "buy"}', 422, "event: Input should be 'open'"),
        (b'{"search_id": "' + b"a" * 32 + b'", "event": "open"}', 422, "product_id: Field required"),
        (b'{"search_id": "' + b"a" * 32 + b'", "product_id": "x1", "event": "open"}', 422, "product_id"),
        (b'{"search_id": "' + b"a" * 32 + b'", "product_id": 1, "event": "open", "ip": "1.2.3.4"}', 422, "ip: Extra"),
        (b'{"search_id": "' + b"a" * 32 + b'", "product_id": 999999999, "event": "open"}', 404, "not in the catalog"),
        (b'{"pad": "' + b"x" * 2000 + b'"}', 413, "over the limit of 1024 bytes"),
    ],
)
def test_bad_events_are_one_line_4xx_and_not_logged(
    logged: Callable[..., Logged], body: bytes, status: int, fragment: str
) -> None:
    app = logged()
    assert_error(app.client.post("/api/events", content=body), status, fragment)
    app.log.close()
    assert read_log([app.path]).events.empty


def test_an_event_body_without_length_is_cut_off_at_the_cap(logged: Callable[..., Logged]) -> None:
    app = logged()
    response = app.client.post("/api/events", content=iter([b'{"search_id": "', b"a" * 2000]))
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "body is over the limit of 1024 bytes")


def metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")))


def test_a_locked_store_leaves_searches_answering_and_says_so(logged: Callable[..., Logged]) -> None:
    app = logged(connect=partial(log_schema.connect, timeout_ms=100))
    holder = sqlite3.connect(app.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the file
    began = time.monotonic()
    pages = [app.client.get("/api/search", params={"q": f"shoes {n}", "k": PAGE}) for n in range(3)]
    assert [page.status_code for page in pages] == [200] * 3 and time.monotonic() - began < 5
    app.stats_when(lambda stats: stats.failed == 3)
    health = app.client.get("/health").json()
    assert (health["status"], health["search_log"]["status"]) == ("degraded", "failing")
    assert health["problem"] == "search log: database is locked" and health["search_log"]["failed"] == 3
    metrics = app.client.get("/metrics").text
    assert (
        metric(metrics, "modaclip_search_log_failed_total") == 3 and metric(metrics, "modaclip_search_log_failing") == 1
    )
    holder.rollback()
    assert app.client.get("/api/search", params={"q": "shoes", "k": PAGE}).status_code == 200
    app.stats_when(lambda stats: stats.written == 1)
    recovered = app.client.get("/health").json()
    assert (recovered["status"], recovered["problem"], recovered["search_log"]["status"]) == ("ok", None, "ok")
    assert recovered["search_log"]["last_error"] == "database is locked"


def test_a_full_store_leaves_searches_answering_and_says_so(logged: Callable[..., Logged]) -> None:
    app = logged(connect=full_store)
    statuses = [app.client.get("/api/search", params={"q": f"bag {n}", "k": 50}).status_code for n in range(30)]
    assert statuses == [200] * 30
    stats = app.stats_when(lambda stats: stats.failed == 30)
    health = app.client.get("/health").json()
    assert health["status"] == "degraded" and "full" in health["problem"]
    assert metric(app.client.get("/metrics").text, "modaclip_search_log_failed_total") == stats.failed


def test_a_log_deleted_mid_run_is_started_again_and_counted(logged: Callable[..., Logged]) -> None:
    app = logged()
    assert app.client.get("/api/search", params={"q": "watch", "k": PAGE}).status_code == 200
    app.stats_when(lambda stats: stats.written == 1)
    for leftover in app.path.parent.glob("log.sqlite*"):
        leftover.unlink()
    after = app.client.get("/api/search", params={"q": "belt", "k": PAGE})
    assert after.status_code == 200
    app.stats_when(lambda stats: stats.written == 2)
    health = app.client.get("/health").json()
    assert health["status"] == "ok" and health["search_log"]["reopened"] == 1
    assert "deleted or replaced" in health["search_log"]["last_error"]
    assert metric(app.client.get("/metrics").text, "modaclip_search_log_reopened_total") == 1
    app.log.close()
    assert read_log([app.path]).searches["search_id"].tolist() == [after.json()["search_id"]]


def test_without_a_log_searches_still_carry_a_search_id_and_nothing_is_written(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with make_client(served_engine, served_images, served_paths) as client:
        page = client.get("/api/search", params={"q": "red dress", "k": PAGE}).json()
        event = {"search_id": page["search_id"], "product_id": page["results"][0]["id"], "event": "open"}
        answer = client.post("/api/events", json=event)
        health = client.get("/health").json()
        metrics = client.get("/metrics").text
    assert len(page["search_id"]) == 32 and answer.status_code == 202 and answer.json() == {"logged": False}
    assert health["search_log"] is None and "modaclip_search_log" not in metrics
    assert list(tmp_path.iterdir()) == []


def test_serve_logs_to_params_path_unless_told_otherwise(
    served_paths: dict[str, Path],
    started: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    main(["serve", *paths])
    assert started["search_log"] == LogConfig(Path("logs/search-log.sqlite"), 90)
    (tmp_path / "params.yaml").write_text("serve:\n  log_path: shop/log.db\n  log_retention_days: 7\n")
    main(["serve", *paths])
    assert started["search_log"] == LogConfig(Path("shop/log.db"), 7)
    main(["serve", "--log", "elsewhere.sqlite", *paths])
    assert started["search_log"] == LogConfig(Path("elsewhere.sqlite"), 7)
    main(["serve", "--no-log", *paths])
    assert started["search_log"] is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"], "the command only configures the log"


class LoggingEncoder(FakeEncoder):
    """The fake text encoder, with what a service's /health asks of a supervised one."""

    restarts = 0

    def problem(self) -> None:
        return None


def serving_production(
    root: Path, search_log: SearchLog, follow_seconds: int, monkeypatch: pytest.MonkeyPatch
) -> Serving:
    """A server of the registry's production logging to `search_log`, with the fake text encoder."""
    monkeypatch.setattr(follow, "start_text_encoder", lambda source, engine, *args: LoggingEncoder(engine))
    settings = ServiceSettings(
        source=search_source_for("production", root=root), params=ServeParams(), search_log=search_log
    )
    load = partial(follow.load_generation, settings=settings, workers=ModelWorkers(2), text_threads=1)
    return Serving(load(settings.source), Follow(root, "production", follow_seconds), load)


def test_a_following_server_keeps_one_log_naming_the_version_that_answered(
    registry_of_two: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    search_log = SearchLog(LogConfig(tmp_path / "log.sqlite", 0))
    serving = serving_production(registry_of_two, search_log, 30, monkeypatch)

    async def session() -> list[str]:
        transport = httpx.ASGITransport(app=following_app(serving))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = (await client.get("/api/search", params={"q": "red dress", "k": PAGE})).json()["search_id"]
            model_versions.promote(registry_of_two, "v2")
            await serving.check()
            after = (await client.get("/api/search", params={"q": "red dress", "k": PAGE})).json()["search_id"]
            return [before, after]

    before, after = asyncio.run(session())
    search_log.close()
    models = read_log([tmp_path / "log.sqlite"]).searches.set_index("search_id")["model"]
    assert models[before].startswith("production v1.0.0") and models[after].startswith("production v2.0.0")


def test_the_log_is_flushed_and_closed_when_the_app_stops(
    registry_of_two: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn re-raises SIGTERM once the app has stopped, so the app's own shutdown is where the log is closed."""
    search_log = SearchLog(LogConfig(tmp_path / "log.sqlite", 0), flush_s=60)  # nothing written before the close
    serving = serving_production(registry_of_two, search_log, 0, monkeypatch)
    with TestClient(following_app(serving)) as client:  # runs the app's lifespan, as uvicorn does
        search_id = client.get("/api/search", params={"q": "red dress", "k": PAGE}).json()["search_id"]
        assert search_log.stats().written == 0
    assert search_log.stats().written == 1
    assert read_log([tmp_path / "log.sqlite"]).searches["search_id"].tolist() == [search_id]
    search_log.record_event(search_id, 1, "open")
    assert search_log.stats().dropped == 1, "closed: later records are dropped, not queued"
