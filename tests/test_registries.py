"""Allowed names for losses, schedules, index types and sources come from their registries alone.

params.yaml holds plain names; the registry's `create_x` (or check) is the one place that knows
them, so adding one is one class or function and one line in the registry.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from modaclip.core.config import DataParams, EmbedParams, IndexParams, parse_params
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import embed_catalog
from modaclip.embed.index import INDEX_BUILDERS, check_index_type
from modaclip.ingest.sources import SOURCES, read_source
from modaclip.train.losses import LOSSES, InfoNCE, create_loss
from modaclip.train.schedules import SCHEDULES, create_schedule, warmup_constant


def use_loss(name: str) -> object:
    return create_loss(name)


def use_schedule(name: str) -> object:
    return create_schedule(name, 2, 10)


def use_index(name: str) -> object:
    return check_index_type(IndexParams(type=name))


def use_source(name: str) -> object:
    return next(read_source(DataParams(source=f"{name}:/nowhere", num_items=10)))


CASES = [
    ("train.loss", LOSSES, use_loss),
    ("train.schedule", SCHEDULES, use_schedule),
    ("embed.index.type", INDEX_BUILDERS, use_index),
    ("data.source", SOURCES, use_source),
]


@pytest.mark.parametrize(("key", "registry", "use"), CASES, ids=[case[0] for case in CASES])
def test_an_unknown_name_is_refused_naming_the_key_and_every_registered_name(
    key: str, registry: dict, use: Callable[[str], object]
) -> None:
    with pytest.raises(ModaclipError, match=rf"^{key}: unknown .*'nonesuch'") as err:
        use("nonesuch")
    known = str(err.value).rsplit("known: ", 1)[1]
    assert set(registry) <= set(known.rstrip(")").split(", "))


@pytest.mark.parametrize(
    ("section", "key", "registry"),
    [("train", "loss", LOSSES), ("train", "schedule", SCHEDULES), ("embed", "index", INDEX_BUILDERS)],
)
def test_params_accept_every_registered_name(section: str, key: str, registry: dict) -> None:
    for name in registry:
        raw = {"embed": {"index": {"type": name}}} if key == "index" else {section: {key: name}}
        parse_params(raw)


def test_registering_a_loss_or_schedule_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOSSES, "infonce_again", InfoNCE)
    monkeypatch.setitem(SCHEDULES, "flat_after_warmup", warmup_constant)
    assert parse_params({"train": {"loss": "infonce_again", "schedule": "flat_after_warmup"}}).train.loss
    assert isinstance(create_loss("infonce_again"), InfoNCE)
    assert create_schedule("flat_after_warmup", 2, 10)(5) == 1.0


def test_an_unknown_index_type_stops_embed_before_any_work(tmp_path) -> None:
    """The model folder does not exist: the index type is checked first, so that is not the error."""
    params = EmbedParams(index=IndexParams(type="annoy"))
    with pytest.raises(ModaclipError, match=r"embed.index.type: unknown index type 'annoy' \(known: auto, flat"):
        embed_catalog(tmp_path / "no-model", tmp_path / "no-catalog", tmp_path / "out", params)


def test_core_imports_no_torch_and_no_stage_package() -> None:
    """core is imported by every stage, so it must stay light and depend on nothing above it."""
    code = (
        "import sys; import modaclip.core.config, modaclip.core.paths; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('modaclip.') "
        "and not m.startswith('modaclip.core')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
