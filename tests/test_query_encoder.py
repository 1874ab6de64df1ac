"""QueryEncoder: concurrent callers share forward passes, repeats come from the cache, errors reach everyone;
and the unpadded text encoder gives the library's embeddings."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest
import torch

from modaclip.clip_model import ClipBundle, create_base_model, encode_texts
from modaclip.query_encoder import QueryEncoder, unpadded_text_encoder


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


@pytest.fixture(scope="module")
def bundle() -> ClipBundle:
    return create_base_model("modaclip-tiny", "none", seed=0)


def test_unpadded_encoder_gives_the_library_embeddings(bundle: ClipBundle) -> None:
    texts = ["red dress", "a", "women blue casual slim fit jeans " * 8, "black leather shoes for men"]  # one past the context
    unpadded = unpadded_text_encoder(bundle)
    assert not isinstance(unpadded, partial)
    np.testing.assert_allclose(unpadded(texts), encode_texts(bundle, texts), atol=1e-5)
    np.testing.assert_allclose(unpadded(texts[:1]), encode_texts(bundle, texts[:1]), atol=1e-5)


def test_other_text_towers_get_the_plain_encoder(bundle: ClipBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle.model, "text_pool_type", "last")
    assert isinstance(unpadded_text_encoder(bundle), partial)


def test_a_text_tower_that_sees_the_padding_gets_the_plain_encoder(bundle: ClipBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the causal mask the padding changes the result: the probe comparison must catch that."""
    monkeypatch.setattr(bundle.model, "attn_mask", torch.zeros_like(bundle.model.attn_mask))
    assert isinstance(unpadded_text_encoder(bundle), partial)
