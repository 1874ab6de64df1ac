"""Prometheus `/metrics` for operators: requests and their latency by route and status, and the server's load.

prometheus-fastapi-instrumentator counts requests (`http_requests_total`) and times them
(`http_request_duration_seconds`, a histogram) by handler (the route template, not the raw
path), method and status; `ServerCollector` adds what only the server knows, read at scrape
time: requests in flight and shed, text queries waiting for the encoder, text encoder restarts,
upload bytes held, which model version is served, and the search log's records written, dropped
(queue full), failed (store errors), files reopened and records queued (only when the server keeps a
log). Each app has its own registry, so several apps in one process (the tests) do not share counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator, metrics

if TYPE_CHECKING:
    from modaclip.feedback.search_log import LogStats


@dataclass(frozen=True)
class ServerGauges:
    """Where `ServerCollector` reads each figure at scrape time."""

    in_flight: Callable[[], int]
    shed: Callable[[], int]
    encoder_queue: Callable[[], int]
    encoder_restarts: Callable[[], int]
    upload_bytes: Callable[[], int]
    model: Callable[[], dict[str, str]]
    search_log: Callable[[], LogStats | None]


class ServerCollector(Collector):
    def __init__(self, gauges: ServerGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        g = self._gauges
        yield GaugeMetricFamily("modaclip_requests_in_flight", "Requests being handled now", value=g.in_flight())
        yield CounterMetricFamily("modaclip_requests_shed", "Requests refused with 503 at the in-flight cap", g.shed())
        yield GaugeMetricFamily(
            "modaclip_text_encoder_queue", "Text queries waiting for a forward pass", value=g.encoder_queue()
        )
        yield CounterMetricFamily(
            "modaclip_text_encoder_restarts", "Text encoder processes replaced (hung or dead)", g.encoder_restarts()
        )
        yield GaugeMetricFamily("modaclip_upload_bytes", "Upload bytes held in memory now", value=g.upload_bytes())
        yield InfoMetricFamily("modaclip_model", "The served model", value=g.model())
        stats = g.search_log()
        if stats is not None:
            yield from search_log_metrics(stats)


def search_log_metrics(stats: LogStats) -> Iterator[Metric]:
    for name, help_text, value in (
        ("written", "Search log records (searches and events) written", stats.written),
        ("dropped", "Search log records dropped because its queue was full", stats.dropped),
        ("failed", "Search log records lost to failed writes (locked, full or broken store)", stats.failed),
        ("reopened", "Search log files found deleted or replaced, a new one started", stats.reopened),
    ):
        yield CounterMetricFamily(f"modaclip_search_log_{name}", help_text, value)
    yield GaugeMetricFamily("modaclip_search_log_queue", "Search log records waiting to be written", value=stats.queued)
    yield GaugeMetricFamily(
        "modaclip_search_log_failing", "1 while writes to the search log fail, else 0", value=int(bool(stats.problem))
    )


def add_metrics(app: FastAPI, gauges: ServerGauges) -> None:
    """Instrument every route and expose /metrics (add it last: its middleware must see shed requests too)."""
    registry = CollectorRegistry()
    registry.register(ServerCollector(gauges))
    instrumentator = Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"], registry=registry)
    instrumentator.add(metrics.requests(registry=registry), metrics.latency(registry=registry))
    instrumentator.instrument(app).expose(
        app,
        include_in_schema=True,
        response_class=PlainTextResponse,
        summary="Prometheus metrics: requests and latency by route and status, load, encoder, model",
    )
