"""The HTTP API through FastAPI's test client, on a tiny catalog and an untrained tiny model."""

from __future__ import annotations

import io
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modaclip.cli import main
from modaclip.core.config import ServeLimits, ServeParams
from modaclip.feedback.search_log import SearchLog
from modaclip.registry.model_choice import SearchSource
from modaclip.search.engine import CatalogSearch
from modaclip.serve import follow
from modaclip.serve.app import MAX_DEPTH, ServiceSettings, catalog_facets, create_app
from modaclip.serve.catalog_images import CatalogImages
from modaclip.serve.text_encoder_process import TextEncoderError

UPLOAD_LIMIT = 3 * 2**20  # above Starlette's 1 MB spill-to-disk size, so the in-memory test means something


def make_client(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    paths: dict[str, Path],
    raise_server_exceptions: bool = True,
    encode_text: Any = None,
    search_log: SearchLog | None = None,
    **params: Any,
) -> TestClient:
    """A test client of the app over `paths`; `params` are ServeParams fields (the upload cap is raised)."""
    source = SearchSource(
        paths["model"],
        paths["embeddings"],
        paths["catalog"],
        kind="folder",
        description=f"model folder {paths['model']}",
    )
    settings = ServiceSettings(
        source=source, params=ServeParams(max_upload_mb=UPLOAD_LIMIT / 2**20, **params), search_log=search_log
    )
    app = create_app(served_engine, served_images, settings, encode_text=encode_text)
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


@pytest.fixture(scope="module")
def client(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> Iterator[TestClient]:
    with make_client(served_engine, served_images, served_paths) as test_client:
        yield test_client


def product_image(served_images: CatalogImages, product_id: int) -> bytes:
    data = served_images.get(product_id)
    assert data is not None
    return data


def png(width: int, height: int, mode: str = "RGB", noise: bool = False) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8) if noise else None
    image = Image.fromarray(pixels) if noise else Image.new(mode, (width, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def assert_error(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    assert fragment in body["error"], body["error"]


def test_health_says_which_production_version_serves_and_since_when(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    description = "production v2.0.0 (modaclip-model@v2.0.0, commit 0123abcd)"
    since = datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)
    paths = [served_paths[role] for role in ("model", "embeddings", "catalog")]
    source = SearchSource(*paths, kind="production", description=description, version="v2.0.0", since=since)
    settings = ServiceSettings(source=source, params=ServeParams())
    with TestClient(create_app(served_engine, served_images, settings)) as client:
        health = client.get("/health").json()
    assert (health["source"], health["version"], health["model"]) == ("production", "v2.0.0", description)
    assert health["since"] == "2026-11-30T09:15:00+00:00"


def test_health_names_the_model_the_catalog_and_the_index(client: TestClient, served_engine: CatalogSearch) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["source"] == "folder"
    assert health["model"].startswith("model folder ")
    assert health["catalog_size"] == len(served_engine) > 100
    assert health["index"] == "flat" and health["since"] is None


def test_search_returns_ranked_hits_with_attributes_and_image_urls(client: TestClient) -> None:
    page = client.get("/api/search", params={"q": "red dress", "k": 7}).json()
    hits = page["results"]
    assert page["query"] == "red dress" and len(hits) == 7 and page["next_offset"] == 7
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert {"id", "score", "name", "attributes", "image_url"} == set(hits[0])
    assert hits[0]["attributes"]["articleType"] and hits[0]["name"]
    image = client.get(hits[0]["image_url"])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert Image.open(io.BytesIO(image.content)).size[0] > 0


def test_pages_continue_where_the_previous_one_stopped(client: TestClient, served_engine: CatalogSearch) -> None:
    whole = [h["id"] for h in client.get("/api/search", params={"q": "shoes", "k": 12}).json()["results"]]
    first = client.get("/api/search", params={"q": "shoes", "k": 6}).json()
    second = client.get("/api/search", params={"q": "shoes", "k": 6, "offset": first["next_offset"]}).json()
    assert [h["id"] for h in first["results"] + second["results"]] == whole
    last = client.get("/api/search", params={"q": "shoes", "k": 5, "offset": len(served_engine) - 3}).json()
    assert len(last["results"]) == 3 and last["next_offset"] is None


def test_filters_are_query_parameters(client: TestClient, served_engine: CatalogSearch) -> None:
    women = client.get("/api/search", params={"q": "dress", "k": 10, "gender": "women"}).json()["results"]
    assert women and all(h["attributes"]["gender"] == "Women" for h in women)
    colours = client.get(
        "/api/search", params=[("q", "top"), ("k", 10), ("baseColour", "Red"), ("baseColour", "Blue")]
    ).json()["results"]
    assert colours and {h["attributes"]["baseColour"] for h in colours} <= {"Red", "Blue"}
    years = served_engine.info["year"]
    low = int(years.median())
    recent = client.get("/api/search", params={"q": "shirt", "k": 10, "year": f"{low}.."}).json()["results"]
    assert recent and all(int(served_engine.info.loc[served_engine.row_of[h["id"]], "year"]) >= low for h in recent)
    fused = client.get("/api/search", params={"q": "red shirt", "k": 5, "hybrid": "true", "gender": "Men"}).json()[
        "results"
    ]
    assert len(fused) == 5 and all(h["attributes"]["gender"] == "Men" for h in fused)


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"q": "   "}, 400, "empty search query"),
        ({}, 422, "q: Field required"),
        ({"q": "red", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"q": "red", "k": 101}, 422, "k: Input should be less than or equal to 100"),
        ({"q": "red", "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"q": "red", "offset": -1}, 422, "offset"),
        ({"q": "red", "k": 50, "offset": MAX_DEPTH}, 400, f"offset + k must be at most {MAX_DEPTH}"),
        ({"q": "x" * 301}, 422, "q: String should have at most 300 characters"),
        ({"q": "red", "gender": "Martians"}, 400, "no product matches"),
        ({"q": "red", "year": "2010..soon"}, 400, "is not a number"),
        ({"q": "red", "gender": "Men..Women"}, 400, "is not a number"),
    ],
)
def test_bad_search_requests_are_one_line_4xx(
    client: TestClient, params: dict[str, Any], status: int, fragment: str
) -> None:
    assert_error(client.get("/api/search", params=params), status, fragment)


def test_similar_to_a_product_excludes_it_and_honours_filters(client: TestClient, served_engine: CatalogSearch) -> None:
    product_id = int(served_engine.ids[0])
    page = client.get(f"/api/similar/{product_id}", params={"k": 8}).json()
    assert page["product"]["id"] == product_id and len(page["results"]) == 8
    assert product_id not in [h["id"] for h in page["results"]]
    gender = served_engine.info.loc[0, "gender"]
    same = client.get(f"/api/similar/{product_id}", params={"k": 5, "gender": gender}).json()["results"]
    assert all(h["attributes"]["gender"] == gender for h in same)


def test_an_uploaded_catalog_photo_is_searched_as_its_product(
    client: TestClient, served_engine: CatalogSearch, served_images: CatalogImages
) -> None:
    product_id = int(served_engine.ids[5])
    files = {"image": ("photo.jpg", product_image(served_images, product_id), "image/jpeg")}
    uploaded = client.post("/api/similar", params={"k": 3}, files=files).json()["results"]
    by_id = client.get(f"/api/similar/{product_id}", params={"k": 3}).json()["results"]
    assert [hit["id"] for hit in uploaded] == [hit["id"] for hit in by_id]
    assert product_id not in {hit["id"] for hit in uploaded}


def test_a_large_upload_stays_in_memory(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette spills uploads over 1 MB to a temporary file; ours must not."""
    data = png(1000, 1000, noise=True)
    assert 2**20 < len(data) < UPLOAD_LIMIT

    def spill(self: Any) -> None:
        raise AssertionError("upload written to disk")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", spill)
    response = client.post("/api/similar", params={"k": 2}, files={"image": ("noise.png", data, "image/png")})
    assert response.status_code == 200 and len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    ("upload", "status", "fragment"),
    [
        ({"files": {"image": ("big.png", b"\0" * (UPLOAD_LIMIT + 1), "image/png")}}, 413, "over the limit"),
        ({"files": {"image": ("notes.txt", b"just some text", "image/png")}}, 415, "not a readable image"),
        ({"files": {"image": ("empty.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"image": ("cut.png", png(64, 64, noise=True)[:400], "image/png")}}, 400, "not a readable image"),
        ({"files": {"image": ("bomb.png", png(8000, 8000, mode="1"), "image/png")}}, 413, "pixels"),
        ({"files": {"photo": ("a.png", png(8, 8), "image/png")}}, 400, "no image file in form field 'image'"),
        (
            {"data": {"image": "not a file"}, "files": {"other": ("a.png", png(8, 8), "image/png")}},
            400,
            "no image file",
        ),
        ({"json": {"image": "aGVsbG8="}}, 415, "multipart/form-data"),
    ],
)
def test_bad_uploads_are_one_line_4xx(client: TestClient, upload: dict[str, Any], status: int, fragment: str) -> None:
    assert_error(client.post("/api/similar", **upload), status, fragment)


def test_an_upload_larger_than_declared_is_cut_off(client: TestClient) -> None:
    """A body streamed without Content-Length is counted as it arrives."""
    boundary = "x" * 16
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    chunks = iter([head, b"\0" * UPLOAD_LIMIT, b"\0" * 1024, f"\r\n--{boundary}--\r\n".encode()])
    response = client.post(
        "/api/similar", content=chunks, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "over the limit")


def test_classify_ranks_the_labels(
    client: TestClient, served_engine: CatalogSearch, served_images: CatalogImages
) -> None:
    image = product_image(served_images, int(served_engine.ids[0]))
    result = client.post(
        "/api/classify", files={"image": ("a.jpg", image, "image/jpeg")}, data={"labels": ["dress, shoes", "watch"]}
    ).json()
    labels = result["labels"]
    assert sorted(label["label"] for label in labels) == ["dress", "shoes", "watch"]
    assert sum(label["probability"] for label in labels) == pytest.approx(1.0, abs=1e-4)
    assert [label["score"] for label in labels] == sorted((label["score"] for label in labels), reverse=True)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "give at least one candidate label"),
        ({"labels": "dress, dress"}, "repeated"),
        ({"labels": "dress", "template": "a {thing}"}, "must contain {label}"),
    ],
)
def test_bad_classify_requests_are_one_line_4xx(client: TestClient, data: dict[str, str], fragment: str) -> None:
    assert_error(
        client.post("/api/classify", files={"image": ("a.png", png(16, 16), "image/png")}, data=data), 400, fragment
    )


def test_product_details(client: TestClient, served_engine: CatalogSearch) -> None:
    product_id = int(served_engine.ids[3])
    product = client.get(f"/api/products/{product_id}").json()
    assert product["id"] == product_id and product["name"] == served_engine.info.loc[3, "productDisplayName"]
    assert product["attributes"]["year"] == int(served_engine.info.loc[3, "year"])
    assert product["image_url"] == f"/api/products/{product_id}/image"


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/api/products/999999999", 404, "product id 999999999 is not in the catalog"),
        ("/api/products/999999999/image", 404, "is not in the catalog"),
        ("/api/products/99999999999999999999999", 404, "is not in the catalog"),
        ("/api/similar/999999999", 404, "is not in the catalog"),
        ("/api/products/abc", 422, "product_id: Input should be a valid integer"),
        ("/api/products/..%2F..%2F..%2Fetc%2Fpasswd/image", 404, "Not Found"),
        ("/api/products/%2E%2E/image", 422, "valid integer"),
        ("/api/similar/..%2Fdata%2Fclean", 404, "Not Found"),
        ("/api/nothing-here", 404, "Not Found"),
        ("/static/..%2Fservice.py", 404, "Not Found"),
        ("/static/%2E%2E/%2E%2E/modaclip/service.py", 404, "Not Found"),
    ],
)
def test_unknown_products_and_path_tricks_are_4xx(client: TestClient, path: str, status: int, fragment: str) -> None:
    response = client.get(path)
    assert_error(response, status, fragment)
    assert b"root:" not in response.content and b"def create_app" not in response.content


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    assert_error(client.delete("/api/search"), 405, "Method Not Allowed")


def test_facets_list_the_catalog_columns(client: TestClient, served_engine: CatalogSearch) -> None:
    facets = {f["name"]: f for f in client.get("/api/facets").json()["facets"]}
    assert {"gender", "articleType", "baseColour", "year"} <= set(facets)
    genders = {v["value"]: v["count"] for v in facets["gender"]["values"]}
    assert genders == served_engine.info["gender"].value_counts().to_dict()
    assert (
        facets["year"]["min"] == served_engine.info["year"].min()
        and facets["year"]["max"] == served_engine.info["year"].max()
    )


def test_openapi_documents_every_endpoint_and_the_filters(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/health",
        "/api/search",
        "/api/similar/{product_id}",
        "/api/similar",
        "/api/classify",
        "/api/products/{product_id}",
        "/api/products/{product_id}/image",
        "/api/facets",
    } <= set(schema["paths"])
    search_params = {p["name"] for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert {"q", "k", "offset", "hybrid", "gender", "baseColour", "year"} <= search_params
    assert "multipart/form-data" in schema["paths"]["/api/similar"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_no_cors_unless_configured(
    client: TestClient, served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    origin = {"Origin": "https://shop.example"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with make_client(served_engine, served_images, served_paths, cors_origins=["https://shop.example"]) as allowed:
        assert allowed.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://shop.example"


def test_concurrent_requests_get_the_same_answers_as_serial_ones(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    """Without the query cache, so concurrent queries really share forward passes."""
    queries = [
        f"{colour} {kind}" for colour in ("red", "blue", "black", "white") for kind in ("dress", "shoes", "watch")
    ]
    with make_client(served_engine, served_images, served_paths, query_cache=0) as uncached:

        def ids(query: str) -> list[int]:
            return [h["id"] for h in uncached.get("/api/search", params={"q": query, "k": 5}).json()["results"]]

        serial = [ids(q) for q in queries]
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(ids, queries)) == serial


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_caps_the_model_calls_running_at_once(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
) -> None:
    """Six similar-product requests at once, each holding its model call for 0.3 s: exactly `threads` overlap."""
    running, peak, lock = 0, 0, threading.Lock()
    similar = served_engine.rank_similar

    def held(*args: Any) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        return similar(*args)

    monkeypatch.setattr(served_engine, "rank_similar", held)
    products = [int(i) for i in served_engine.ids[:6]]
    with (
        make_client(served_engine, served_images, served_paths, threads=threads) as limited,
        ThreadPoolExecutor(len(products)) as pool,
    ):
        codes = list(pool.map(lambda i: limited.get(f"/api/similar/{i}", params={"k": 3}).status_code, products))
    assert codes == [200] * len(products)
    assert peak == threads


@pytest.mark.parametrize(("query_cache", "forward_passes"), [(0, 4), (1, 3), (2, 2)])
def test_query_cache_keeps_as_many_queries_as_it_is_told(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    query_cache: int,
    forward_passes: int,
) -> None:
    """Queries a, a, b, a: no cache embeds all four; one slot loses a to b; two slots embed only a and b."""
    embedded: list[list[str]] = []

    async def encode(texts: list[str]) -> np.ndarray:
        embedded.append(texts)
        return served_engine.embedder.embed_texts(texts)

    with make_client(served_engine, served_images, served_paths, encode_text=encode, query_cache=query_cache) as app:
        found = [
            app.get("/api/search", params={"q": q, "k": 3}).json()["results"] for q in ("red", "red", "blue", "red")
        ]
    assert len(embedded) == forward_passes and all(len(texts) == 1 for texts in embedded)
    assert found[0] == found[1] == found[3] != found[2]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `modaclip serve` hands the server, which is not started."""
    given: dict[str, Any] = {}
    monkeypatch.setattr(
        follow,
        "serve",
        lambda settings, following, search_log: given.update(
            source=settings.source, settings=settings, follow=following, search_log=search_log
        ),
    )
    return given


def test_serve_command_binds_localhost_without_cors_by_default(
    served_paths: dict[str, Path], started: dict[str, Any]
) -> None:
    main(
        [
            "serve",
            "--model",
            str(served_paths["model"]),
            "--embeddings",
            str(served_paths["embeddings"]),
            "--catalog",
            str(served_paths["catalog"]),
        ]
    )
    settings = started["settings"]
    assert settings.params == ServeParams(), "params.yaml's serve section, as shipped"
    assert (settings.params.host, settings.params.port, settings.params.cors_origins) == ("127.0.0.1", 8000, [])
    assert settings.params.max_upload_bytes == 10 * 2**20 and settings.limits.rate_limit == ""
    assert settings.source.kind == "folder" and settings.source.model == served_paths["model"]
    assert started["source"] == settings.source and started["follow"].every_s == 0, "a model folder is pinned"


def test_serve_command_hands_every_flag_to_the_server(served_paths: dict[str, Path], started: dict[str, Any]) -> None:
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    flags = ["--host", "0.0.0.0", "--port", "9001", "--cors-origin", "http://a.example", "--cors-origin", "http://b"]
    flags += ["--max-upload-mb", "2.5", "--threads", "3", "--text-threads", "2", "--query-cache", "0"]
    flags += ["--max-in-flight", "7", "--max-connections", "9", "--body-timeout", "4.5", "--encode-timeout", "2"]
    flags += ["--rate-limit", "5/second"]
    main(["serve", *flags, *paths])
    params = started["settings"].params
    assert params.limits == ServeLimits(
        max_in_flight=7, max_connections=9, body_timeout_s=4.5, encode_timeout_s=2.0, rate_limit="5/second"
    )
    assert (params.host, params.port, params.text_threads) == ("0.0.0.0", 9001, 2)
    assert params.cors_origins == ["http://a.example", "http://b"]
    assert params.max_upload_bytes == int(2.5 * 2**20)
    assert (params.threads, params.query_cache) == (3, 0)


def test_serve_defaults_come_from_params_yaml_and_flags_override_them(
    served_paths: dict[str, Path], started: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("serve:\n  port: 9100\n  threads: 4\n  limits:\n    max_in_flight: 64\n")
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    main(["serve", "--threads", "2", *paths])
    params = started["settings"].params
    assert (params.port, params.threads, params.limits.max_in_flight) == (9100, 2, 64)
    assert params.query_cache == ServeParams().query_cache, "a key params.yaml leaves out keeps its shipped default"


def test_a_server_bug_is_a_one_line_500(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("index exploded")

    monkeypatch.setattr(served_engine, "rank_text", broken)
    with make_client(served_engine, served_images, served_paths, raise_server_exceptions=False) as failing:
        assert_error(failing.get("/api/search", params={"q": "red"}), 500, "internal error (RuntimeError)")


def test_a_dead_text_encoder_is_a_503_not_a_client_error(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> None:
    async def dead(texts: list[str]) -> Any:
        raise TextEncoderError("text encoder process exited (exit code -9); restart the server")

    with make_client(served_engine, served_images, served_paths, encode_text=dead) as failing:
        assert_error(failing.get("/api/search", params={"q": "red"}), 503, "exited (exit code -9)")
        assert (
            failing.get(f"/api/similar/{int(served_engine.ids[0])}").status_code == 200
        )  # image search does not need it


def test_facets_give_a_price_column_its_range() -> None:
    info = pd.DataFrame({"gender": ["Men", "Women", None], "price": [19.5, 120.0, None]})
    assert catalog_facets(info, ["gender", "price"]) == [
        {"name": "gender", "values": [{"value": "Men", "count": 1}, {"value": "Women", "count": 1}]},
        {"name": "price", "min": 19.5, "max": 120.0},
    ]


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--max-in-flight", "0"], "--max-in-flight (serve.limits.max_in_flight): Input should be greater than or"),
        (["--body-timeout", "0"], "--body-timeout (serve.limits.body_timeout_s): Input should be greater than 0"),
        (["--rate-limit", "lots"], "--rate-limit (serve.limits.rate_limit): Value error, expected a rate such as"),
        (["--port", "70000"], "--port (serve.port): Input should be less than or equal to 65535 (got 70000)"),
        (["--max-upload-mb", "0"], "--max-upload-mb (serve.max_upload_mb): Input should be greater than 0"),
    ],
)
def test_serve_command_refuses_bad_limits(
    served_paths: dict[str, Path], flags: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    with pytest.raises(SystemExit):
        main(["serve", *flags, *paths])
    assert fragment in capsys.readouterr().err
