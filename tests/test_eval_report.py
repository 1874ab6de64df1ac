import json
from pathlib import Path

import pytest

from modaclip.cli import main
from modaclip.core.errors import ModaclipError
from modaclip.evaluate.markdown_report import markdown_report, read_eval_json
from modaclip.evaluate.published import PUBLISHED, SOURCES

REPORT = {
    "test_items": 40,
    "kagl": {"title_queries": 38, "rows_without_title": 2, "label_queries": {"masterCategory": 3}},
    "zero_shot_sets": {"fmnist": {"source": "fmnist:../shared/data/fashion-mnist", "images": 4443, "classes": 10}},
    "base": {
        "kagl": {"text_to_image": {"recall@1": 0.1, "mrr": 0.2}},
        "zero_shot_sets": {"fmnist": {"weighted_f1": 0.25}},
        "zero_shot": {"articleType": {"accuracy": 0.5, "classes": 7}},
    },
    "finetuned": {
        "kagl": {"text_to_image": {"recall@1": 0.3, "mrr": 0.4}},
        "zero_shot_sets": {"fmnist": {"weighted_f1": 0.5}},
        "zero_shot": {"articleType": {"accuracy": 0.75, "classes": 7}},
    },
    "delta": {
        "kagl": {"text_to_image": {"recall@1": 0.2, "mrr": 0.2}},
        "zero_shot_sets": {"fmnist": {"weighted_f1": 0.25}},
        "zero_shot": {"articleType": {"accuracy": 0.25}},
    },
}


def test_rows_put_ours_beside_the_quoted_figures() -> None:
    lines = markdown_report(REPORT).splitlines()
    assert lines[0] == (
        "| benchmark | metric | ours: base | ours: fine-tuned | delta | FashionCLIP 2.0 (quoted) "
        "| Marqo-FashionCLIP (quoted)"
        " | OpenAI CLIP (quoted) | FashionCLIP (quoted) | Laion CLIP (quoted) |"
    )
    assert "| kagl / text_to_image | recall@1 | 0.100 | 0.300 | +0.200 | 0.122 [2] | 0.159 [2] |  |  |  |" in lines
    assert (
        "| zero_shot_sets / fmnist | weighted_f1 | 0.250 | 0.500 | +0.250 "
        "| 0.830 [1] |  | 0.660 [1] | 0.740 [1] | 0.780 [1] |" in lines
    )
    assert "| zero_shot / articleType | accuracy | 0.500 | 0.750 | +0.250 |  |  |  |  |  |" in lines
    assert not any("| classes |" in line for line in lines), "counts are not metrics"


def test_sources_and_caveats_are_stated() -> None:
    text = markdown_report(REPORT)
    assert "**Quoted, not measured.**" in text
    assert f"1. {SOURCES['fashionclip-card'].title}, <https://huggingface.co/patrickjohncyh/fashion-clip>" in text
    assert "2. " + SOURCES["marqo-leaderboard"].title in text and "LEADERBOARD.md>" in text
    assert "KAGL title->product: 38 queries; 2 test rows without productDisplayName left out." in text
    assert "Zero-shot set `fmnist`: 4443 images, 10 classes" in text
    assert "not shown): kagl / label_to_product / articleType, kagl / label_to_product / baseColour" in text
    assert "usage." in text and "kagl / text_to_image." not in text and "kagl / text_to_image," not in text


def test_every_published_figure_has_a_source_and_a_plausible_value() -> None:
    assert all(figure.source in SOURCES and 0.0 <= figure.value <= 1.0 for figure in PUBLISHED)
    assert len({(f.model, f.path) for f in PUBLISHED}) == len(PUBLISHED)


def test_cli_prints_and_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = tmp_path / "eval.json"
    metrics.write_text(json.dumps(REPORT))
    main(["eval-report", "--metrics", str(metrics)])
    assert capsys.readouterr().out == markdown_report(REPORT)
    main(["eval-report", "--metrics", str(metrics), "--out", str(tmp_path / "report.md")])
    assert (tmp_path / "report.md").read_text() == markdown_report(REPORT)


def test_bad_eval_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval-report", "--metrics", str(tmp_path / "absent.json")])
    assert exit_info.value.code == 2 and "not found; run `dvc repro evaluate` first" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"base": {}}))
    with pytest.raises(ModaclipError, match=r"no \['finetuned', 'delta'\] section"):
        read_eval_json(tmp_path / "other.json")
