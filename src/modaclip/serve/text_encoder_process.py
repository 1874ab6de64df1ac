"""Embed text queries in a child process, so the forward pass does not share the server's GIL.

torch releases the GIL inside each operator and takes it back between them. In a server whose
event loop and request threads keep the GIL busy, every one of those hand-backs waits for the
interpreter's switch interval: a text forward pass that takes 6 ms alone took 30 ms inside the
loaded server, and the serialised passes capped its throughput (BENCHMARKS.md#http-api-under-load).
A child process has its own interpreter; the server only sends it strings and reads back
vectors through a socket. The child is a plain `python -c` subprocess, not a multiprocessing
one: it does not re-import the caller's main module, so a script that calls `serve` needs no
`if __name__ == "__main__"` guard.

`SupervisedTextEncoder` is what the server uses: each encode has a timeout, and a child that
hangs or dies is killed and replaced on a worker thread while requests that need it get a 503
and /health reports it down with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import numpy as np

from modaclip.core.errors import ModaclipError

START_TIMEOUT_S = 300  # importing torch and loading a large model on a slow disk
PARENT_GONE = (EOFError, BrokenPipeError, ConnectionResetError)
CHILD_CODE = "import sys; from modaclip.serve.text_encoder_process import serve_texts; serve_texts(*sys.argv[1:])"
RESTART_PAUSE_S = 5.0  # between tries to start a replacement child that failed to start

log = logging.getLogger(__name__)


class TextEncoderError(RuntimeError):
    """The text encoder process failed a batch or is gone: the server's fault, not the client's."""


class TextEncoderProcess:
    """`encode(texts) -> float32 [N, D]` answered by a child process that holds its own copy of the text tower.

    The child runs the ONNX text tower in `towers_dir` with onnxruntime when it was exported from
    the model's weights (no torch loaded), else the saved model in torch without its image tower.
    One batch is in the socket at a time. A batch the child fails raises TextEncoderError here and
    the child keeps serving; a child that died is reported with its exit code. A model the child
    cannot load is a ModaclipError at start.
    """

    def __init__(self, model_dir: str | Path, towers_dir: str | Path | None = None, threads: int = 1) -> None:
        ours, theirs = socket.socketpair()
        towers = str(towers_dir or "")
        command = [sys.executable, "-c", CHILD_CODE, str(theirs.fileno()), str(model_dir), towers, str(threads)]
        self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()])
        theirs.close()
        self._conn = Connection(ours.detach())
        self._async_lock = asyncio.Lock()
        self._unread = 0  # answers the child sent or will send to callers that were cancelled
        try:
            self.dim = self._wait_until_ready(model_dir)
        except BaseException:  # Ctrl-C while the model loads included: the child must not outlive this
            self.close()
            raise

    def _wait_until_ready(self, model_dir: str | Path) -> int:
        if not self._conn.poll(START_TIMEOUT_S):
            raise ModaclipError(f"text encoder process for {model_dir} did not start within {START_TIMEOUT_S} s")
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError) as err:
            code = self._process.wait()
            raise ModaclipError(
                f"text encoder process for {model_dir} exited while starting (exit code {code}); its error is above"
            ) from err
        if kind != "ready":
            raise ModaclipError(f"text encoder process for {model_dir}: {payload}")
        return int(payload)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed, blocking until the child answers: for start-up checks, not while `encode` may be running."""
        self._send(texts)
        return self._vectors(self._receive())

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed without blocking the event loop: its selector says when the child has answered.

        A caller cancelled while the child works leaves its answer in the socket; the next call
        reads and drops it first, so nobody gets another caller's vectors. (Not `asyncio.shield`:
        its extra task costs two turns of a busy event loop per batch, a third of the throughput.)
        """
        async with self._async_lock:
            while self._unread:
                await self._readable()
                self._receive()
                self._unread -= 1
            self._send(texts)
            self._unread += 1
            await self._readable()
            reply = self._receive()
            self._unread -= 1
            return self._vectors(reply)

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        loop.add_reader(self._conn.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(self._conn.fileno())

    def _send(self, texts: Sequence[str]) -> None:
        try:
            self._conn.send(list(texts))
        except OSError as err:
            raise self._died() from err

    def _receive(self) -> tuple[str, object]:
        try:
            return self._conn.recv()
        except (EOFError, OSError) as err:
            raise self._died() from err

    def _vectors(self, reply: tuple[str, object]) -> np.ndarray:
        kind, payload = reply
        if kind == "error":
            raise TextEncoderError(f"text encoder: {payload}")
        return payload

    def _died(self) -> TextEncoderError:
        return TextEncoderError(f"text encoder process exited (exit code {self._process.poll()})")

    @property
    def exit_code(self) -> int | None:
        """None while the child runs."""
        return self._process.poll()

    def kill(self) -> None:
        """Stop a child that may be hung: no waiting for it to finish its batch."""
        self._conn.close()
        self._process.kill()
        self._process.wait()

    def close(self) -> None:
        """Stop the child: closing the socket ends its loop; it is killed if it does not exit in time."""
        self._conn.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> TextEncoderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SupervisedTextEncoder:
    """`await encode(texts)` by a TextEncoderProcess that is replaced when it hangs or dies.

    An encode that takes over `timeout_s` means a hung child: it is killed. A killed or dead
    child (noticed by an encode, or by `problem()`, which /health calls) is replaced by a new one
    started on a worker thread, again after RESTART_PAUSE_S if that one fails to start. Meanwhile
    every encode is a TextEncoderError (a 503) and `problem()` says why the encoder is down.
    """

    def __init__(self, start: Callable[[], TextEncoderProcess], timeout_s: float) -> None:
        self._start = start
        self._timeout_s = timeout_s
        self._process: TextEncoderProcess | None = start()
        self._down_reason = ""
        self._replacing: asyncio.Task[None] | None = None
        self.restarts = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed, blocking: for the start-up check only."""
        if self._process is None:
            raise TextEncoderError(self.problem() or "text encoder down")
        return self._process(texts)

    async def encode(self, texts: list[str]) -> np.ndarray:
        process = self._process
        if process is None or self.problem():
            raise TextEncoderError(f"text encoder unavailable ({self._down_reason}); it is being restarted")
        try:
            with anyio.fail_after(self._timeout_s):
                return await process.encode(texts)
        except TimeoutError as err:
            self._replace(f"it did not answer within {self._timeout_s:g} s")
            raise TextEncoderError(f"text encoder did not answer within {self._timeout_s:g} s; restarting it") from err
        except TextEncoderError as err:
            if process.exit_code is not None:
                self._replace(str(err))
            raise

    def problem(self) -> str | None:
        """Why text queries cannot be embedded now, or None; a child found dead is replaced."""
        if self._process is not None and self._process.exit_code is not None:
            self._replace(f"text encoder process exited (exit code {self._process.exit_code})")
        if self._process is None:
            return f"text encoder down: {self._down_reason}; restarting it (restarts so far: {self.restarts})"
        return None

    def _replace(self, reason: str) -> None:
        """Kill the current child and start a replacement in the background (once, however many callers see it)."""
        log.error("text encoder: %s; starting a new one", reason)
        self._down_reason = reason
        if self._process is not None:
            self._process.kill()
            self._process = None
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.get_running_loop().create_task(self._start_replacement())

    async def _start_replacement(self) -> None:
        while self._process is None:
            try:
                process = await anyio.to_thread.run_sync(self._start)
            except ModaclipError as err:  # its message names model files: it goes to the log, not to clients
                log.error("text encoder could not start: %s", err)
                self._down_reason = "a new text encoder process could not start (see the server log)"
                await asyncio.sleep(RESTART_PAUSE_S)
                continue
            self._process, self.restarts = process, self.restarts + 1
            log.info("text encoder restarted (%d restart%s so far)", self.restarts, "s"[: self.restarts > 1])

    def close(self) -> None:
        if self._replacing is not None:
            self._replacing.cancel()
        if self._process is not None:
            self._process.close()


def serve_texts(fd: str, model_dir: str, towers_dir: str, threads: str) -> None:
    """The child: load the text tower, then answer each list of texts with their vectors until the socket closes."""
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C reaches the whole process group; the parent decides when to stop
    from modaclip.model.embedders import Embedder, TorchEmbedder, open_embedder
    from modaclip.model.saved_model import weights_fingerprint

    conn = Connection(int(fd))
    try:
        embedder: Embedder = (
            open_embedder(model_dir, towers_dir, weights_fingerprint(model_dir), int(threads))
            if towers_dir
            else TorchEmbedder(model_dir, int(threads))
        )
        if isinstance(embedder, TorchEmbedder):
            embedder.bundle.model.visual = None  # never used here: its memory is freed
        encode = embedder.embed_texts
        reply: tuple[str, object] = ("ready", int(encode(["probe"]).shape[1]))
    except Exception as err:  # the parent reports it as the reason the server cannot start
        with contextlib.suppress(*PARENT_GONE):  # a parent stopped while this loaded has nobody to tell
            conn.send(("error", f"{err.__class__.__name__}: {err}"))
        return
    while True:
        try:
            conn.send(reply)  # first "ready", then each batch's answer
            texts = conn.recv()
        except PARENT_GONE:  # the server closed the socket, or died
            return
        try:
            reply = ("vectors", encode(texts))
        except Exception as err:  # one bad batch is the caller's error, not the end of the encoder
            reply = ("error", f"{err.__class__.__name__}: {err}")
