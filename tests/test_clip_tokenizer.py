"""The light tokenizer gives open_clip's token ids and transformers' CLIPTokenizer's, without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
from transformers import CLIPTokenizer

from modaclip.model.clip_tokenizer import ClipTokenizer, cut_padding, save_tokenizer_files

PLAIN_TEXTS = [
    "a photo of a cat",
    "Red Striped Summer DRESS for women",
    "it's 'quoted', don't",
    "100% cotton, size 42",
    "café crème naïve résumé",
    "  multiple   spaces\tand\nlines ",
    "👗 dress",
    "",
    " ".join(["long"] * 100),
]
# Text that open_clip cleans with ftfy and html.unescape before its BPE; transformers does not.
MESSY_TEXTS = ["Women\u2019s shoes", "ﬁne ﬁt", "Ｔシャツ", "black &amp; white", "caf\u00c3\u00a9"]


@pytest.fixture(scope="module")
def light() -> ClipTokenizer:
    return ClipTokenizer.default(77)


def test_the_ids_are_open_clips_including_cleaned_and_truncated_text(light: ClipTokenizer) -> None:
    texts = PLAIN_TEXTS + MESSY_TEXTS
    expected = open_clip.get_tokenizer("ViT-B-32")(texts).numpy()
    np.testing.assert_array_equal(light(texts), expected)
    assert light(["a photo of a cat"])[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0]  # OpenAI's ids


def test_a_short_context_truncates_as_open_clip_does() -> None:
    texts = [" ".join(["word"] * 40), "short"]
    expected = open_clip.tokenizer.SimpleTokenizer(context_length=24)(texts).numpy()
    np.testing.assert_array_equal(ClipTokenizer.default(24)(texts), expected)


def test_transformers_clip_tokenizer_from_the_written_files_gives_the_same_ids(
    tmp_path: Path, light: ClipTokenizer
) -> None:
    save_tokenizer_files(tmp_path, 77)
    for files in (["vocab.json", "merges.txt"], ["tokenizer.json"]):  # transformers' own BPE, then our tokenizer.json
        folder = tmp_path / files[0].split(".")[0]
        folder.mkdir()
        for name in [*files, "tokenizer_config.json", "special_tokens_map.json"]:
            (folder / name).write_bytes((tmp_path / name).read_bytes())
        theirs = CLIPTokenizer.from_pretrained(folder)
        ids = theirs(PLAIN_TEXTS, padding="max_length", truncation=True, max_length=77, return_tensors="np")
        np.testing.assert_array_equal(ids["input_ids"], light(PLAIN_TEXTS))


def test_tokenizer_json_reloads_with_the_same_ids(tmp_path: Path, light: ClipTokenizer) -> None:
    light.save(tmp_path / "tokenizer.json")
    again = ClipTokenizer.from_file(tmp_path / "tokenizer.json", 77)
    np.testing.assert_array_equal(again(PLAIN_TEXTS + MESSY_TEXTS), light(PLAIN_TEXTS + MESSY_TEXTS))


def test_cut_padding_keeps_up_to_the_last_end_of_text(light: ClipTokenizer) -> None:
    tokens = light(["a b c d e", "a"])
    cut = cut_padding(tokens)
    assert cut.shape == (2, 7) and cut[0, -1] == 49407
    np.testing.assert_array_equal(cut, tokens[:, :7])


def test_importing_it_imports_no_torch() -> None:
    code = "import sys, modaclip.model.clip_tokenizer; print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
