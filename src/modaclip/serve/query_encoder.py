"""Text query embeddings for a server's event loop: concurrent queries share one forward pass, repeats are cached.

On a CPU a forward pass over 16 queries costs about 3x one query, not 16x, and search traffic
repeats its popular queries. So while one forward pass runs, the queries of the requests that
arrive meanwhile wait together and go into the next one, and recent results are kept in a bounded
LRU cache. The batching happens on the event loop itself, not on request threads: a thread that
wakes from a lock or a pipe must take the GIL back, and in a busy server that hand-back cost more
than the forward pass (BENCHMARKS.md#http-api-under-load).

The queue is bounded: past `max_queue` waiting texts a request is refused at once (`Overloaded`,
a 503 with Retry-After) instead of waiting behind a backlog the encoder cannot clear. A forward
pass takes at most `max_batch` texts, and a request cancelled while it waits (its client went
away) is dropped before its texts are embedded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from modaclip.serve.overload import Overloaded

BatchEncoder = Callable[[list[str]], Awaitable[np.ndarray]]


class QueryEncoder:
    """`await encoder(texts) -> float32 [N, D]`, for coroutines of one event loop.

    Args:
        encode: embeds a batch of distinct texts; awaited by one batch at a time.
        cache_size: embeddings of recent texts kept; 0 = no cache.
        max_queue: texts waiting for a forward pass past which a call raises `Overloaded`.
        max_batch: texts in one forward pass.
    """

    def __init__(
        self,
        encode: BatchEncoder,
        *,
        cache_size: int,
        max_queue: int,
        max_batch: int,
    ) -> None:
        self._encode = encode
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._max_queue, self._max_batch = max_queue, max_batch
        self._waiting: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._runner: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Texts waiting for a forward pass (the one running aside)."""
        return sum(len(texts) for texts, _ in self._waiting)

    async def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        cached = self._cached(texts)
        if cached is not None:
            return cached
        if self.queued + len(texts) > self._max_queue:
            raise Overloaded(f"server busy: {self.queued} text queries wait for the encoder, the most it queues")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.append((texts, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._embed_waiting())
        return await future

    def _cached(self, texts: list[str]) -> np.ndarray | None:
        if not all(text in self._cache for text in texts):
            return None
        for text in texts:
            self._cache.move_to_end(text)
        return np.stack([self._cache[text] for text in texts])

    async def _embed_waiting(self) -> None:
        """Embed the waiting texts (up to `max_batch` a pass, each distinct text once), wake the waiters,
        repeat until none wait."""
        while self._waiting:
            batch = self._next_batch()
            if not batch:
                continue
            distinct = list(dict.fromkeys(text for texts, _ in batch for text in texts))
            try:
                vectors = self._by_text(distinct, await self._encode(distinct))
            except asyncio.CancelledError:  # the event loop is shutting down: nobody is left to answer
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting = []
                raise
            except Exception as err:  # every waiting request gets the error, not only the first
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self._remember(vectors)
            for texts, future in batch:
                if not future.done():  # a request whose client went away is cancelled
                    future.set_result(np.stack([vectors[text] for text in texts]))

    def _next_batch(self) -> list[tuple[list[str], asyncio.Future[np.ndarray]]]:
        """Waiting requests whose clients are still there, in arrival order, up to `max_batch` texts
        (always at least one request); the rest stay queued for the next pass."""
        self._waiting = [(texts, future) for texts, future in self._waiting if not future.done()]
        taken, size = 0, 0
        for texts, _ in self._waiting:
            if taken and size + len(texts) > self._max_batch:
                break
            taken, size = taken + 1, size + len(texts)
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    @staticmethod
    def _by_text(texts: list[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        if len(vectors) != len(texts):
            raise RuntimeError(f"the text encoder returned {len(vectors)} vectors for {len(texts)} texts")
        return dict(zip(texts, vectors))

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        for text, vector in vectors.items():
            self._cache[text] = vector
            self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
