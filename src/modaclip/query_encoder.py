"""Text query embeddings for a server: concurrent queries share one forward pass, repeats are cached.

On a CPU a forward pass over 16 queries costs about 3x one query, not 16x, and search traffic
repeats its popular queries. So the thread that finds the model free embeds every query that
arrived meanwhile, and recent results are kept in a bounded LRU cache. Queries are a few tokens
long, so the text tower also runs on the tokens up to the longest query's end, not on the padding
to the full context (`unpadded_text_encoder`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool

from modaclip.clip_model import ClipBundle, encode_texts

DEFAULT_CACHE_SIZE = 10_000  # 10k vectors of dimension 512 are 20 MB


@dataclass
class _Waiting:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    error: BaseException | None = None


class QueryEncoder:
    """Wraps `encode(texts) -> float32 [N, D]`; safe to call from many threads at once."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._encode = encode
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._model_lock = threading.Lock()  # one forward pass at a time: its holder embeds the whole queue

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        cached = self._cached(texts)
        if cached is not None:
            return cached
        waiting = _Waiting(texts)
        with self._queue_lock:
            self._queue.append(waiting)
        with self._model_lock:
            if not waiting.done.is_set():
                self._embed_queue()
        if waiting.error is not None:
            raise waiting.error
        assert waiting.vectors is not None
        return waiting.vectors

    def _cached(self, texts: list[str]) -> np.ndarray | None:
        with self._queue_lock:
            if not all(text in self._cache for text in texts):
                return None
            for text in texts:
                self._cache.move_to_end(text)
            return np.stack([self._cache[text] for text in texts])

    def _embed_queue(self) -> None:
        """Embed every waiting request's texts in one pass (each distinct text once) and wake them."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        distinct = list(dict.fromkeys(text for waiting in batch for text in waiting.texts))
        try:
            vectors = dict(zip(distinct, self._encode(distinct)))
        except BaseException as err:  # every waiting caller gets the error, not only the one that ran the pass
            for waiting in batch:
                waiting.error = err
                waiting.done.set()
            return
        with self._queue_lock:
            for text, vector in vectors.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        for waiting in batch:
            waiting.vectors = np.stack([vectors[text] for text in waiting.texts])
            waiting.done.set()


def unpadded_text_encoder(bundle: ClipBundle) -> Callable[[Sequence[str]], np.ndarray]:
    """`encode_texts` that skips the padding after the batch's longest text, for open_clip's CLIP text tower.

    Its attention is causal and it pools at the end-of-text token, so positions after that token
    cannot change the result; dropping them cuts the work for a batch of short queries by about
    half on CPU. Any other model, or one whose output differs from open_clip's own `encode_text` on
    probe texts (a library change this code does not know about), gets plain `encode_texts`.
    """
    plain = partial(encode_texts, bundle)
    model = bundle.model
    if not (isinstance(model, open_clip.CLIP) and model.attn_mask is not None and model.text_pool_type == "argmax"):
        return plain

    @torch.inference_mode()
    def encode(texts: Sequence[str]) -> np.ndarray:
        tokens = bundle.tokenizer(list(texts)).to(bundle.device)
        length = int(tokens.argmax(dim=-1).max()) + 1  # end-of-text has the highest token id, as argmax pooling assumes
        tokens = tokens[:, :length]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
        x = text_global_pool(x, tokens, "argmax")
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
        return F.normalize(x, dim=-1).float().cpu().numpy()

    probes = ["a photo of a red summer dress", "shoes", "women blue casual slim fit jeans for the summer season"]
    return encode if np.allclose(encode(probes), plain(probes), atol=1e-5) else plain
