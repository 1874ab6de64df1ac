"""The HTTP API under hostile input and overload: each finding of issue 23, reproduced and held.

Client strings are never format strings; every input has a cap named in its 4xx; uploads are
decoded only in the allowed formats and every decode error is a 4xx; filters that match nothing
together are an empty page; unknown parameters are ignored; a server fault is a 5xx without
paths; load past a cap is a 503 with Retry-After; heavy work stays off the event loop; /metrics
counts it all.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from live_server import live_server
from PIL import EpsImagePlugin, Image
from test_serve import assert_error, make_client, png

from modaclip.core.config import IndexParams, ServeLimits
from modaclip.core.errors import ModaclipError
from modaclip.model.zero_shot import class_embeddings, fill_template
from modaclip.search.engine import CatalogSearch
from modaclip.search.filters import AttributeFilter
from modaclip.serve import app as service_module
from modaclip.serve.app import build_service
from modaclip.serve.catalog_images import CatalogImages
from modaclip.serve.limits import (
    MAX_FILTER_CHARS,
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATES,
)
from modaclip.serve.uploads import ALLOWED_FORMATS


@pytest.fixture(scope="module")
def client(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> Iterator[TestClient]:
    with make_client(served_engine, served_images, served_paths, raise_server_exceptions=False) as test_client:
        yield test_client


def image_of(kind: str, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format=kind)
    return buffer.getvalue()


def classify(client: TestClient, **data: Any) -> Any:
    return client.post("/api/classify", files={"image": ("a.png", png(16, 16), "image/png")}, data=data)


# --- templates and caps ---


class RecordingEmbedder:
    """Records the prompts it is asked to embed; every prompt gets the same unit vector."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.prompts += texts
        return np.ones((len(texts), 4), dtype=np.float32)


def test_a_template_is_filled_by_plain_substitution_never_str_format() -> None:
    embedder = RecordingEmbedder()
    class_embeddings(embedder, ["Dress"], ["{label}{label:>300000000}", "{0} {label} {", "{label.__class__}"])  # type: ignore[arg-type]
    assert embedder.prompts == ["dress{label:>300000000}", "{0} dress {", "{label.__class__}"]
    assert fill_template("a {label} or a {label}", "hat") == "a hat or a hat"


@pytest.mark.parametrize("template", ["{label}{label:>300000000}", "{0} a {label}", "a { {label}", "{label} }"])
def test_classify_takes_any_template_with_label_as_plain_text(client: TestClient, template: str) -> None:
    response = classify(client, labels="dress, shoes", template=template)
    assert response.status_code == 200, response.text
    assert sorted(label["label"] for label in response.json()["labels"]) == ["dress", "shoes"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"labels": ",".join(f"label{i}" for i in range(MAX_LABELS + 1))}, f"at most {MAX_LABELS} labels"),
        ({"labels": "x" * (MAX_LABEL_CHARS + 1)}, f"at most {MAX_LABEL_CHARS} characters a label"),
        ({"labels": "dress", "template": ["{label}"] * (MAX_TEMPLATES + 1)}, f"at most {MAX_TEMPLATES} templates"),
        (
            {"labels": "dress", "template": "{label}" + "x" * MAX_TEMPLATE_CHARS},
            f"at most {MAX_TEMPLATE_CHARS} characters a template",
        ),
        ({"labels": ["dress"] * 300}, "bad multipart upload"),  # more form fields than labels and templates allow
    ],
)
def test_classify_inputs_past_their_caps_are_a_400_naming_the_cap(
    client: TestClient, data: dict[str, Any], fragment: str
) -> None:
    assert_error(classify(client, **data), 400, fragment)


def test_a_filter_past_its_cap_is_a_400_naming_it(client: TestClient) -> None:
    response = client.get("/api/search", params={"q": "red", "gender": "x" * (MAX_FILTER_CHARS + 1)})
    assert_error(response, 400, f"at most {MAX_FILTER_CHARS} characters")


# --- filters that match nothing together ---


def disjoint_filters(engine: CatalogSearch) -> dict[str, str]:
    """A gender and an article type that each match products but no product together."""
    info = engine.info
    pairs = set(zip(info["gender"], info["articleType"]))
    for gender in sorted(info["gender"].unique()):
        for article in sorted(info["articleType"].unique()):
            if (gender, article) not in pairs:
                return {"gender": gender, "articleType": article}
    raise AssertionError("every gender has every article type in the fixture")


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("get", "/api/search", {"q": "red dress"}),
        ("get", "/api/search", {"q": "red dress", "hybrid": "true"}),
        ("get", "/api/similar/{product}", {}),
        ("post", "/api/similar", {}),
    ],
)
def test_filters_that_each_match_but_not_together_give_an_empty_page(
    client: TestClient,
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    method: str,
    path: str,
    extra: dict[str, str],
) -> None:
    product = int(served_engine.ids[0])
    params = {**disjoint_filters(served_engine), **extra, "k": "5"}
    files = {"image": ("a.jpg", served_images.get(product), "image/jpeg")} if method == "post" else None
    response = client.request(method.upper(), path.format(product=product), params=params, files=files)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [] and response.json()["next_offset"] is None


def test_an_empty_filter_intersection_is_no_hits_with_exact_below_zero(served_engine: CatalogSearch) -> None:
    """exact_below 0 sends every filtered search to the index, where k=0 was a faiss assertion."""
    engine = CatalogSearch(
        served_engine.embedder,
        served_engine.ids,
        served_engine.vectors,
        info=served_engine.info,
        catalog_dir=served_engine.catalog_dir,
        index_params=IndexParams(exact_below=0),
    )
    filters = [AttributeFilter(column, (value,)) for column, value in disjoint_filters(served_engine).items()]
    assert engine.search_text(["red dress", "shoes"], 5, filters) == [[], []]
    assert engine.search_text(["red dress"], 5, filters, hybrid=True) == [[]]
    assert engine.similar(int(engine.ids[0]), 5, filters) == []
    one = [AttributeFilter("gender", (str(engine.info.loc[0, "gender"]),))]
    assert len(engine.search_text(["red"], 3, one)[0]) == 3  # a filter that matches still finds hits this way


# --- uploads ---


@pytest.mark.parametrize("kind", ALLOWED_FORMATS)
def test_every_allowed_format_is_searched(client: TestClient, kind: str) -> None:
    response = client.post("/api/similar", params={"k": 2}, files={"image": (f"a.{kind}", image_of(kind), "image/*")})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize("kind", ["EPS", "ICO", "TGA", "PCX", "PPM"])
def test_other_formats_are_a_415_naming_the_accepted_ones(client: TestClient, kind: str) -> None:
    response = client.post("/api/similar", files={"image": ("a.bin", image_of(kind), "image/*")})
    assert_error(response, 415, f"accepted: {', '.join(ALLOWED_FORMATS)}")


def test_an_eps_upload_never_reaches_the_eps_plugin(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's EPS plugin hands the bytes to Ghostscript where it is installed."""

    def parsed(self: Any) -> None:
        raise AssertionError("the EPS plugin parsed an upload")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", parsed)
    response = client.post("/api/similar", files={"image": ("a.eps", image_of("EPS"), "application/postscript")})
    assert_error(response, 415, "not a readable image")


@pytest.mark.parametrize("kind", ALLOWED_FORMATS)
def test_a_cut_or_corrupted_image_is_a_4xx_never_a_5xx(client: TestClient, kind: str) -> None:
    data = image_of(kind, size=48)
    cuts = [8, 16, 30, len(data) // 3, len(data) // 2, len(data) - 10]
    flipped = bytearray(data)
    flipped[len(data) // 2 :: 7] = bytes(len(flipped[len(data) // 2 :: 7]))  # zeros over the second half
    broken = [data[:cut] for cut in cuts] + [bytes(flipped), data[:12] + b"\xff" * 64]
    for number, blob in enumerate(broken):
        response = client.post("/api/similar", files={"image": ("a.bin", blob, "image/*")})
        assert response.status_code < 500, f"{kind} #{number}: {response.text}"
        if response.status_code != 200:  # some cuts still decode (a GIF's trailer, a TIFF's padding)
            assert_error(response, response.status_code, "image")


def test_an_upload_past_the_memory_budget_is_shed_and_the_budget_given_back(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    limits = ServeLimits(upload_memory_mb=4000 / 2**20)
    with make_client(served_engine, served_images, served_paths, limits=limits) as small:
        response = small.post("/api/similar", files={"image": ("a.png", png(64, 64, noise=True), "image/png")})
        assert_error(response, 503, "uploads in progress hold")
        assert response.headers["retry-after"] == "1"
        fits = small.post("/api/similar", params={"k": 1}, files={"image": ("a.png", png(8, 8), "image/png")})
        assert fits.status_code == 200, fits.text
        assert small.app.state.service.uploads.held == 0


def test_an_upload_that_trickles_in_is_cut_off_at_the_body_deadline(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    """A slow client sends its headers and a few bytes, then one byte a while: a 408 at the deadline, not a hang."""
    limits = ServeLimits(body_timeout_s=1.0)
    app = make_client(served_engine, served_images, served_paths, limits=limits).app
    with live_server(app) as url, socket.create_connection((urlparse(url).hostname, urlparse(url).port), 10) as sock:
        sock.sendall(
            b"POST /api/similar HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Content-Type: multipart/form-data; boundary=xxxx\r\n\r\n--xxxx\r\n"
        )
        started = time.monotonic()
        sock.settimeout(0.3)
        reply = b""
        while not reply and time.monotonic() - started < 15:
            try:
                sock.sendall(b"x")
                reply = sock.recv(4096)
            except TimeoutError:
                continue
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        sock.settimeout(5)
        while b"within" not in reply and (more := sock.recv(4096)):  # the body may come in its own packet
            reply += more
        assert b"upload not received whole within 1 s" in reply


def test_an_upload_its_client_abandons_is_counted_as_a_499_not_a_500(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    app = make_client(served_engine, served_images, served_paths).app
    with live_server(app) as url:
        with socket.create_connection((urlparse(url).hostname, urlparse(url).port), 10) as sock:
            sock.sendall(
                b"POST /api/similar HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                b"Content-Type: multipart/form-data; boundary=xxxx\r\n\r\n--xxxx\r\n"
            )
            time.sleep(0.3)
        deadline, metrics = time.monotonic() + 15, ""
        while 'handler="/api/similar",method="POST",status="499"' not in metrics:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'status="500"' not in metrics


# --- parameters, errors, paths ---


def test_unknown_query_parameters_are_ignored_and_listed(client: TestClient, served_engine: CatalogSearch) -> None:
    plain = client.get("/api/search", params={"q": "red dress", "k": 4}).json()
    tagged = client.get("/api/search", params={"q": "red dress", "k": 4, "utm_source": "mail", "_": "1733"})
    assert tagged.status_code == 200, tagged.text
    assert tagged.json()["results"] == plain["results"]
    assert tagged.json()["ignored_parameters"] == ["utm_source", "_"] and plain["ignored_parameters"] == []
    similar = client.get(f"/api/similar/{int(served_engine.ids[0])}", params={"k": 2, "fbclid": "x"})
    assert similar.status_code == 200 and similar.json()["ignored_parameters"] == ["fbclid"]


def test_health_names_no_path(client: TestClient, served_paths: dict[str, Path]) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert "model_dir" not in response.json()
    assert not any(str(path) in response.text for path in served_paths.values())


def test_a_server_fault_is_a_500_that_names_no_file(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ModaclipError past the request's own checks (a broken index file) is the server's fault, not a 400."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ModaclipError(f"{served_paths['embeddings']}/index.faiss: truncated")

    monkeypatch.setattr(served_engine, "rank_text", broken)
    with make_client(served_engine, served_images, served_paths, raise_server_exceptions=False) as failing:
        response = failing.get("/api/search", params={"q": "red"})
    assert_error(response, 500, "internal error")
    assert str(served_paths["embeddings"]) not in response.text and "Traceback" not in response.text


def test_replacing_the_service_swaps_what_every_route_serves(
    client: TestClient, served_engine: CatalogSearch, served_images: CatalogImages
) -> None:
    """Routes reach the engine only through `current_service`, so a follower of the registry can swap it."""
    before = client.app.state.service
    source = replace(before.settings.source, kind="production", description="production v9.0.0", version="v9.0.0")
    try:
        client.app.state.service = build_service(served_engine, served_images, replace(before.settings, source=source))
        assert client.get("/health").json()["version"] == "v9.0.0"
        assert 'version="v9.0.0"' in client.get("/metrics").text
    finally:
        client.app.state.service = before
    assert client.get("/health").json()["version"] is None


# --- overload ---


def test_requests_past_the_in_flight_cap_are_shed_with_retry_after_but_health_answers(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, holding = threading.Event(), threading.Event()
    rank_similar = served_engine.rank_similar

    def held(*args: Any) -> Any:
        holding.set()
        release.wait(30)
        return rank_similar(*args)

    monkeypatch.setattr(served_engine, "rank_similar", held)
    product = int(served_engine.ids[0])
    with make_client(served_engine, served_images, served_paths, limits=ServeLimits(max_in_flight=1)) as one:
        first = threading.Thread(target=lambda: one.get(f"/api/similar/{product}"))
        first.start()
        assert holding.wait(30)
        try:
            shed = one.get("/api/facets")
            health = one.get("/health")
        finally:
            release.set()
            first.join(30)
        metrics = one.get("/metrics").text
        after = one.get("/api/facets")
    assert_error(shed, 503, "1 requests in flight")
    assert shed.headers["retry-after"] == "1"
    assert health.status_code == 200 and after.status_code == 200
    assert "modaclip_requests_shed_total 1.0" in metrics
    assert 'http_requests_total{handler="/api/facets",method="GET",status="503"} 1.0' in metrics


def test_a_full_encoder_queue_is_a_503_with_retry_after(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    gate = threading.Event()

    async def stuck(texts: list[str]) -> np.ndarray:
        while not gate.is_set():
            await __import__("asyncio").sleep(0.01)
        return served_engine.embedder.embed_texts(texts)

    limits = ServeLimits(encoder_queue=1)
    with make_client(served_engine, served_images, served_paths, encode_text=stuck, limits=limits, query_cache=0) as c:
        codes: list[int] = []
        threads = [
            threading.Thread(target=lambda q=q: codes.append(c.get("/api/search", params={"q": q}).status_code))
            for q in ("a", "b")
        ]
        for thread in threads:
            thread.start()
            time.sleep(0.3)  # "a" is in the forward pass, "b" queued
        full = c.get("/api/search", params={"q": "c"})
        gate.set()
        for thread in threads:
            thread.join(30)
    assert_error(full, 503, "wait for the encoder")
    assert full.headers["retry-after"] == "1" and sorted(codes) == [200, 200]


def test_the_rate_limit_is_off_by_default_and_a_429_with_retry_after_when_set(
    client: TestClient, served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    assert all(client.get("/api/facets").status_code == 200 for _ in range(5))
    limits = ServeLimits(rate_limit="3/minute")
    with make_client(served_engine, served_images, served_paths, limits=limits) as limited:
        codes = [limited.get("/api/facets").status_code for _ in range(4)]
        refused = limited.get("/api/facets")
        health = [limited.get("/health").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429] and health == [200] * 5
    assert_error(refused, 429, "rate limit exceeded: 3 per 1 minute per client")
    assert int(refused.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("target", "method", "path", "params"),
    [
        ("filter_mask", "get", "/api/search", {"q": "red", "gender": "Women"}),
        ("check_image", "post", "/api/similar", {}),
        ("rank_text", "get", "/api/search", {"q": "blue", "gender": "Men"}),
    ],
)
def test_heavy_work_runs_off_the_event_loop(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    method: str,
    path: str,
    params: dict[str, str],
) -> None:
    """The heavy call waits until /health has answered: on the event loop it would wait for ever (10 s here)."""
    started, health_answered, outcome = threading.Event(), threading.Event(), []
    owner = served_engine if target == "rank_text" else service_module
    original = getattr(owner, target)

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        outcome.append(health_answered.wait(10))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, target, slow)
    files = {"image": ("a.png", png(16, 16), "image/png")} if method == "post" else None
    with make_client(served_engine, served_images, served_paths) as c:
        heavy = threading.Thread(target=lambda: c.request(method.upper(), path, params=params, files=files))
        heavy.start()
        assert started.wait(30)
        assert c.get("/health").status_code == 200
        health_answered.set()
        heavy.join(30)
    assert outcome == [True]


def test_metrics_count_requests_by_route_and_status_and_report_the_server(client: TestClient) -> None:
    client.get("/api/search", params={"q": "red dress"})
    client.get("/api/products/999999999")
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/api/search",method="GET",status="200"}' in text
    assert 'http_requests_total{handler="/api/products/{product_id}",method="GET",status="404"}' in text
    assert 'http_request_duration_seconds_bucket{handler="/api/search",le="0.1",method="GET",status="200"}' in text
    for name in ("modaclip_text_encoder_queue", "modaclip_text_encoder_restarts_total", "modaclip_requests_in_flight"):
        assert f"\n{name} " in text, name
    assert 'modaclip_model_info{model="model folder model",source="folder",version=""} 1.0' in text


def test_openapi_documents_a_response_schema_for_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            success = next(code for code in operation["responses"] if code.startswith("2"))
            content = operation["responses"][success]["content"]
            assert content and all("schema" in media or "image/" in kind for kind, media in content.items()), (
                f"{method} {path}"
            )
            if path.startswith("/api/"):
                assert operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
                    "ErrorBody"
                )
