"""A saved model handed out for code that does not use modaclip (`modaclip export MODEL --format hf|onnx OUT`).

`hf` writes a transformers CLIPModel folder (config, safetensors, tokenizer and image processor
files) that `CLIPModel.from_pretrained(OUT)` and `CLIPProcessor.from_pretrained(OUT)` load; `onnx`
writes the image and text towers as ONNX graphs with their tokenizer and preprocessing settings.
Both write a model card, README.md, so the folder can be published as it is. Which model and which
figures (`--model`, a version's recorded evaluation) the command resolves in registry/model_choice.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from open_clip.model import get_model_preprocess_cfg

from modaclip.core.atomic import atomic_directory
from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import ClipBundle, load_model
from modaclip.model.clip_tokenizer import save_tokenizer_files
from modaclip.model.hf_convert import OpenClipParts, write_checkpoint
from modaclip.model.model_card import CARD_START, TAG, model_card
from modaclip.model.onnx_export import export_towers
from modaclip.model.saved_model import weights_fingerprint

CARD = "README.md"


def export_transformers(model_dir: Path, out: Path, evaluation: str | None = None) -> None:
    """A transformers CLIPModel folder of the saved model in `model_dir`, with its card
    (`evaluation`: the Markdown table of its figures, if any)."""
    _export(model_dir, out, library="transformers", evaluation=evaluation, write=_write_transformers)


def export_onnx(model_dir: Path, out: Path, evaluation: str | None = None) -> None:
    """The saved model's towers as ONNX graphs (model/onnx_runtime.py describes the folder), with its card."""
    _export(
        model_dir,
        out,
        library="onnx",
        evaluation=evaluation,
        write=partial(_write_onnx, fingerprint=weights_fingerprint(model_dir)),
    )


FORMATS = {"hf": export_transformers, "onnx": export_onnx}


def export_format(fmt: str) -> Callable[[Path, Path, str | None], None]:
    """The writer of `--format fmt`."""
    if fmt not in FORMATS:
        raise ModaclipError(f"--format {fmt!r}: unknown (known: {', '.join(FORMATS)})")
    return FORMATS[fmt]


def _write_transformers(bundle: ClipBundle, folder: Path) -> None:
    state = {k: v.detach().cpu() for k, v in bundle.model.state_dict().items()}
    write_checkpoint(OpenClipParts(bundle.model_cfg, get_model_preprocess_cfg(bundle.model), state), folder)
    save_tokenizer_files(folder, int(bundle.model_cfg["text_cfg"].get("context_length", 77)))


def _write_onnx(bundle: ClipBundle, folder: Path, fingerprint: str) -> None:
    export_towers(bundle, folder, fingerprint)


def _export(
    model_dir: Path,
    out: Path,
    *,
    library: str,
    evaluation: str | None,
    write: Callable[[ClipBundle, Path], None],
) -> None:
    _check_replaceable(out)
    bundle = load_model(model_dir)
    with atomic_directory(out) as tmp:
        write(bundle, tmp)
        (tmp / CARD).write_text(model_card(bundle.meta, bundle.model_cfg, library, evaluation), encoding="utf-8")


def _check_replaceable(out: Path) -> None:
    """OUT is replaced whole, so it must be new, empty, or an earlier export (its card carries the modaclip tag)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    card = out / CARD
    if not (card.is_file() and card.read_text(encoding="utf-8").startswith(CARD_START) and TAG in card.read_text()):
        raise ModaclipError(f"{out}: exists and is not an earlier modaclip export; give a new folder")
