"""The HTTP API's response bodies as pydantic models: every route declares one, so /openapi.json (and /docs)
documents every response, and a schema-driven client (tests/test_serve_schema.py runs Schemathesis) can
check the server against it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

AttributeValue = str | int | float | bool | None


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, in one line")


class FollowReport(BaseModel):
    model: str = Field(description="the --model followed: production or auto")
    every_s: float = Field(description="seconds between registry checks; 0 = pinned")
    fetch_from: str | None = Field(description="the git remote whose tags are fetched before each check")
    last_check: str | None = Field(description="when the registry was last checked (ISO 8601)")


class HealthReport(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="unavailable (with status 503) while text search is down; degraded (200) while it serves but "
        "cannot load the production it should follow"
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
