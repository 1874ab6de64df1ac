"""Schemathesis against the live server's own /openapi.json: every route, a bounded number of generated
requests each (hostile strings, huge numbers, random uploads), and never a 5xx nor a response that
differs from its documented status codes, content types and schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from live_server import live_server
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_serve import make_client

from modaclip.search.engine import CatalogSearch
from modaclip.serve.catalog_images import CatalogImages

EXAMPLES = 20  # per route, besides schemathesis's own coverage cases; the file takes about a minute on 2 loaded cores


@pytest.fixture(scope="module")
def server_url(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path]
) -> Iterator[str]:
    app = make_client(served_engine, served_images, served_paths).app
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(server_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{server_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_keeps_to_its_schema_and_never_answers_5xx(case: Any, server_url: str) -> None:
    case.call_and_validate(
        base_url=server_url,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=30,
    )
