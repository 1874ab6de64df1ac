"""`modaclip serve`: an HTTP API and a search page over the served model, index and catalog.

Every request reads the `Service` it uses once, through `Served.current()`: a fixed one (`create_app`), or
the version serve/follow.py swaps in when production moves. Text queries are embedded
by a child process (`TextEncoderProcess`) in batches gathered on the event loop (`QueryEncoder`),
and ranked on the event loop; image uploads and the other heavy calls run on worker threads
(`ModelWorkers`). Every error a client can cause is a 4xx whose body is one line of JSON,
`{"error": "..."}`. Routes are grouped by concern, one APIRouter each: health, search (text and
similar products), products (facets, records, images), classify and the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import pandas as pd
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from modaclip.core.errors import ModaclipError
from modaclip.embed.index import index_kind_of
from modaclip.model.zero_shot import DEFAULT_TEMPLATES, classification_json, classify_image
from modaclip.registry.model_choice import SearchSource
from modaclip.search.engine import CatalogSearch, SearchHit, json_value
from modaclip.search.filters import FILTERABLE_COLUMNS, AttributeFilter, filter_mask
from modaclip.serve.catalog_images import CatalogImages, image_media_type
from modaclip.serve.query_encoder import DEFAULT_CACHE_SIZE, BatchEncoder, QueryEncoder
from modaclip.serve.text_encoder_process import TextEncoderError
from modaclip.serve.uploads import UploadError, image_field, read_form

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
MAX_PAGE = 100  # hits per request
MAX_DEPTH = 1000  # offset + k: a page that deep costs a search that deep, so deeper ones are refused
MAX_QUERY_CHARS = 300
MAX_LABELS = 100
PAGING = ("k", "offset")

T = TypeVar("T")
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]  # what runs while the server does


class ApiError(Exception):
    """A client error with its HTTP status; the message is the whole response body's `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServiceSettings:
    source: SearchSource
    max_upload_bytes: int = 10 * 2**20
    cors_origins: tuple[str, ...] = ()
    threads: int = 16  # image uploads, similar products and hybrid searches handled at once
    query_cache: int = DEFAULT_CACHE_SIZE  # text query embeddings kept; 0 turns the cache off


class ModelWorkers:
    """Runs model and index calls off the event loop, at most `threads` at a time.

    torch and faiss release the GIL while they compute, so calls on different threads use
    different cores. The model is only read (eval mode, no gradients), so concurrent calls are
    safe. Text queries do not come here: QueryEncoder batches them for the text encoder process.
    """

    def __init__(self, threads: int) -> None:
        self._limiter = anyio.CapacityLimiter(threads)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(function, *args), limiter=self._limiter)


@dataclass(frozen=True)
class Service:
    """What every route uses: the loaded engine and images, the settings, and where heavy calls run."""

    engine: CatalogSearch
    images: CatalogImages
    settings: ServiceSettings
    workers: ModelWorkers
    encode_queries: QueryEncoder
    facets: list[dict[str, Any]]
    filter_docs: dict[str, Any]  # OpenAPI parameters of the attribute filters, for the routes that take them

    def require_product(self, product_id: int) -> None:
        if self.engine.row_of.get(product_id) is None:
            raise ApiError(404, f"product id {product_id} is not in the catalog")


class Served(Protocol):
    """Where the routes get the service of the request (the one accessor), and what /health adds about it."""

    def current(self) -> Service: ...

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FixedService:
    """One service for the app's whole life (`create_app`: tests, notebooks, a pinned model)."""

    service: Service

    def current(self) -> Service:
        return self.service

    def status(self) -> dict[str, Any]:
        return {}


def build_service(
    engine: CatalogSearch,
    images: CatalogImages,
    settings: ServiceSettings,
    encode_text: BatchEncoder | None = None,
    workers: ModelWorkers | None = None,
) -> Service:
    """The service over one loaded engine. Text queries are embedded by `encode_text` (`serve` gives
    `TextEncoderProcess.encode`), by default on a worker thread of this process."""
    encode_queries = QueryEncoder(
        encode_text or partial(anyio.to_thread.run_sync, engine.embedder.embed_texts), settings.query_cache
    )
    filter_columns = [c for c in FILTERABLE_COLUMNS if c in engine.info.columns]
    facets = catalog_facets(engine.info, filter_columns)
    filter_docs = {"parameters": [_filter_parameter(column, facets) for column in filter_columns]}
    return Service(
        engine, images, settings, workers or ModelWorkers(settings.threads), encode_queries, facets, filter_docs
    )


def create_app(
    engine: CatalogSearch, images: CatalogImages, settings: ServiceSettings, encode_text: BatchEncoder | None = None
) -> FastAPI:
    """The FastAPI app over one fixed engine (see `app_for`)."""
    return app_for(FixedService(build_service(engine, images, settings, encode_text)))


def app_for(served: Served, lifespan: Lifespan | None = None) -> FastAPI:
    """The FastAPI app: JSON API under /api, /health, the page at /, OpenAPI docs at /docs."""
    app = FastAPI(
        title="modaclip", summary="Fine-tuned CLIP search over a fashion catalog", version="1", lifespan=lifespan
    )
    settings = served.current().settings
    _add_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    for routes in (health_routes, search_routes, product_routes, classify_routes, page_routes):
        app.include_router(routes(served))
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def health_routes(served: Served) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/health", summary="Which model version is served and since when, over how many products, with which index"
    )
    async def health() -> dict[str, Any]:
        engine, source = served.current().engine, served.current().settings.source
        return {
            "status": "ok",
            "model": source.description,
            "source": source.kind,
            "version": source.version,
            "since": source.since.isoformat() if source.since else None,
            "model_dir": str(source.model),
            "catalog_size": len(engine),
            "index": index_kind_of(engine.index),
            "embedding_dim": int(engine.vectors.shape[1]),
            **served.status(),
        }

    return router


def search_routes(served: Served) -> APIRouter:
    """Text search and similar products (by catalog id or uploaded image), paged and filtered."""
    router = APIRouter(prefix="/api")
    filter_docs = served.current().filter_docs

    @router.get(
        "/search",
        summary="Text-to-image search; filters are query parameters such as gender=Women",
        openapi_extra=filter_docs,
    )
    async def search(
        request: Request,
        q: str = Query(..., max_length=MAX_QUERY_CHARS, description="the text query, e.g. red summer dress"),
        k: int = Query(24, ge=1, le=MAX_PAGE, description="hits in this page"),
        offset: int = Query(0, ge=0, description="hits to skip (paging)"),
        hybrid: bool = Query(False, description="fuse the vector ranking with BM25 over names and attributes"),
    ) -> dict[str, Any]:
        service = served.current()
        engine, workers = service.engine, service.workers
        filters = request_filters(request, {"q", "hybrid", *PAGING})
        depth = search_depth(offset, k, len(engine))
        engine.check_text_search([q], depth)
        allowed = filter_mask(engine.info, filters)
        vectors = await service.encode_queries([q])
        if hybrid:  # BM25 over the whole catalog: too slow for the event loop
            hits = (await workers.run(engine.rank_text, [q], vectors, depth, allowed, True))[0]
        else:
            hits = engine.rank_text([q], vectors, depth, allowed)[0]
        return {"query": q, **page(hits, offset, k)}

    @router.get(
        "/similar/{product_id}",
        summary="Products that look like a catalog product (itself excluded)",
        openapi_extra=filter_docs,
    )
    async def similar_to_product(
        request: Request,
        product_id: int = PathParam(description="a catalog product id"),
        k: int = Query(24, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        service = served.current()
        engine = service.engine
        filters = request_filters(request, set(PAGING))
        service.require_product(product_id)
        depth = search_depth(offset, k, len(engine))
        hits = await service.workers.run(engine.similar, product_id, depth, filters)
        return {"product": product_json(engine, product_id), **page(hits, offset, k)}

    @router.post(
        "/similar",
        summary="Products that look like an uploaded image (multipart field 'image')",
        openapi_extra={
            **filter_docs,
            "requestBody": _upload_body({"image": {"type": "string", "format": "binary"}}),
        },
    )
    async def similar_to_image(
        request: Request, k: int = Query(24, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0)
    ) -> dict[str, Any]:
        service = served.current()
        engine = service.engine
        filters = request_filters(request, set(PAGING))
        depth = search_depth(offset, k, len(engine))
        image = await image_field(await read_form(request, service.settings.max_upload_bytes))
        hits = await service.workers.run(engine.similar, image, depth, filters)
        return page(hits, offset, k)

    return router


def product_routes(served: Served) -> APIRouter:
    """The catalog itself: facets for the filter controls, a product's record and its image."""
    router = APIRouter(prefix="/api")

    @router.get("/facets", summary="Filterable columns with their values (or numeric range) and product counts")
    async def get_facets() -> dict[str, Any]:
        service = served.current()
        return {"catalog_size": len(service.engine), "facets": service.facets}

    @router.get("/products/{product_id}", summary="A product's name, attributes and image URL")
    async def product(product_id: int = PathParam(description="a catalog product id")) -> dict[str, Any]:
        service = served.current()
        service.require_product(product_id)
        return product_json(service.engine, product_id)

    @router.get("/products/{product_id}/image", summary="A product's stored image", response_class=Response)
    async def product_image(product_id: int = PathParam(description="a catalog product id")) -> Response:
        service = served.current()
        service.require_product(product_id)
        data = service.images.get(product_id)
        if data is None:
            raise ApiError(404, f"product id {product_id} has no stored image")
        return Response(data, media_type=image_media_type(data), headers={"Cache-Control": "public, max-age=3600"})

    return router


def classify_routes(served: Served) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.post(
        "/classify",
        summary="Zero-shot classification of an uploaded image among candidate labels",
        openapi_extra={
            "requestBody": _upload_body(
                {
                    "image": {"type": "string", "format": "binary"},
                    "labels": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "repeat the field, or comma-separate",
                    },
                    "template": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": f"prompts with {{label}}, default {DEFAULT_TEMPLATES[0]!r}",
                    },
                }
            )
        },
    )
    async def classify(request: Request) -> dict[str, Any]:
        service = served.current()
        form = await read_form(request, service.settings.max_upload_bytes)
        labels = form_labels(form.getlist("labels"))
        templates = [str(t) for t in form.getlist("template")] or list(DEFAULT_TEMPLATES)
        for template in templates:
            if "{label}" not in template:
                raise ApiError(400, f"template {template!r} must contain {{label}}")
        image = await image_field(form)
        ranked = await service.workers.run(classify_image, service.engine.embedder, image, labels, templates)
        return classification_json(ranked)

    return router


def page_routes(served: Served) -> APIRouter:
    """The search page (its scripts and styles are the /static mount)."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index_page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    return router


def request_filters(request: Request, reserved: set[str]) -> list[AttributeFilter]:
    """Every query parameter that is not a named one is a filter: `gender=Women`, `baseColour=Red,Blue` or
    repeated, `year=2012..2015`. The engine refuses unknown columns and values that match nothing."""
    params = request.query_params
    try:
        return [
            AttributeFilter.parse(f"{name}={','.join(params.getlist(name))}")
            for name in dict.fromkeys(params.keys())
            if name not in reserved
        ]
    except ModaclipError as err:
        raise ApiError(400, str(err)) from err


def search_depth(offset: int, k: int, catalog_size: int) -> int:
    """How many hits to rank for this page: one more than it shows, to tell whether another page follows."""
    if offset + k > MAX_DEPTH:
        raise ApiError(400, f"offset + k must be at most {MAX_DEPTH}, got {offset + k}")
    return min(offset + k + 1, catalog_size)


def page(hits: Sequence[SearchHit], offset: int, k: int) -> dict[str, Any]:
    shown = hits[offset : offset + k]
    more = len(hits) > offset + k and offset + k < MAX_DEPTH
    return {
        "offset": offset,
        "k": k,
        "results": [hit_json(hit) for hit in shown],
        "next_offset": offset + k if more else None,
    }


def image_url(product_id: int) -> str:
    return f"/api/products/{product_id}/image"


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """The CLI's hit JSON (`SearchHit.to_dict`) plus where the page fetches the image."""
    return {**hit.to_dict(), "image_url": image_url(hit.id)}


def product_json(engine: CatalogSearch, product_id: int) -> dict[str, Any]:
    record = engine.info.iloc[int(engine.row_of[product_id])]
    attributes = {
        column: json_value(value) for column, value in record.items() if column not in ("id", "productDisplayName")
    }
    return {
        "id": product_id,
        "name": json_value(record.get("productDisplayName")) or "",
        "attributes": attributes,
        "image_url": image_url(product_id),
    }


def form_labels(fields: Sequence[Any]) -> list[str]:
    """Candidate labels from repeated `labels` fields, each of which may also be comma-separated."""
    labels = [part.strip() for field in fields if isinstance(field, str) for part in field.split(",") if part.strip()]
    if not labels:
        raise ApiError(
            400, "labels: give at least one candidate label (form field 'labels', repeated or comma-separated)"
        )
    if len(labels) > MAX_LABELS:
        raise ApiError(400, f"labels: at most {MAX_LABELS} labels, got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise ApiError(400, f"labels: a label is repeated among {labels}")
    return labels


def catalog_facets(info: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """For each filterable column: its values with product counts, or for a numeric one its range."""
    facets = []
    for column in columns:
        values = info[column].dropna()
        if pd.api.types.is_numeric_dtype(values):
            if len(values):
                facets.append({"name": column, "min": json_value(values.min()), "max": json_value(values.max())})
            continue
        counts = values.astype(str).value_counts().sort_index()
        facets.append({"name": column, "values": [{"value": v, "count": int(n)} for v, n in counts.items()]})
    return facets


def _filter_parameter(column: str, facets: list[dict[str, Any]]) -> dict[str, Any]:
    facet = next((f for f in facets if f["name"] == column), {})
    if "min" in facet:
        description = f"numeric range low..high (catalog: {facet['min']}..{facet['max']}); either bound may be left out"
    else:
        description = "one value or several comma-separated (case-insensitive); e.g. " + ", ".join(
            v["value"] for v in facet.get("values", [])[:5]
        )
    return {"name": column, "in": "query", "required": False, "schema": {"type": "string"}, "description": description}


def _upload_body(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": ["image"]}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure a client can cause becomes `{"error": "one line"}` with a 4xx status;
    anything else a 500 of the same shape (a 503 when text queries cannot be embedded)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, err: UploadError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(ModaclipError)
    async def bad_input(request: Request, err: ModaclipError) -> JSONResponse:
        return _error(400, str(err))

    @app.exception_handler(TextEncoderError)
    async def encoder_failed(request: Request, err: TextEncoderError) -> JSONResponse:
        """The server cannot embed text queries: a 503 that says so, not a client error."""
        log.error("%s", err)
        return _error(503, str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in err.errors()]
        return _error(422, "; ".join(problems))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, f"{request.url.path}: {err.detail}")

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:
        """Our bug, not the client's: still one line of JSON; the traceback goes to the server log."""
        return _error(500, f"internal error ({err.__class__.__name__}); see the server log")
