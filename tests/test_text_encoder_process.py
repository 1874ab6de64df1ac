"""TextEncoderProcess: a child process embeds like the model in this process, reports errors, and stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from modaclip.core.config import ServeParams
from modaclip.core.errors import ModaclipError
from modaclip.feedback.log_schema import read_log
from modaclip.model.clip_model import encode_texts, load_model
from modaclip.registry.model_choice import SearchSource
from modaclip.search.engine import CatalogSearch
from modaclip.serve import text_encoder_process
from modaclip.serve.app import ServiceSettings, create_app
from modaclip.serve.catalog_images import CatalogImages
from modaclip.serve.text_encoder_process import SupervisedTextEncoder, TextEncoderError, TextEncoderProcess

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
    served_paths: dict[str, Path], served_engine: CatalogSearch, tmp_path: Path
) -> None:
    """The real command, started with non-default --host, --cors-origin, --max-upload-mb and --log, each of which
    shows (the search in the log once the server has stopped)."""
    port, host, origin = free_port(), "127.0.0.2", "http://shop.example"
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    flags = ["--host", host, "--port", str(port), "--cors-origin", origin, "--max-upload-mb", "0.001"]
    flags += ["--threads", "2", "--query-cache", "0", "--log", str(tmp_path / "log.sqlite")]
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
        logged = read_log([tmp_path / "log.sqlite"]).searches
        assert logged["query"].tolist() == ["red dress"] and logged["shown"][0] == [str(i) for i in found]
    finally:
        server.kill()
        server.wait()


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def supervised_app(
    served_engine: CatalogSearch, served_paths: dict[str, Path], start: Callable[[], TextEncoderProcess]
) -> tuple[SupervisedTextEncoder, TestClient]:
    encoder = SupervisedTextEncoder(start, timeout_s=3.0)
    source = SearchSource(
        served_paths["model"], served_paths["embeddings"], served_paths["catalog"], kind="folder", description="test"
    )
    settings = ServiceSettings(source=source, params=ServeParams(query_cache=0))
    app = create_app(served_engine, CatalogImages({}), settings, text_encoder=encoder)
    return encoder, TestClient(app)


def health_until(client: TestClient, status: int, fragment: str = "", seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/health")
        if response.status_code == status and fragment in (response.json()["reason"] or ""):
            return response.json()
        assert time.monotonic() < deadline, f"/health still {response.status_code}: {response.text}"
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [(signal.SIGSTOP, "did not answer within 3 s"), (signal.SIGKILL, f"exited (exit code -{signal.SIGKILL})")],
)
def test_a_hung_or_killed_child_is_replaced_and_health_is_503_with_the_reason_meanwhile(
    served_engine: CatalogSearch, served_paths: dict[str, Path], fault: signal.Signals, fragment: str
) -> None:
    encoder, client = supervised_app(served_engine, served_paths, partial(TextEncoderProcess, served_paths["model"]))
    expected = [hit.id for hit in served_engine.search_text(["red dress"], k=5)[0]]
    try:
        with client:
            assert client.get("/health").json()["status"] == "ok"
            child = encoder._process
            assert child is not None
            os.kill(child._process.pid, fault)
            if fault == signal.SIGKILL:
                while child.exit_code is None:
                    time.sleep(0.05)
            search = client.get("/api/search", params={"q": "red dress", "k": 5})
            assert search.status_code == 503 and search.headers["retry-after"] == "1", search.text
            assert fragment in search.json()["error"]
            down = client.get("/health")
            assert down.status_code == 503 and down.json()["status"] == "unavailable"
            assert fragment in down.json()["reason"]
            up = health_until(client, 200)
            assert up["status"] == "ok" and up["text_encoder_restarts"] == 1
            assert [
                hit["id"] for hit in client.get("/api/search", params={"q": "red dress", "k": 5}).json()["results"]
            ] == expected
            assert "modaclip_text_encoder_restarts_total 1.0" in client.get("/metrics").text
    finally:
        encoder.close()
    assert child.exit_code is not None  # the old child is gone, not left running beside the new one


def test_a_replacement_that_fails_to_start_is_retried_and_health_names_no_path(
    served_engine: CatalogSearch, served_paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(text_encoder_process, "RESTART_PAUSE_S", 0.2)
    starts = []

    def start() -> TextEncoderProcess:
        starts.append(time.monotonic())
        if len(starts) == 2:  # the first replacement fails, as a model folder being rewritten would
            raise ModaclipError(f"{tmp_path}: not a saved model")
        return TextEncoderProcess(served_paths["model"])

    encoder, client = supervised_app(served_engine, served_paths, start)
    try:
        with client:
            encoder._process._process.kill()
            down = health_until(client, 503, "could not start", seconds=60)
            assert str(tmp_path) not in str(down) and "see the server log" in down["reason"]
            assert health_until(client, 200)["text_encoder_restarts"] == 1
    finally:
        encoder.close()
    assert len(starts) == 3
