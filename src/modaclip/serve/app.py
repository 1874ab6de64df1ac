"""`modaclip serve`: an HTTP API and a search page over one loaded model, index and catalog.

Every request reaches the engine (`CatalogSearch`) and everything around it through one accessor,
`current_service`: the service its request started on. A fixed one (`create_app`), or the version
serve/follow.py swaps in when production moves, by replacing `app.state.service`.
Text queries are embedded by a supervised child process (`SupervisedTextEncoder`) in batches
gathered on the event loop (`QueryEncoder`); image decoding, filter masks, filtered and hybrid
ranking and the other heavy calls run on worker threads (`ModelWorkers`), so a slow request never
holds up the event loop. The caps on one request are in `serve/limits.py`, every setting (the load limits
included) in params.yaml's `serve` section (`ServeParams`); past a load limit the answer is a 503
with Retry-After (`serve/overload.py`). A client's error is a 4xx, a server fault a 5xx, each body
one line of JSON, `{"error": "..."}`, with no file path or stack trace. Routes are grouped by
concern, one APIRouter each: health, search (text and similar products), products (facets, records,
images), classify, shoppers' events and the page; /metrics is Prometheus's (`serve/metrics.py`).
Every search response carries a `search_id`; with a search log (feedback/search_log.py) the search is
queued for it, and `POST /api/events` queues what the shopper did with a result (docs/search.md#search-log).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from modaclip.core.config import ServeLimits, ServeParams
from modaclip.core.errors import ModaclipError
from modaclip.embed.index import index_kind_of
from modaclip.feedback.search_log import SearchLog
from modaclip.model.zero_shot import DEFAULT_TEMPLATES, LABEL_FIELD, classification_json, classify_image
from modaclip.registry.model_choice import SearchSource
from modaclip.search.engine import CatalogSearch, SearchHit, json_value
from modaclip.search.filters import FILTERABLE_COLUMNS, AttributeFilter, filter_mask
from modaclip.serve.catalog_images import CatalogImages, image_media_type
from modaclip.serve.limits import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_FILTER_CHARS,
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_PAGE,
    MAX_QUERY_CHARS,
    MAX_SESSION_CHARS,
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATES,
    RETRY_AFTER_S,
)
from modaclip.serve.metrics import ServerGauges, add_metrics
from modaclip.serve.overload import Overloaded, RateLimit, ShedOverload, UploadBudget, shed_response
from modaclip.serve.query_encoder import BatchEncoder, QueryEncoder
from modaclip.serve.schemas import (
    Classification,
    ErrorBody,
    EventAccepted,
    Facets,
    HealthReport,
    Page,
    Product,
    SearchLogReport,
    ShopperEvent,
    SimilarProductPage,
    TextSearchPage,
)
from modaclip.serve.text_encoder_process import SupervisedTextEncoder, TextEncoderError
from modaclip.serve.uploads import UploadError, check_image, image_bytes, upload_form

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
NAMED = {"k", "offset", "session"}  # the query parameters every search takes besides its filters
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff")
ERRORS = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "a bad parameter, filter or form field (the message names it)",
        404: "no such product or path",
        408: "the upload or event did not arrive in time",
        413: "the upload, image or event body is over its size cap",
        415: "not multipart/form-data, or not an image in an accepted format",
        422: "a parameter of the wrong type or out of range",
        429: "over the per-client rate limit (only with --rate-limit); see Retry-After",
        500: "a server fault (details in the server log)",
        503: "overloaded or text search down; see Retry-After",
    }.items()
}

T = TypeVar("T")
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]  # what runs while the server does
FollowStatus = Callable[[], dict[str, Any]]  # what a server that follows production adds to /health
Session = Annotated[
    str | None,
    Query(
        max_length=MAX_SESSION_CHARS,
        description="an opaque token the shop's front end sends to tell shoppers apart in the search log "
        "(logged as given; never derived from the client's address)",
    ),
]


class ApiError(Exception):
    """A client error with its HTTP status; the message is the whole response body's `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """What a service is built from: the version it serves, params.yaml's `serve` section with the command's
    flags applied (every default lives there), and the open search log (None: not logged, --no-log)."""

    source: SearchSource
    params: ServeParams
    search_log: SearchLog | None = None

    @property
    def limits(self) -> ServeLimits:
        return self.params.limits


class ModelWorkers:
    """Runs model, decoding and index calls off the event loop, at most `threads` at a time.

    torch and faiss release the GIL while they compute, so calls on different threads use
    different cores. The model is only read (eval mode, no gradients), so concurrent calls are
    safe. Text queries do not come here: QueryEncoder batches them for the text encoder process.
    """

    def __init__(self, threads: int) -> None:
        self._limiter = anyio.CapacityLimiter(threads)

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs), limiter=self._limiter)


@dataclass(frozen=True, kw_only=True)
class Service:
    """What every route uses: the loaded engine and images, the settings, and where heavy calls run."""

    engine: CatalogSearch
    images: CatalogImages
    settings: ServiceSettings
    workers: ModelWorkers
    encode_queries: QueryEncoder
    uploads: UploadBudget
    facets: list[dict[str, Any]]
    text_encoder: SupervisedTextEncoder | None = None  # None: text is embedded in this process

    def require_product(self, product_id: int) -> None:
        if self.engine.row_of.get(product_id) is None:
            raise ApiError(404, f"product id {product_id} is not in the catalog")

    def upload_form(self, request: Request) -> AbstractAsyncContextManager[FormData]:
        """The request's multipart form under this server's upload caps: size, deadline and memory budget."""
        settings = self.settings
        return upload_form(request, settings.params.max_upload_bytes, settings.limits.body_timeout_s, self.uploads)

    async def uploaded_image(self, form: FormData) -> bytes:
        """The form's image, checked on a worker thread (decoding is too slow for the event loop)."""
        return await self.workers.run(check_image, await image_bytes(form))

    def problem(self) -> str | None:
        """Why the service cannot answer every request now (its text encoder is down), or None."""
        return self.text_encoder.problem() if self.text_encoder is not None else None


def current_service(request: Request) -> Service:
    """The one place a route gets the engine and everything around it: the service the request started
    on (serve/follow.py leases it on arrival), else the app's; replacing `app.state.service` swaps all."""
    return getattr(request.state, "service", None) or request.app.state.service


ServiceDep = Annotated[Service, Depends(current_service)]


def create_app(
    engine: CatalogSearch,
    images: CatalogImages,
    settings: ServiceSettings,
    *,
    encode_text: BatchEncoder | None = None,
    text_encoder: SupervisedTextEncoder | None = None,
) -> FastAPI:
    """The FastAPI app over one fixed engine (see `app_for`).

    Text queries are embedded by `text_encoder` when given (`serve` gives a supervised child
    process), else by `encode_text`, else on a worker thread of this process.
    """
    return app_for(build_service(engine, images, settings, encode_text=encode_text, text_encoder=text_encoder))


def app_for(service: Service, lifespan: Lifespan | None = None, follow_status: FollowStatus | None = None) -> FastAPI:
    """The FastAPI app: JSON API under /api, /health, /metrics, the page at /, OpenAPI docs at /docs.

    `follow_status` (serve/follow.py) adds to /health whether the server keeps up with production."""
    app = FastAPI(
        title="modaclip", summary="Fine-tuned CLIP search over a fashion catalog", version="1", lifespan=lifespan
    )
    app.state.service = service
    app.state.follow_status = follow_status
    settings = service.settings
    filter_docs = {"parameters": [_filter_parameter(facet["name"], service.facets) for facet in service.facets]}
    _add_error_handlers(app)
    routers = (
        health_routes(),
        search_routes(filter_docs),
        event_routes(),
        product_routes(),
        classify_routes(),
        page_routes(),
    )
    for routes in routers:
        app.include_router(routes)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    limits = settings.limits
    if limits.rate_limit:
        app.add_middleware(RateLimit, rate=limits.rate_limit)
    if settings.params.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.params.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(ShedOverload, max_in_flight=limits.max_in_flight)
    add_metrics(app, _gauges(app))
    return app


def _gauges(app: FastAPI) -> ServerGauges:
    def shedder() -> ShedOverload | None:
        stack = app.middleware_stack  # built at the first request
        while stack is not None and not isinstance(stack, ShedOverload):
            stack = getattr(stack, "app", None)
        return stack

    def service() -> Service:
        return app.state.service

    def model() -> dict[str, str]:
        source = service().settings.source
        return {"version": source.version or "", "source": source.kind, "model": public_model_name(source)}

    return ServerGauges(
        in_flight=lambda: shedder().in_flight if shedder() else 0,
        shed=lambda: shedder().shed if shedder() else 0,
        encoder_queue=lambda: service().encode_queries.queued,
        encoder_restarts=lambda: service().text_encoder.restarts if service().text_encoder else 0,
        upload_bytes=lambda: service().uploads.held,
        model=model,
        search_log=lambda: service().settings.search_log.stats() if service().settings.search_log else None,
    )


def build_service(
    engine: CatalogSearch,
    images: CatalogImages,
    settings: ServiceSettings,
    *,
    encode_text: BatchEncoder | None = None,
    text_encoder: SupervisedTextEncoder | None = None,
    workers: ModelWorkers | None = None,
) -> Service:
    """Everything the routes use around one engine (`create_app` says where text is embedded).

    Assigning a new one to `app.state.service` swaps the served model for every later request;
    requests already running finish with the one they started with.
    """
    limits = settings.limits
    encode = text_encoder.encode if text_encoder else encode_text
    encode_queries = QueryEncoder(
        encode or partial(anyio.to_thread.run_sync, engine.embedder.embed_texts),
        cache_size=settings.params.query_cache,
        max_queue=limits.encoder_queue,
        max_batch=limits.encoder_batch,
    )
    return Service(
        engine=engine,
        images=images,
        settings=settings,
        workers=workers or ModelWorkers(settings.params.threads),
        encode_queries=encode_queries,
        uploads=UploadBudget(limits.upload_memory_bytes),
        facets=catalog_facets(engine.info, [c for c in FILTERABLE_COLUMNS if c in engine.info.columns]),
        text_encoder=text_encoder,
    )


def health_routes() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/health",
        summary="Whether the server can answer (503 with the reason when not), which model serves since when",
        response_model=HealthReport,
        responses={503: {"model": HealthReport, "description": "text search is down; `reason` says why"}},
    )
    async def health(service: ServiceDep, request: Request, response: Response) -> HealthReport:
        problem = service.problem()
        follow = request.app.state.follow_status() if request.app.state.follow_status else {}
        if problem:
            response.status_code = 503
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        engine, source = service.engine, service.settings.source
        search_log = service.settings.search_log
        stats = search_log.stats() if search_log else None
        log_problem = f"search log: {stats.problem}" if stats and stats.problem else None
        degraded = "; ".join(p for p in (follow.get("problem"), log_problem) if p) or None
        return HealthReport(
            status="unavailable" if problem else "degraded" if degraded else "ok",
            reason=problem,
            problem=degraded,
            loaded=follow.get("loaded"),
            follow=follow.get("follow"),
            model=public_model_name(source),
            source=source.kind,
            version=source.version,
            since=source.since.isoformat() if source.since else None,
            catalog_size=len(engine),
            index=index_kind_of(engine.index),
            embedding_dim=int(engine.vectors.shape[1]),
            text_encoder_restarts=service.text_encoder.restarts if service.text_encoder else 0,
            search_log=SearchLogReport.of(stats) if stats else None,
        )

    return router


def public_model_name(source: SearchSource) -> str:
    """The served model as /health and /metrics name it: a model folder by its name only, never its path."""
    return f"model folder {Path(source.model).name}" if source.kind == "folder" else source.description


def search_routes(filter_docs: dict[str, Any]) -> APIRouter:
    """Text search and similar products (by catalog id or uploaded image), paged and filtered."""
    router = APIRouter(prefix="/api", responses=ERRORS)

    @router.get(
        "/search",
        summary="Text-to-image search; filters are query parameters such as gender=Women",
        openapi_extra=filter_docs,
        response_model=TextSearchPage,
    )
    async def search(
        request: Request,
        service: ServiceDep,
        q: str = Query(..., max_length=MAX_QUERY_CHARS, description="the text query, e.g. red summer dress"),
        k: int = Query(24, ge=1, le=MAX_PAGE, description="hits in this page"),
        offset: int = Query(0, ge=0, description="hits to skip (paging)"),
        hybrid: bool = Query(False, description="fuse the vector ranking with BM25 over names and attributes"),
        session: Session = None,
    ) -> dict[str, Any]:
        engine, workers = service.engine, service.workers
        filters, ignored = request_filters(request, engine, {"q", "hybrid", *NAMED})
        depth = search_depth(offset, k, len(engine))
        with client_errors():
            engine.check_text_search([q], depth)
        allowed = await workers.run(mask_of, engine, filters) if filters else None
        vectors = await until_client_leaves(request, service.encode_queries([q]))
        if allowed is not None or hybrid:  # exact ranking of a filtered subset, or BM25: too slow for the event loop
            hits = (await workers.run(engine.rank_text, [q], vectors, depth, allowed=allowed, hybrid=hybrid))[0]
        else:
            hits = engine.rank_text([q], vectors, depth, allowed=None)[0]
        found = page(hits, offset, k, ignored)
        mode = "hybrid" if hybrid else "vector"
        logged = log_search(service, found, kind="text", query=q, filters=filters, session=session, mode=mode)
        return {"query": q, **logged}

    @router.get(
        "/similar/{product_id}",
        summary="Products that look like a catalog product (itself excluded)",
        openapi_extra=filter_docs,
        response_model=SimilarProductPage,
    )
    async def similar_to_product(
        request: Request,
        service: ServiceDep,
        product_id: int = PathParam(description="a catalog product id"),
        k: int = Query(24, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0),
        session: Session = None,
    ) -> dict[str, Any]:
        engine = service.engine
        filters, ignored = request_filters(request, engine, NAMED)
        service.require_product(product_id)
        depth = search_depth(offset, k, len(engine))
        hits = await service.workers.run(similar_hits, engine, product_id, depth, filters)
        found = page(hits, offset, k, ignored)
        logged = log_search(
            service,
            found,
            kind="similar_product",
            query=str(product_id),
            filters=filters,
            session=session,
            mode="vector",
        )
        return {"product": product_json(engine, product_id), **logged}

    @router.post(
        "/similar",
        summary="Products that look like an uploaded image (multipart field 'image')",
        openapi_extra={**filter_docs, "requestBody": _upload_body({"image": {"type": "string", "format": "binary"}})},
        response_model=Page,
    )
    async def similar_to_image(
        request: Request,
        service: ServiceDep,
        k: int = Query(24, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0),
        session: Session = None,
    ) -> dict[str, Any]:
        engine = service.engine
        filters, ignored = request_filters(request, engine, NAMED)
        depth = search_depth(offset, k, len(engine))
        async with service.upload_form(request) as form:
            image = await service.uploaded_image(form)
            hits = await service.workers.run(similar_hits, engine, image, depth, filters)
        found = page(hits, offset, k, ignored)
        return log_search(
            service, found, kind="similar_image", query=None, filters=filters, session=session, mode="vector"
        )

    return router


def product_routes() -> APIRouter:
    """The catalog itself: facets for the filter controls, a product's record and its image."""
    router = APIRouter(prefix="/api", responses=ERRORS)

    @router.get(
        "/facets",
        summary="Filterable columns with their values (or numeric range) and product counts",
        response_model=Facets,
        response_model_exclude_none=True,
    )
    async def get_facets(service: ServiceDep) -> dict[str, Any]:
        return {"catalog_size": len(service.engine), "facets": service.facets}

    @router.get("/products/{product_id}", summary="A product's name, attributes and image URL", response_model=Product)
    async def product(service: ServiceDep, product_id: int = PathParam(description="a catalog product id")) -> Any:
        service.require_product(product_id)
        return product_json(service.engine, product_id)

    @router.get(
        "/products/{product_id}/image",
        summary="A product's stored image",
        response_class=Response,
        responses={200: {"content": {kind: {} for kind in IMAGE_TYPES}, "description": "the image's bytes"}},
    )
    async def product_image(
        service: ServiceDep, product_id: int = PathParam(description="a catalog product id")
    ) -> Response:
        service.require_product(product_id)
        data = service.images.get(product_id)
        if data is None:
            raise ApiError(404, f"product id {product_id} has no stored image")
        return Response(data, media_type=image_media_type(data), headers={"Cache-Control": "public, max-age=3600"})

    return router


def classify_routes() -> APIRouter:
    router = APIRouter(prefix="/api", responses=ERRORS)

    @router.post(
        "/classify",
        summary="Zero-shot classification of an uploaded image among candidate labels",
        response_model=Classification,
        openapi_extra={
            "requestBody": _upload_body(
                {
                    "image": {"type": "string", "format": "binary"},
                    "labels": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_CHARS},
                        "minItems": 1,
                        "maxItems": MAX_LABELS,
                        "description": f"repeat the field, or comma-separate; at most {MAX_LABELS} labels "
                        f"of {MAX_LABEL_CHARS} characters",
                    },
                    "template": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": MAX_TEMPLATE_CHARS, "pattern": "\\{label\\}"},
                        "maxItems": MAX_TEMPLATES,
                        "description": f"prompts with {LABEL_FIELD} (filled in as plain text), default "
                        f"{DEFAULT_TEMPLATES[0]!r}; at most {MAX_TEMPLATES} of {MAX_TEMPLATE_CHARS} characters",
                    },
                },
                required=["image", "labels"],
            )
        },
    )
    async def classify(request: Request, service: ServiceDep) -> dict[str, Any]:
        async with service.upload_form(request) as form:
            labels = form_labels(form.getlist("labels"))
            templates = form_templates(form.getlist("template"))
            image = await service.uploaded_image(form)
            ranked = await service.workers.run(classify_image, service.engine.embedder, image, labels, templates)
        return classification_json(ranked)

    return router


def event_routes() -> APIRouter:
    """What shoppers did with a search's results, reported by the page or the shop's front end."""
    router = APIRouter(prefix="/api", responses=ERRORS)
    body = {"application/json": {"schema": ShopperEvent.model_json_schema()}}

    @router.post(
        "/events",
        summary="Report a product opened or added from a search's results (the search_id its response gave)",
        status_code=202,
        response_model=EventAccepted,
        openapi_extra={"requestBody": {"required": True, "content": body}},
    )
    async def shopper_event(request: Request, service: ServiceDep) -> dict[str, Any]:
        event = parse_event(await small_body(request, MAX_EVENT_BYTES, service.settings.limits.body_timeout_s))
        service.require_product(event.product_id)
        search_log = service.settings.search_log
        queued = search_log is not None and search_log.record_event(event.search_id, event.product_id, event.event)
        return {"logged": queued}

    return router


async def small_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """A short request body, read whole; past `max_bytes` (Content-Length can lie or be absent) a 413, past
    `timeout_s` a 408."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"body of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    body = bytearray()
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise ApiError(413, f"body is over the limit of {max_bytes} bytes")
    except TimeoutError as err:
        raise ApiError(408, f"body not received whole within {timeout_s:g} s") from err
    except ClientDisconnect as err:
        raise ApiError(499, "the client closed the connection before its body arrived whole") from err
    return bytes(body)


def parse_event(body: bytes) -> ShopperEvent:
    """The event a body holds, or a 422 naming each field that is wrong."""
    try:
        return ShopperEvent.model_validate_json(body)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()]
        raise ApiError(422, "; ".join(problems)) from err


def log_search(
    service: Service,
    found: dict[str, Any],
    *,
    kind: Literal["text", "similar_product", "similar_image"],
    query: str | None,
    filters: Sequence[AttributeFilter],
    session: str | None,
    mode: str,
) -> dict[str, Any]:
    """The page with its search_id, the search queued for the log when the server keeps one."""
    search_log = service.settings.search_log
    if search_log is None:
        return {**found, "search_id": uuid.uuid4().hex}
    # an empty token is no token: each such search its own shopper
    shopper = session.strip() or None if session else None
    search_id = search_log.record_search(
        kind,
        query,
        filters={f.column: list(f.values) or [f.describe().partition("=")[2]] for f in filters},
        session=shopper,
        model=public_model_name(service.settings.source),
        mode=mode,
        offset=found["offset"],
        shown=[hit["id"] for hit in found["results"]],
    )
    return {**found, "search_id": search_id}


def page_routes() -> APIRouter:
    """The search page (its scripts and styles are the /static mount)."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def index_page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    return router


@contextmanager
def client_errors() -> Iterator[None]:
    """A ModaclipError raised inside is the request's fault (a bad query or filter): a 400 with its message.

    Anywhere else a ModaclipError is the server's fault: a 500 whose message stays in the log.
    """
    try:
        yield
    except ModaclipError as err:
        raise ApiError(400, str(err)) from err


def mask_of(engine: CatalogSearch, filters: Sequence[AttributeFilter]) -> np.ndarray | None:
    with client_errors():
        return filter_mask(engine.info, filters)


def similar_hits(
    engine: CatalogSearch, image_or_id: bytes | int, depth: int, filters: Sequence[AttributeFilter]
) -> list[SearchHit]:
    """`engine.similar` with its filters checked first, as the client's errors (on a worker thread)."""
    return engine.rank_similar(image_or_id, depth, mask_of(engine, filters))


async def until_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, or cancelled as soon as the client disconnects, so a text query whose client
    went away is dropped from the encoder's queue instead of embedded for nobody."""

    async def cancel_when_gone(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    with anyio.CancelScope() as scope:
        watcher = asyncio.create_task(cancel_when_gone(scope))
        try:
            return await work
        finally:
            watcher.cancel()
    raise ApiError(499, "client closed the request")


def request_filters(
    request: Request, engine: CatalogSearch, named: set[str]
) -> tuple[list[AttributeFilter], list[str]]:
    """The attribute filters among the query parameters, and the names of those that are neither named nor a filter.

    A parameter named for a filterable column of the catalog is a filter: `gender=Women`,
    `baseColour=Red,Blue` or repeated, `year=2012..2015`. Any other (`utm_source`, a cache-busting
    `_`) is ignored, and listed in the response's `ignored_parameters`.
    """
    params = request.query_params
    columns = set(FILTERABLE_COLUMNS) & set(engine.info.columns)
    filters, ignored = [], []
    for name in dict.fromkeys(params.keys()):
        if name in named:
            continue
        if name not in columns:
            ignored.append(name)
            continue
        value = ",".join(params.getlist(name))
        if len(value) > MAX_FILTER_CHARS:
            raise ApiError(400, f"filter {name}: at most {MAX_FILTER_CHARS} characters of values, got {len(value)}")
        with client_errors():
            filters.append(AttributeFilter.parse(f"{name}={value}"))
    return filters, ignored


def search_depth(offset: int, k: int, catalog_size: int) -> int:
    """How many hits to rank for this page: one more than it shows, to tell whether another page follows."""
    if offset + k > MAX_DEPTH:
        raise ApiError(400, f"offset + k must be at most {MAX_DEPTH}, got {offset + k}")
    return min(offset + k + 1, catalog_size)


def page(hits: Sequence[SearchHit], offset: int, k: int, ignored: list[str]) -> dict[str, Any]:
    shown = hits[offset : offset + k]
    more = len(hits) > offset + k and offset + k < MAX_DEPTH
    return {
        "offset": offset,
        "k": k,
        "results": [hit_json(hit) for hit in shown],
        "next_offset": offset + k if more else None,
        "ignored_parameters": ignored,
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
    longest = max(labels, key=len)
    if len(longest) > MAX_LABEL_CHARS:
        raise ApiError(400, f"labels: at most {MAX_LABEL_CHARS} characters a label, got {len(longest)}")
    if len(set(labels)) != len(labels):
        raise ApiError(400, f"labels: a label is repeated among {labels}")
    return labels


def form_templates(fields: Sequence[Any]) -> list[str]:
    """Prompt templates from repeated `template` fields (the default prompt when none); each must hold {label}."""
    templates = [field for field in fields if isinstance(field, str)] or list(DEFAULT_TEMPLATES)
    if len(templates) > MAX_TEMPLATES:
        raise ApiError(400, f"template: at most {MAX_TEMPLATES} templates, got {len(templates)}")
    for template in templates:
        if len(template) > MAX_TEMPLATE_CHARS:
            raise ApiError(400, f"template: at most {MAX_TEMPLATE_CHARS} characters a template, got {len(template)}")
        if LABEL_FIELD not in template:
            raise ApiError(400, f"template {template!r} must contain {LABEL_FIELD}")
    return templates


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
    schema = {"type": "string", "maxLength": MAX_FILTER_CHARS}
    return {"name": column, "in": "query", "required": False, "schema": schema, "description": description}


def _upload_body(properties: dict[str, Any], required: Sequence[str] = ("image",)) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure a client can cause becomes `{"error": "one line"}` with a 4xx status; a load cap or a
    down text encoder a 503 with Retry-After; anything else a 500 that names no file and shows no stack."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, err: UploadError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, err: Overloaded) -> JSONResponse:
        return shed_response(str(err))

    @app.exception_handler(TextEncoderError)
    async def encoder_failed(request: Request, err: TextEncoderError) -> JSONResponse:
        """The server cannot embed text queries: a 503 that says so, not a client error."""
        log.error("%s", err)
        return _error(503, str(err), {"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(ModaclipError)
    async def server_fault(request: Request, err: ModaclipError) -> JSONResponse:
        """Past `client_errors`, a ModaclipError is ours (a broken model or index file): its message names
        files, so it goes to the log only."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return _error(500, "internal error (ModaclipError); see the server log")

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
