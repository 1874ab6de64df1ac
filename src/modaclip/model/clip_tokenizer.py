"""CLIP's tokenizer without torch or open_clip: the token ids of open_clip's `SimpleTokenizer`, as a numpy array.

A text query needs token ids and one pass of the text tower, but open_clip's tokenizer returns a
torch tensor and importing open_clip imports torch and torchvision, most of a cold search's time
(BENCHMARKS.md#cold-modaclip-search-onnxruntime-vs-torch). This builds the same byte-level BPE with
the `tokenizers` library, the way transformers' `CLIPTokenizer` does, from open_clip's own
vocabulary file (read by path, not imported), and cleans text first as open_clip does (ftfy, HTML
entities, whitespace, lower case), which transformers does not. The ids equal open_clip's for any
text but one that spells out a special token such as "<|endoftext|>" (tests/test_clip_tokenizer.py).
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
PAD_ID = 0  # open_clip pads with id 0 ("!"), not with end-of-text as transformers' default does
VOCAB_SIZE = 49408
MERGES = VOCAB_SIZE - 256 * 2 - 2  # the vocabulary: 256 byte symbols, each again with "</w>", merges, SOT and EOT
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
TOKENIZER_FILE = "tokenizer.json"
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def open_clip_bpe_file() -> Path:
    """open_clip's vocabulary file, found without importing open_clip (which imports torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed: its CLIP vocabulary file is needed")
    return Path(next(iter(spec.submodule_search_locations))) / BPE_FILE


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 byte values to printable characters, in the order of CLIP's vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


@lru_cache(maxsize=1)
def clip_vocabulary(bpe_file: Path | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges in priority order) of CLIP's BPE, exactly as open_clip's SimpleTokenizer builds them."""
    with gzip.open(bpe_file or open_clip_bpe_file()) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(pair) for pair in merges), SOT, EOT]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tokenizer() -> Tokenizer:
    """CLIP's BPE as transformers' CLIPTokenizer builds it (with no truncation or padding)."""
    vocab, merges = clip_vocabulary()
    tokenizer = Tokenizer(
        BPE(vocab, merges, continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False, unk_token=EOT)
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(SOT, normalized=False), AddedToken(EOT, normalized=False)])
    tokenizer.post_processor = processors.RobertaProcessing((EOT, vocab[EOT]), (SOT, vocab[SOT]), False, False)
    return tokenizer


def clean(text: str) -> str:
    """open_clip's text cleaning ('lower'): fix mojibake and HTML entities, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """`tokenizer(texts) -> int64 [N, context_length]`: sot, the text's ids, eot, zeros, cut as open_clip cuts."""

    def __init__(self, tokenizer: Tokenizer, context_length: int) -> None:
        tokenizer.enable_truncation(max_length=context_length)
        tokenizer.enable_padding(length=context_length, pad_id=PAD_ID, pad_token="!")
        self.tokenizer = tokenizer
        self.context_length = context_length

    @classmethod
    def from_file(cls, path: str | Path, context_length: int) -> ClipTokenizer:
        """A tokenizer.json (an ONNX towers folder's or a transformers export's): no open_clip needed."""
        return cls(Tokenizer.from_file(str(path)), context_length)

    @classmethod
    def default(cls, context_length: int) -> ClipTokenizer:
        return cls(build_tokenizer(), context_length)

    def save(self, path: Path) -> None:
        """tokenizer.json, truncating and padding to the context length: ready for `Tokenizer.from_file` elsewhere."""
        self.tokenizer.save(str(path))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch([clean(text) for text in texts])
        return np.array([e.ids for e in encoded], dtype=np.int64).reshape(len(texts), self.context_length)


def save_tokenizer_files(directory: Path, context_length: int) -> None:
    """transformers' CLIPTokenizer files (tokenizer.json, vocab.json, merges.txt, tokenizer_config.json).

    tokenizer.json holds no truncation or padding (transformers sets those per call); the padding
    token is "!" (id 0), so transformers pads as open_clip does and the ids are equal throughout.
    """
    vocab, merges = clip_vocabulary()
    build_tokenizer().save(str(directory / TOKENIZER_FILE))
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair in merges) + "\n")
    specials = {"bos_token": SOT, "eos_token": EOT, "unk_token": EOT, "pad_token": "!"}
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": context_length, "do_lower_case": True, **specials}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


def cut_padding(tokens: np.ndarray) -> np.ndarray:
    """Tokens up to the batch's last end-of-text: CLIP's highest id, so its position is each row's argmax."""
    return tokens[:, : int(tokens.argmax(axis=-1).max()) + 1]
