"""Embed text queries in a child process, so the forward pass does not share the server's GIL.

torch releases the GIL inside each operator and takes it back between them. In a server whose
event loop and request threads keep the GIL busy, every one of those hand-backs waits for the
interpreter's switch interval: a text forward pass that takes 6 ms alone took 30 ms inside the
loaded server, and the serialised passes capped its throughput (BENCHMARKS.md, "HTTP API under
load"). A child process has its own interpreter; the server only sends it strings and reads back
vectors through a socket. The child is a plain `python -c` subprocess, not a multiprocessing
one: it does not re-import the caller's main module, so a script that calls `serve` needs no
`if __name__ == "__main__"` guard.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from modaclip.errors import ModaclipError

START_TIMEOUT_S = 300  # importing torch and loading a large model on a slow disk
CHILD_CODE = "import sys; from modaclip.text_encoder_process import serve_texts; serve_texts(*sys.argv[1:])"


class TextEncoderProcess:
    """`encode(texts) -> float32 [N, D]` answered by a child process that holds its own copy of the model.

    One batch is in the socket at a time (the server's QueryEncoder sends one at a time anyway).
    The child drops the image tower it never uses. An error in the child is raised here as a
    ModaclipError and the child keeps serving; a child that died is reported with its exit code.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int = 1) -> None:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-c", CHILD_CODE, str(theirs.fileno()), str(model_dir), device, str(threads)]
        self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()])
        theirs.close()
        self._conn = Connection(ours.detach())
        self._async_lock = asyncio.Lock()
        if not self._conn.poll(START_TIMEOUT_S):
            self.close()
            raise ModaclipError(f"text encoder process for {model_dir} did not start within {START_TIMEOUT_S} s")
        kind, payload = self._receive()
        if kind != "ready":
            self.close()
            raise ModaclipError(f"text encoder process for {model_dir}: {payload}")
        self.dim: int = payload

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed, blocking until the child answers: for start-up checks, not while `encode` may be running."""
        self._send(texts)
        return self._vectors(self._receive())

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed without blocking the event loop: the loop wakes this coroutine when the answer is in the socket."""
        async with self._async_lock:
            self._send(texts)
            loop = asyncio.get_running_loop()
            readable = loop.create_future()
            loop.add_reader(self._conn.fileno(), lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(self._conn.fileno())
            return self._vectors(self._receive())

    def _send(self, texts: Sequence[str]) -> None:
        try:
            self._conn.send(list(texts))
        except OSError:
            raise self._died() from None

    @staticmethod
    def _vectors(reply: tuple[str, object]) -> np.ndarray:
        kind, payload = reply
        if kind == "error":
            raise ModaclipError(f"text encoder: {payload}")
        return payload

    def _receive(self) -> tuple[str, object]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None

    def _died(self) -> ModaclipError:
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return ModaclipError(f"text encoder process exited (exit code {code}); restart the server")

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


def serve_texts(fd: str, model_dir: str, device: str, threads: str) -> None:
    """The child: load the model, then answer each list of texts with their vectors until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides when to stop
    import torch

    from modaclip.clip_model import load_model
    from modaclip.query_encoder import unpadded_text_encoder

    conn = Connection(int(fd))
    torch.set_num_threads(int(threads))
    try:
        bundle = load_model(model_dir, device)
        bundle.model.visual = torch.nn.Identity()  # never used here: its memory is freed
        encode = unpadded_text_encoder(bundle)
        conn.send(("ready", int(encode(["probe"]).shape[1])))
    except Exception as err:  # the parent reports it as the reason the server cannot start
        conn.send(("error", f"{err.__class__.__name__}: {err}"))
        return
    while True:
        try:
            texts = conn.recv()
        except EOFError:
            return
        try:
            reply = ("vectors", encode(texts))
        except Exception as err:  # one bad batch is the caller's error, not the end of the encoder
            reply = ("error", f"{err.__class__.__name__}: {err}")
        conn.send(reply)
