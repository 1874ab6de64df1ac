"""Text query embeddings for a server's event loop: concurrent queries share one forward pass, repeats are cached.

On a CPU a forward pass over 16 queries costs about 3x one query, not 16x, and search traffic
repeats its popular queries. So while one forward pass runs, the queries of the requests that
arrive meanwhile wait together and go into the next one, and recent results are kept in a bounded
LRU cache. The batching happens on the event loop itself, not on request threads: a thread that
wakes from a lock or a pipe must take the GIL back, and in a busy server that hand-back cost more
than the forward pass (BENCHMARKS.md#http-api-under-load).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

DEFAULT_CACHE_SIZE = 10_000  # 10k vectors of dimension 512 are 20 MB

BatchEncoder = Callable[[list[str]], Awaitable[np.ndarray]]


class QueryEncoder:
    """`await encoder(texts) -> float32 [N, D]`, for coroutines of one event loop.

    `encode` embeds a batch of distinct texts; it is awaited by one batch at a time.
    """

    def __init__(self, encode: BatchEncoder, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._encode = encode
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._waiting: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        cached = self._cached(texts)
        if cached is not None:
            return cached
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
        """Embed everything waiting in one pass (each distinct text once), wake the waiters, repeat until none wait."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
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
