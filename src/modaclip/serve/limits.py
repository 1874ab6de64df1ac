"""The fixed caps the HTTP API puts on one request (docs/search.md#caps-load-limits-and-status-codes lists them).

Each bounds the work one request can ask for; a request past one is a 4xx that names it. They are part
of the API, not settings. The load the server takes (requests in flight, connections, upload bytes held,
the encoder's queue, timeouts) is set in params.yaml's `serve.limits` (`ServeLimits` in core/config.py).
"""

from __future__ import annotations

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
