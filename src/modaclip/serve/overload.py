"""Shedding load the server cannot take: a 503 with Retry-After at once, never a queue that grows without bound.

`ShedOverload` caps the requests in flight; `UploadBudget` caps the upload bytes held in memory by
all requests together; `RateLimit` is the optional per-client rate limit (the `limits` library's
moving window, the engine slowapi uses: slowapi's own middleware finds no route inside FastAPI's
included routers, so it let every request through). /health and /metrics are exempt from the
in-flight cap and the rate limit, so a load balancer and a scraper still get answers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.responses import JSONResponse
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from modaclip.serve.limits import RETRY_AFTER_S

EXEMPT_PATHS = frozenset({"/health", "/metrics"})


class Overloaded(Exception):
    """The server is at one of its load caps: a 503 with Retry-After, the client's cue to come back."""


def shed_response(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


class ShedOverload:
    """ASGI middleware: at most `max_in_flight` requests handled at once; the next ones are a 503 straight away."""

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.shed = 0
        self._body = json.dumps(
            {"error": f"server busy: {max_in_flight} requests in flight, the most it takes; retry shortly"}
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            await self._shed(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})


class UploadBudget:
    """Upload bytes held in memory by all requests together, at most `capacity`.

    A request takes bytes as its body arrives (its declared Content-Length at once when it gives
    one) and gives them all back when it is done, so slow clients that trickle a few bytes each
    cost little, and many large uploads at once are refused instead of filling memory.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0

    @contextmanager
    def account(self) -> Iterator[UploadAccount]:
        account = UploadAccount(self)
        try:
            yield account
        finally:
            self.held -= account.taken


class UploadAccount:
    """One request's share of an UploadBudget."""

    def __init__(self, budget: UploadBudget) -> None:
        self._budget = budget
        self.taken = 0

    def take(self, size: int) -> None:
        if self._budget.held + size > self._budget.capacity:
            raise Overloaded(
                f"server busy: uploads in progress hold {self._budget.held} bytes of the "
                f"{self._budget.capacity} it takes at once; retry shortly"
            )
        self._budget.held += size
        self.taken += size


class RateLimit:
    """ASGI middleware: at most `rate` requests (such as "120/minute") per client address; then a 429 + Retry-After.

    The client is the connection's address, which uvicorn takes from X-Forwarded-For when the proxy
    in front is trusted (its --forwarded-allow-ips), so each shopper behind a load balancer counts alone.
    """

    def __init__(self, app: ASGIApp, rate: str) -> None:
        self.app = app
        self.rate = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        if self._limiter.hit(self.rate, client):
            await self.app(scope, receive, send)
            return
        reset = self._limiter.get_window_stats(self.rate, client).reset_time
        response = JSONResponse(
            {"error": f"rate limit exceeded: {self.rate} per client; retry later"},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))},
        )
        await response(scope, receive, send)
