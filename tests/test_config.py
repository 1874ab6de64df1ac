from pathlib import Path

import pytest

from modaclip.core.config import Params, load_params, parse_params
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
