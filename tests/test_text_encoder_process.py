"""TextEncoderProcess: a child process embeds like the model in this process, reports errors, and stops."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modaclip.clip_model import encode_texts, load_model
from modaclip.errors import ModaclipError
from modaclip.text_encoder_process import TextEncoderError, TextEncoderProcess

TEXTS = ["red summer dress", "a", "women blue casual slim fit jeans for the summer season and more words"]


@pytest.fixture(scope="module")
def encoder(served_paths: dict[str, Path]) -> Iterator[TextEncoderProcess]:
    with TextEncoderProcess(served_paths["model"]) as process:
        yield process


def test_the_child_embeds_like_the_model_in_this_process(encoder: TextEncoderProcess, served_paths: dict[str, Path]) -> None:
    expected = encode_texts(load_model(served_paths["model"]), TEXTS)
    np.testing.assert_allclose(encoder(TEXTS), expected, atol=1e-5)
    np.testing.assert_allclose(asyncio.run(encoder.encode(TEXTS[:2])), expected[:2], atol=1e-5)
    assert encoder.dim == expected.shape[1]


def test_a_failing_batch_is_an_error_and_the_child_keeps_serving(encoder: TextEncoderProcess) -> None:
    with pytest.raises(TextEncoderError, match="text encoder: "):
        encoder([])
    assert encoder(TEXTS[:1]).shape == (1, encoder.dim)


def test_a_caller_cancelled_mid_batch_does_not_leave_its_answer_to_the_next(encoder: TextEncoderProcess) -> None:
    expected = encoder(TEXTS)

    async def session() -> np.ndarray:
        first = asyncio.ensure_future(encoder.encode(TEXTS[:1]))
        await asyncio.sleep(0)  # it sends its batch and waits for the answer
        first.cancel()
        return await encoder.encode(TEXTS[1:])

    np.testing.assert_allclose(asyncio.run(session()), expected[1:], atol=1e-6)


def test_a_folder_without_a_model_fails_at_start_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ModaclipError, match=f"{tmp_path}.*not a saved model"):
        TextEncoderProcess(tmp_path)


def test_a_dead_child_is_reported_with_its_exit_code_and_close_stops_a_live_one(served_paths: dict[str, Path]) -> None:
    process = TextEncoderProcess(served_paths["model"])
    process._process.kill()
    process._process.wait(timeout=10)
    with pytest.raises(TextEncoderError, match=f"exited \\(exit code -{signal.SIGKILL}\\)"):
        process(TEXTS)
    process.close()

    with TextEncoderProcess(served_paths["model"]) as live:
        child = live._process
    assert child.returncode == 0
