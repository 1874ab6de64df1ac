"""TextEncoderProcess: a child process embeds like the model in this process, reports errors, and stops."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import encode_texts, load_model
from modaclip.search.engine import CatalogSearch
from modaclip.serve.text_encoder_process import TextEncoderError, TextEncoderProcess

TEXTS = ["red summer dress", "a", "women blue casual slim fit jeans for the summer season and more words"]


@pytest.fixture(scope="module")
def encoder(served_paths: dict[str, Path]) -> Iterator[TextEncoderProcess]:
    with TextEncoderProcess(served_paths["model"]) as process:
        yield process


def test_the_child_embeds_like_the_model_in_this_process(
    encoder: TextEncoderProcess, served_paths: dict[str, Path]
) -> None:
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


def test_a_dead_child_is_reported_with_its_exit_code(served_paths: dict[str, Path]) -> None:
    process = TextEncoderProcess(served_paths["model"])
    process._process.kill()
    process._process.wait(timeout=10)
    with pytest.raises(TextEncoderError, match=f"exited \\(exit code -{signal.SIGKILL}\\)"):
        process(TEXTS)
    process.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_modaclip_serve_takes_its_flags_searches_through_the_child_and_stops_it_on_ctrl_c(
    served_paths: dict[str, Path], served_engine: CatalogSearch
) -> None:
    """The real command, started with non-default --host, --cors-origin and --max-upload-mb, each of which shows."""
    port, host, origin = free_port(), "127.0.0.2", "http://shop.example"
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    flags = ["--host", host, "--port", str(port), "--cors-origin", origin, "--max-upload-mb", "0.001"]
    flags += ["--threads", "2", "--query-cache", "0"]
    server = subprocess.Popen(
        [sys.executable, "-m", "modaclip.cli", "serve", *flags, *paths], stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://{host}:{port}/api/search?k=5&q=red+dress"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                request = urllib.request.Request(url, headers={"Origin": origin})
                with urllib.request.urlopen(request, timeout=5) as response:
                    allowed = response.headers["access-control-allow-origin"]
                    found = [hit["id"] for hit in json.load(response)["results"]]
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer within 120 s"
                time.sleep(0.5)
        assert found == [hit.id for hit in served_engine.search_text(["red dress"], k=5)[0]]
        assert allowed == origin
        upload = httpx.post(f"http://{host}:{port}/api/similar", files={"image": ("a.bin", b"x" * 2000)}, timeout=30)
        assert upload.status_code == 413, upload.text  # 0.001 MB = 1048 bytes
        with pytest.raises(OSError):  # bound to --host only
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        children = child_pids(server.pid)
        assert len(children) == 1
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        time.sleep(0.5)
        assert not any(Path(f"/proc/{pid}").exists() for pid in children), (
            "the text encoder process outlived the server"
        )
    finally:
        server.kill()
        server.wait()


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
