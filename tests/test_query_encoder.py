"""QueryEncoder: concurrent callers share forward passes, repeats come from the cache, errors reach everyone."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modaclip.query_encoder import QueryEncoder


class SlowEncoder:
    """A stand-in model: one vector per text (its length and first letter), 50 ms per forward pass."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.batches.append(list(texts))
        time.sleep(0.05)
        if self.fail:
            raise RuntimeError("model broke")
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_concurrent_queries_share_forward_passes_and_get_their_own_vectors() -> None:
    model = SlowEncoder()
    encoder = QueryEncoder(model, cache_size=0)
    queries = [[f"query {'x' * i}"] for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(encoder, queries))
    for texts, vectors in zip(queries, results):
        np.testing.assert_array_equal(vectors, [[len(texts[0]), ord("q")]])
    assert len(model.batches) < 8
    assert sorted(t for batch in model.batches for t in batch) == sorted(q[0] for q in queries)


def test_repeated_queries_come_from_the_cache_and_it_stays_bounded() -> None:
    model = SlowEncoder()
    encoder = QueryEncoder(model, cache_size=2)
    encoder(["red dress", "blue jeans"])
    np.testing.assert_array_equal(encoder(["red dress", "blue jeans"]), [[9, ord("r")], [10, ord("b")]])
    assert len(model.batches) == 1
    encoder(["white shirt"])  # evicts "red dress", the least recently used
    encoder(["blue jeans"])
    encoder(["red dress"])
    assert model.batches == [["red dress", "blue jeans"], ["white shirt"], ["red dress"]]


def test_a_failed_forward_pass_fails_every_caller_waiting_on_it() -> None:
    encoder = QueryEncoder(SlowEncoder(fail=True), cache_size=0)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(encoder, [f"q{i}"]) for i in range(6)]
    for future in futures:
        with pytest.raises(RuntimeError, match="model broke"):
            future.result()
