"""Every cap the HTTP API puts on a request and on the load it takes, in one place (docs/search.md lists them).

Request caps bound the work one request can ask for; a request past one is a 4xx that names it.
`ServiceLimits` bounds the load: requests in flight, open connections, upload bytes held at once,
text queries waiting for the encoder, how long a body may take to arrive and an encode to answer.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAGE = 100  # hits per request
MAX_DEPTH = 1000  # offset + k: a page that deep costs a search that deep, so deeper ones are refused
MAX_QUERY_CHARS = 300
MAX_FILTER_CHARS = 1000  # one attribute filter's values, all repeats and commas together
MAX_LABELS = 100
MAX_LABEL_CHARS = 100
MAX_TEMPLATES = 10
MAX_TEMPLATE_CHARS = 200
MAX_SESSION_CHARS = 128  # a search's `session` token
MAX_EVENT_BYTES = 1024  # a POST /api/events body: one event is under 150 bytes
MAX_FORM_FIELDS = MAX_LABELS + MAX_TEMPLATES + 1  # each label and template its own field, and the image
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: any real product photo; a bomb is refused before decoding
RETRY_AFTER_S = 1  # what a shed request's Retry-After header says


@dataclass(frozen=True)
class ServiceLimits:
    """How much load the server takes before it sheds, and how long it waits for a client or its encoder.

    Args:
        max_in_flight: requests handled at once (/health and /metrics aside); past it 503 + Retry-After.
        max_connections: open connections (uvicorn's limit_concurrency); past it uvicorn's own 503.
        body_timeout_s: an upload must arrive whole within this; later is a 408.
        upload_memory_bytes: upload bytes held in memory by all requests together; past it 503 + Retry-After.
        encoder_queue: text queries waiting for the encoder; past it 503 + Retry-After.
        encoder_batch: text queries in one forward pass.
        encode_timeout_s: a forward pass that takes longer means a hung encoder, which is replaced.
        keep_alive_s: an idle keep-alive connection is closed after this.
        shutdown_s: on SIGTERM, requests still running after this are cancelled and the server stops.
        rate_limit: per-client rate such as "120/minute" (the `limits` library's syntax); None = no rate limit.
    """

    max_in_flight: int = 512  # above 256 slow uploads plus the normal traffic of benchmarks/serve_overload.py
    max_connections: int = 1024
    body_timeout_s: float = 20.0
    upload_memory_bytes: int = 256 * 2**20
    encoder_queue: int = 512
    encoder_batch: int = 64
    encode_timeout_s: float = 10.0
    keep_alive_s: int = 5
    shutdown_s: int = 10
    rate_limit: str | None = None
