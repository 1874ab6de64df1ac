from pathlib import Path

import pytest

from modaclip.core.config import CaptionParams, EmbedParams, Params, RayParams, load_params, parse_params
from modaclip.core.errors import ModaclipError

REPO = Path(__file__).resolve().parents[1]


def test_project_params_yaml_is_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.model.arch == "modaclip-tiny"
    assert params.data.source == "synthetic"


def test_missing_sections_take_defaults() -> None:
    assert parse_params({"train": {"epochs": 3}}).train.epochs == 3
    assert parse_params({}).caption == Params().caption


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"train": {"lrr": 0.1}}, "train.lrr: unknown parameter"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"epochs": 1.5}}, "train.epochs"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"data": {"num_items": "100"}}, "data.num_items"),
        ({"trian": {}}, "trian: unknown parameter"),
        ({"caption": {"val_fraction": 0.5, "test_fraction": 0.5}}, "caption.val_fraction + caption.test_fraction"),
        ({"caption": {"min_image_side": 0}}, "caption.min_image_side"),
        ({"caption": {"image_size": 31}}, "caption.image_size"),
        ({"data": {"seed": -1}}, "data.seed"),
    ],
)
def test_bad_params_name_the_key(raw: dict, named: str) -> None:
    with pytest.raises(ModaclipError, match=named.replace("+", r"\+")):
        parse_params(raw)


def test_yaml_1_2_scientific_notation_is_a_number(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    assert load_params(path).train.lr == pytest.approx(0.001)


def test_missing_params_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModaclipError, match=r"nope\.yaml"):
        load_params(tmp_path / "nope.yaml")


def dotted(section: dict, prefix: str = "") -> dict[str, object]:
    """{'train.lr': 0.001, ...}: every leaf key of a params mapping (lists are leaves)."""
    leaves: dict[str, object] = {}
    for key, value in section.items():
        if isinstance(value, dict) and value:
            leaves.update(dotted(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def test_typed_defaults_equal_params_yaml_for_every_key() -> None:
    """params.yaml is the one source of defaults: the config's own defaults may not drift from it."""
    from ruamel.yaml import YAML

    in_yaml = dotted(YAML(typ="safe", pure=True).load(REPO / "params.yaml"))
    in_code = dotted(Params().model_dump())
    assert in_yaml.keys() == in_code.keys(), f"keys only in one: {sorted(in_yaml.keys() ^ in_code.keys())}"
    differing = {key: (in_code[key], in_yaml[key]) for key in in_yaml if in_code[key] != in_yaml[key]}
    assert not differing, f"config.py default vs params.yaml: {differing}"


@pytest.mark.parametrize("address", ["local", "auto", "ray://head.example.com:10001", "10.0.0.1:6379"])
def test_ray_address_forms(address: str) -> None:
    assert parse_params({"ray": {"address": address}}).ray.address == address


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"ray": {"address": "head.example.com"}}, "ray.address"),
        ({"ray": {"address": "http://head:8265"}}, "ray.address"),
        ({"embed": {"gpus_per_actor": 0}}, "embed.gpus_per_actor"),
        ({"ray": {"num_cpus": -1}}, "ray.num_cpus"),
    ],
)
def test_bad_engine_params_name_the_key(raw: dict, named: str) -> None:
    with pytest.raises(ModaclipError, match=named):
        parse_params(raw)


def test_an_unknown_engine_is_named_before_any_work(tmp_path: Path) -> None:
    from modaclip.curate.engines import run_caption  # here: the embed engines load torch
    from modaclip.embed.engines import run_embed

    with pytest.raises(ModaclipError, match=r"caption.engine: unknown engine 'spark' \(known: local, ray\)"):
        run_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams(engine="spark"), RayParams())
    with pytest.raises(ModaclipError, match=r"embed.engine: unknown engine 'spark' \(known: local, ray\)"):
        run_embed(
            tmp_path / "model", tmp_path / "clean", tmp_path / "out", EmbedParams(engine="spark"), cluster=RayParams()
        )
