"""`--model base` (the untuned model of params.yaml) and `--model CHECKPOINT` (a transformers checkpoint):
their catalog embeddings computed once into a keyed cache."""

import json
from pathlib import Path

import pytest
from test_hf_convert import save_random_clip, small_clip_config

from modaclip.cli import main
from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.embed import embedding
from modaclip.embed.stored import read_embeddings
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.model.saved_model import weights_fingerprint
from modaclip.registry.model_choice import search_source_for

PARAMS = "model:\n  arch: modaclip-tiny\n  pretrained: none\ntrain:\n  seed: {seed}\nembed:\n  batch_size: 32\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a params.yaml and an empty model cache."""
    (tmp_path / "params.yaml").write_text(PARAMS.format(seed=0))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODACLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path


def count_embed_runs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record the output folder of every embed_catalog call the base model makes."""
    runs: list[Path] = []
    real = embedding.embed_catalog

    def recording(model_dir, clean_dir, out_dir, *args, **kwargs):
        runs.append(Path(out_dir))
        return real(model_dir, clean_dir, out_dir, *args, **kwargs)

    monkeypatch.setattr("modaclip.embed.embedding.embed_catalog", recording)  # model_choice imports it on use
    return runs


def test_base_search_embeds_the_catalog_once_with_the_evaluate_base_model(
    project: Path, clean_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = count_embed_runs(monkeypatch)
    argv = ["search", "red dress", "-k", "5", "--json", "--model", "base", "--catalog", str(clean_dir)]
    main(argv)
    first = json.loads(capsys.readouterr().out)[0]["results"]
    main(argv)
    assert json.loads(capsys.readouterr().out)[0]["results"] == first
    assert len(runs) == 1 and not runs[0].is_relative_to(project / "data")

    save_model(create_base_model("modaclip-tiny", "none", seed=0), project / "evaluate-base")
    source = search_source_for("base", catalog=str(clean_dir))
    assert weights_fingerprint(source.model) == weights_fingerprint(project / "evaluate-base")
    cached = read_embeddings(source.embeddings)
    assert cached.ids.tolist() == read_catalog(clean_dir, columns=["id"])["id"].tolist()
    assert cached.meta["model_sha256"] == weights_fingerprint(project / "evaluate-base")


def test_a_changed_catalog_or_model_never_meets_stale_cached_vectors(
    project: Path, clean_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = count_embed_runs(monkeypatch)
    catalog = read_catalog(clean_dir).iloc[:50]
    write_parts([catalog.iloc[:30]], project / "small")
    write_parts([catalog], project / "grown")
    small = search_source_for("base", catalog=str(project / "small"))
    grown = search_source_for("base", catalog=str(project / "grown"))
    assert small.model == grown.model and small.embeddings != grown.embeddings
    assert read_embeddings(grown.embeddings).meta["reused"] == 30  # only the added products were embedded
    assert read_embeddings(small.embeddings).ids.tolist() == catalog["id"].iloc[:30].tolist()

    (project / "params.yaml").write_text(PARAMS.format(seed=1))
    reseeded = search_source_for("base", catalog=str(project / "grown"))
    assert reseeded.model != grown.model and reseeded.embeddings != grown.embeddings
    assert read_embeddings(reseeded.embeddings).meta["reused"] == 0
    assert len(runs) == 3


def test_classify_takes_the_same_model_choices_as_search(
    project: Path, clean_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = project / "item.jpg"
    image.write_bytes(read_catalog(clean_dir, columns=["image"])["image"][0])
    save_model(create_base_model("modaclip-tiny", "none", seed=0), project / "saved-base")
    outputs = []
    for model in ("base", str(project / "saved-base")):
        main(["classify", str(image), "--labels", "dress", "shirt", "belt", "--json", "--model", model])
        outputs.append(json.loads(capsys.readouterr().out)["labels"])
    assert outputs[0] == outputs[1] and len(outputs[0]) == 3
    assert not (project / "cache" / "embeddings").exists()  # classify needs no catalog embeddings


def test_base_with_a_bad_params_file_is_one_line_naming_the_key(
    project: Path, clean_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "params.yaml").write_text("model:\n  arch: modaclip-tiny\n  colour: red\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "red", "--model", "base", "--catalog", str(clean_dir)])
    err = capsys.readouterr().err.strip()
    assert (
        exit_info.value.code == 2
        and "params.yaml: model.colour: unknown parameter" in err
        and len(err.splitlines()) == 1
    )


def test_a_transformers_checkpoint_as_model_is_converted_and_its_catalog_embedded_once(
    project: Path, clean_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = str(save_random_clip(project / "checkpoint", small_clip_config("gelu")))
    runs = count_embed_runs(monkeypatch)
    argv = ["search", "red dress", "-k", "5", "--json", "--model", checkpoint, "--catalog", str(clean_dir)]
    main(argv)
    first = json.loads(capsys.readouterr().out)[0]["results"]
    main(argv)
    assert json.loads(capsys.readouterr().out)[0]["results"] == first and len(runs) == 1
    source = search_source_for(checkpoint, catalog=str(clean_dir))
    assert source.kind == "transformers" and (source.embeddings / "onnx" / "towers.json").is_file()
    photo = read_catalog(clean_dir, columns=["image"])["image"].iloc[0]
    (project / "photo.jpg").write_bytes(photo)
    main(["classify", str(project / "photo.jpg"), "--labels", "dress", "shoe", "--json", "--model", checkpoint])
    assert {row["label"] for row in json.loads(capsys.readouterr().out)["labels"]} == {"dress", "shoe"}
