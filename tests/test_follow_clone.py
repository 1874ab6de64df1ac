"""The usual deployment: `modaclip serve --model production --fetch-from origin` in its own clone follows a
promote and a rollback made in another clone, through a bare git remote (the registry's tags) and a
DVC remote folder (the versions' files). Real git, GTO, DVC and server process; a tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_ARCH
from test_pipeline import sh

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import EmbedParams
from modaclip.core.git import git
from modaclip.core.paths import SEARCH_PATHS
from modaclip.registry import model_versions

pytestmark = pytest.mark.slow
SMALL = 40  # products in v2's catalog
WAIT_S = 180  # a swap starts a text encoder process (torch import) on a loaded 2-core machine


def commit_version(repo: Path, folders: dict[str, Path], version: str, stage: str) -> None:
    """The three folders of a version tracked by DVC, committed, pushed to the DVC remote and registered."""
    for role, path in SEARCH_PATHS.items():
        shutil.rmtree(repo / path, ignore_errors=True)
        shutil.copytree(folders[role], repo / path)
    sh(repo, "dvc", "add", "-q", *(str(path) for path in SEARCH_PATHS.values()))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", f"model {version}")
    sh(repo, "dvc", "push", "-q")
    model_versions.register(repo, git(repo, "rev-parse", "HEAD").strip(), version, stage=stage, reason="test")


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory, served_paths: dict[str, Path]) -> dict[str, Path]:
    """`first` (where promotes happen) with v1 in production and v2 staged, its bare remote, and `second`."""
    from modaclip.embed.embedding import embed_catalog
    from modaclip.model.clip_model import create_base_model, save_model

    base = tmp_path_factory.mktemp("follow")
    first, bare, second = base / "first", base / "bare.git", base / "second"
    first.mkdir()
    for args in (("git", "init", "-q"), ("git", "config", "user.email", "t@example.com")):
        sh(first, *args)
    sh(first, "git", "config", "user.name", "test")
    sh(first, "dvc", "init", "-q")
    sh(first, "dvc", "remote", "add", "-d", "storage", str(base / "storage"))
    commit_version(first, served_paths, "v1.0.0", model_versions.PROD_STAGE)

    v2 = base / "v2"
    write_parts([read_catalog(served_paths["catalog"]).iloc[:SMALL]], v2 / "catalog")
    save_model(create_base_model(TEST_ARCH, "none", seed=1), v2 / "model")
    embed_catalog(v2 / "model", v2 / "catalog", v2 / "embeddings", EmbedParams(batch_size=32))
    commit_version(
        first,
        {"model": v2 / "model", "embeddings": v2 / "embeddings", "catalog": v2 / "catalog"},
        "v2.0.0",
        model_versions.STAGING_STAGE,
    )

    sh(base, "git", "clone", "-q", "--bare", str(first), str(bare))
    sh(first, "git", "remote", "add", "origin", str(bare))
    sh(base, "git", "clone", "-q", str(bare), str(second))
    return {"first": first, "second": second}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def wait_for(port: int, server: subprocess.Popen, version: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"server exited: {server.stderr.read() if server.stderr else ''}"
        seen = health(port)
        if seen and seen["version"] == version:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"/health never named {version} within {WAIT_S} s; last: {health(port)}")


@pytest.fixture(scope="module")
def server(clones: dict[str, Path]) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    command = [sys.executable, "-m", "modaclip.cli", "serve", "--model", "production", "--port", str(port)]
    command += ["--follow-seconds", "1", "--fetch-from", "origin", "--text-threads", "1"]
    env = {**os.environ, "MODACLIP_CACHE": str(clones["second"].parent / "cache")}
    process = subprocess.Popen(command, cwd=clones["second"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_server_in_its_own_clone_follows_a_promote_and_a_rollback(
    clones: dict[str, Path], server: tuple[int, subprocess.Popen], served_paths: dict[str, Path]
) -> None:
    port, process = server
    first = clones["first"]
    start = wait_for(port, process, "v1.0.0")
    assert (start["status"], start["follow"]["fetch_from"], start["follow"]["every_s"]) == ("ok", "origin", 1)

    model_versions.promote(first, "v2")
    sh(first, "git", "push", "-q", "origin", "--tags")
    promoted = wait_for(port, process, "v2.0.0")
    assert (promoted["status"], promoted["catalog_size"]) == ("ok", SMALL)
    assert (clones["second"] / "models/registry/v2.0.0/models/finetuned").is_dir(), "pulled from the DVC remote"

    model_versions.rollback(first)
    sh(first, "git", "push", "-q", "origin", "--tags")
    rolled_back = wait_for(port, process, "v1.0.0")
    assert rolled_back["status"] == "ok" and rolled_back["since"] > promoted["since"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?q=red%20dress&k=100", timeout=30) as response:
        assert len(json.load(response)["results"]) == 100, "v1's whole catalog answers again"
