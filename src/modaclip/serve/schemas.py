"""The HTTP API's response bodies as pydantic models: every route declares one, so /openapi.json (and /docs)
documents every response, and a schema-driven client (tests/test_serve_schema.py runs Schemathesis) can
check the server against it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from modaclip.feedback.search_log import LogStats

AttributeValue = str | int | float | bool | None


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, in one line")


class FollowReport(BaseModel):
    model: str = Field(description="the --model followed: production or auto")
    every_s: float = Field(description="seconds between registry checks; 0 = pinned")
    fetch_from: str | None = Field(description="the git remote whose tags are fetched before each check")
    last_check: str | None = Field(description="when the registry was last checked (ISO 8601)")


class SearchLogReport(BaseModel):
    status: Literal["ok", "failing"] = Field(description="failing while writes to the log file fail; searching goes on")
    written: int = Field(description="records (searches and events) written since start")
    dropped: int = Field(description="records dropped because the queue was full")
    failed: int = Field(description="records lost to failed writes (file locked past the busy timeout, disk full, ...)")
    reopened: int = Field(description="times the log file was found deleted or replaced and a new one started")
    queued: int = Field(description="records waiting for the writer now")
    retention_days: int = Field(description="records older than this are deleted; 0 keeps everything")
    last_error: str | None = Field(description="the last error writing the log, kept after writes succeed again")

    @classmethod
    def of(cls, stats: LogStats) -> SearchLogReport:
        return cls(
            status="failing" if stats.problem else "ok",
            written=stats.written,
            dropped=stats.dropped,
            failed=stats.failed,
            reopened=stats.reopened,
            queued=stats.queued,
            retention_days=stats.retention_days,
            last_error=stats.last_error,
        )


class HealthReport(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="unavailable (with status 503) while text search is down; degraded (200) while it serves but "
        "cannot load the production it should follow, or cannot write its search log"
    )
    reason: str | None = Field(description="why the server is unavailable; null when ok")
    problem: str | None = Field(default=None, description="why the server is degraded; null when ok")
    loaded: str | None = Field(default=None, description="when this server swapped in the served version (ISO 8601)")
    follow: FollowReport | None = Field(default=None, description="the registry following; null when not following")
    model: str = Field(description="the served model, as `modaclip serve` resolved it")
    source: str = Field(description="production, a registry version, base or a model folder")
    version: str | None
    since: str | None = Field(description="when the served production version was promoted (ISO 8601)")
    catalog_size: int
    index: str
    embedding_dim: int
    text_encoder_restarts: int = Field(description="text encoder processes replaced since start")
    search_log: SearchLogReport | None = Field(default=None, description="the search log; null when off (--no-log)")


class Hit(BaseModel):
    id: int
    score: float
    name: str
    attributes: dict[str, AttributeValue]
    image_url: str


class Product(BaseModel):
    id: int
    name: str
    attributes: dict[str, AttributeValue]
    image_url: str


class Page(BaseModel):
    offset: int
    k: int
    results: list[Hit]
    next_offset: int | None = Field(description="the offset of the next page; null on the last one")
    ignored_parameters: list[str] = Field(description="query parameters that are neither named nor a filter")
    search_id: str = Field(description="names this search in POST /api/events (32 hex digits)")


class TextSearchPage(Page):
    query: str


class SimilarProductPage(Page):
    product: Product


class FacetValue(BaseModel):
    value: str
    count: int


class Facet(BaseModel):
    name: str
    values: list[FacetValue] | None = Field(None, description="a text column's values with product counts")
    min: int | float | None = Field(None, description="a numeric column's lowest value")
    max: int | float | None = Field(None, description="a numeric column's highest value")


class Facets(BaseModel):
    catalog_size: int
    facets: list[Facet]


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="cosine similarity of the image to the label's prompts")
    probability: float


class Classification(BaseModel):
    labels: list[LabelScore] = Field(description="every candidate label, most likely first")


class ShopperEvent(BaseModel):
    """What a shopper did with a search's result, as the page or the shop's front end reports it."""

    model_config = ConfigDict(extra="forbid")

    search_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="the search_id of the search response")
    product_id: int = Field(description="the product, one of that search's results")
    event: Literal["open", "add"] = Field(description="open: the shopper opened it; add: added it to the basket")


class EventAccepted(BaseModel):
    logged: bool = Field(description="false when the server keeps no search log or its queue was full")
