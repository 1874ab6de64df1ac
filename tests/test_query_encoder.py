"""QueryEncoder: queries awaiting together share forward passes, repeats come from the cache, errors reach
every waiter; and the unpadded text encoder gives the library's embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from modaclip.core.config import ServeLimits
from modaclip.model.clip_model import ClipBundle, create_base_model, encode_texts
from modaclip.model.towers import unpadded_text_encoder
from modaclip.serve.overload import Overloaded
from modaclip.serve.query_encoder import QueryEncoder


class SlowEncoder:
    """A stand-in model: one vector per text (its length and first letter), 20 ms per forward pass."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        await asyncio.sleep(0.02)
        if self.fail:
            raise RuntimeError("model broke")
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


SHIPPED = ServeLimits()  # params.yaml's serve.limits as shipped


def encoder_of(
    model: SlowEncoder,
    cache_size: int,
    max_queue: int = SHIPPED.encoder_queue,
    max_batch: int = SHIPPED.encoder_batch,
) -> QueryEncoder:
    return QueryEncoder(model, cache_size=cache_size, max_queue=max_queue, max_batch=max_batch)


async def gather(encoder: QueryEncoder, queries: list[list[str]]) -> list[np.ndarray]:
    return await asyncio.gather(*(encoder(texts) for texts in queries), return_exceptions=True)


def test_queries_arriving_together_share_one_forward_pass_and_get_their_own_vectors() -> None:
    model = SlowEncoder()
    encoder = encoder_of(model, cache_size=0)
    queries = [[f"query {'x' * i}"] for i in range(16)] + [["query ", "shared"]]
    results = asyncio.run(gather(encoder, queries))
    for texts, vectors in zip(queries, results):
        np.testing.assert_array_equal(vectors, [[len(t), ord(t[0])] for t in texts])
    assert len(model.batches) == 1
    assert sorted(model.batches[0]) == sorted({t for texts in queries for t in texts})  # "query " embedded once


def test_queries_arriving_during_a_forward_pass_wait_for_the_next_one_together() -> None:
    model = SlowEncoder()
    encoder = encoder_of(model, cache_size=0)

    async def session() -> None:
        first = asyncio.ensure_future(encoder(["first"]))
        await asyncio.sleep(0.005)  # its pass is running
        await asyncio.gather(first, *(encoder([f"later {i}"]) for i in range(5)))

    asyncio.run(session())
    assert model.batches == [["first"], [f"later {i}" for i in range(5)]]


def test_repeated_queries_come_from_the_cache_and_it_stays_bounded() -> None:
    model = SlowEncoder()
    encoder = encoder_of(model, cache_size=2)

    async def session() -> np.ndarray:
        await encoder(["red dress", "blue jeans"])
        again = await encoder(["red dress", "blue jeans"])
        await encoder(["white shirt"])  # evicts "red dress", the least recently used
        await encoder(["blue jeans"])
        await encoder(["red dress"])
        return again

    np.testing.assert_array_equal(asyncio.run(session()), [[9, ord("r")], [10, ord("b")]])
    assert model.batches == [["red dress", "blue jeans"], ["white shirt"], ["red dress"]]


def test_a_failed_forward_pass_fails_every_request_waiting_on_it_and_the_next_pass_runs() -> None:
    model = SlowEncoder(fail=True)
    encoder = encoder_of(model, cache_size=0)

    async def session() -> tuple[list[object], np.ndarray]:
        failed = await gather(encoder, [[f"q{i}"] for i in range(6)])
        model.fail = False
        return failed, await encoder(["fine"])

    failed, fine = asyncio.run(session())
    assert all(isinstance(err, RuntimeError) and "model broke" in str(err) for err in failed)
    np.testing.assert_array_equal(fine, [[4, ord("f")]])


def test_an_encoder_that_returns_the_wrong_number_of_vectors_fails_the_batch_not_the_encoder() -> None:
    calls: list[list[str]] = []

    async def short(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.zeros((len(texts) - 1 if len(calls) == 1 else len(texts), 2), np.float32)

    encoder = encoder_of(short, cache_size=0)

    async def session() -> tuple[list[object], np.ndarray]:
        failed = await asyncio.wait_for(
            gather(encoder, [["a"], ["b"]]), timeout=5
        )  # before the fix: a dead runner, waiters hung
        return failed, await asyncio.wait_for(encoder(["c"]), timeout=5)

    failed, fine = asyncio.run(session())
    assert all(isinstance(err, RuntimeError) and "1 vectors for 2 texts" in str(err) for err in failed)
    assert fine.shape == (1, 2)


def test_a_request_cancelled_while_waiting_does_not_disturb_the_others() -> None:
    model = SlowEncoder()
    encoder = encoder_of(model, cache_size=0)

    async def session() -> list[object]:
        first = asyncio.ensure_future(encoder(["first"]))
        await asyncio.sleep(0)  # the first pass starts
        gone, stays = asyncio.ensure_future(encoder(["gone"])), asyncio.ensure_future(encoder(["stays"]))
        await asyncio.sleep(0)
        gone.cancel()  # its client disconnected while it waited for the next pass
        return await asyncio.gather(first, gone, stays, return_exceptions=True)

    first, gone, stays = asyncio.run(session())
    assert isinstance(gone, asyncio.CancelledError)
    np.testing.assert_array_equal(stays, [[5, ord("s")]])
    np.testing.assert_array_equal(first, [[5, ord("f")]])


@pytest.fixture(scope="module")
def bundle() -> ClipBundle:
    return create_base_model("modaclip-tiny", "none", seed=0)


def test_unpadded_encoder_gives_the_library_embeddings(bundle: ClipBundle) -> None:
    texts = [
        "red dress",
        "a",
        "women blue casual slim fit jeans " * 8,
        "black leather shoes for men",
    ]  # one past the context
    unpadded = unpadded_text_encoder(bundle)
    assert unpadded != bundle.embed_texts
    np.testing.assert_allclose(unpadded(texts), encode_texts(bundle, texts), atol=1e-5)
    np.testing.assert_allclose(unpadded(texts[:1]), encode_texts(bundle, texts[:1]), atol=1e-5)


def test_other_text_towers_get_the_plain_encoder(bundle: ClipBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle.model, "text_pool_type", "last")
    assert unpadded_text_encoder(bundle) == bundle.embed_texts


def test_a_text_tower_that_sees_the_padding_gets_the_plain_encoder(
    bundle: ClipBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the causal mask the padding changes the result: the probe comparison must catch that."""
    monkeypatch.setattr(bundle.model, "attn_mask", torch.zeros_like(bundle.model.attn_mask))
    assert unpadded_text_encoder(bundle) == bundle.embed_texts


def test_a_request_cancelled_while_it_waits_is_dropped_before_its_text_is_embedded() -> None:
    model = SlowEncoder()
    encoder = encoder_of(model, cache_size=0)

    async def session() -> None:
        first = asyncio.ensure_future(encoder(["first"]))
        await asyncio.sleep(0.005)  # its pass is running
        gone = asyncio.ensure_future(encoder(["client went away"]))
        kept = asyncio.ensure_future(encoder(["kept"]))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, kept)

    asyncio.run(session())
    assert model.batches == [["first"], ["kept"]]


def test_past_max_queue_a_request_is_refused_at_once_and_a_pass_takes_at_most_max_batch() -> None:
    model = SlowEncoder()
    encoder = encoder_of(model, cache_size=0, max_queue=4, max_batch=2)

    async def session() -> list[object]:
        first = asyncio.ensure_future(encoder(["first"]))
        await asyncio.sleep(0.005)  # its pass is running; the next four texts wait
        waiting = [asyncio.ensure_future(encoder([f"q{i}"])) for i in range(4)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="4 text queries wait"):
            await encoder(["one too many"])
        assert encoder.queued == 4
        return await asyncio.gather(first, *waiting)

    assert len(asyncio.run(session())) == 5
    assert model.batches == [["first"], ["q0", "q1"], ["q2", "q3"]]
