"""Joining a Ray cluster: an address nothing answers on, or Ray not installed, is one line of error."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from modaclip.core.catalog_io import write_parts
from modaclip.core.config import RayParams
from modaclip.core.errors import ModaclipError
from modaclip.core.ray_cluster import ray_session
from modaclip.ingest.synthetic import generate_catalog

REPO = Path(__file__).resolve().parents[1]
NOBODY = "ray://127.0.0.1:1"  # a port nothing listens on: the connection is refused at once

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")


def test_caption_on_an_unreachable_cluster_stops_in_one_line_naming_the_address(tmp_path: Path) -> None:
    write_parts([generate_catalog(4, seed=0, image_size=32)], tmp_path / "raw")
    YAML().dump({"caption": {"engine": "ray"}, "ray": {"address": NOBODY}}, tmp_path / "params.yaml")

    paths = {"--params": "params.yaml", "--raw": "raw", "--out": "clean", "--metrics": "clean.json"}
    arguments = [item for flag, name in paths.items() for item in (flag, str(tmp_path / name))]
    done = subprocess.run(
        [sys.executable, "stages/caption.py", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"caption: error: ray.address '{NOBODY}': no Ray cluster reachable there (")
    assert not (tmp_path / "clean").exists()


def test_a_head_node_address_is_checked_too() -> None:
    with (
        pytest.raises(ModaclipError, match=r"ray\.address '127\.0\.0\.1:1': no Ray cluster reachable"),
        ray_session(RayParams(address="127.0.0.1:1")),
    ):
        pass


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when the extra is missing
    with pytest.raises(ModaclipError, match=r"pip install -e '\.\[ray\]'"), ray_session(RayParams()):
        pass


class ConnectedRay(types.ModuleType):
    """A `ray` already connected (as in a notebook), so ray_session starts nothing."""

    def __init__(self) -> None:
        super().__init__("ray")

    def is_initialized(self) -> bool:
        return True


def test_our_error_inside_a_ray_task_comes_back_as_its_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray wraps a task's exception with the worker's traceback; ours comes out as its own message alone."""
    monkeypatch.setitem(sys.modules, "ray", ConnectedRay())
    task_error = RuntimeError(
        "ray::MapBatches(caption_part)() (pid=4242, ip=127.0.0.1)\n"
        '  File "src/modaclip/curate/ray_engine.py", line 40, in caption_part\n'
        "modaclip.core.errors.ModaclipError: data/raw/part-0003.parquet: row 7 has no image"
    )
    with pytest.raises(ModaclipError) as caught, ray_session(RayParams()):
        raise task_error
    assert str(caught.value) == "data/raw/part-0003.parquet: row 7 has no image"
    with pytest.raises(RuntimeError, match="worker died"), ray_session(RayParams()):
        raise RuntimeError("ray::MapBatches() worker died")  # not ours: passed on as it is
