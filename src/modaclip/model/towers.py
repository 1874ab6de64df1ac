"""An open_clip model's two towers as modules of their own: what the ONNX graphs hold and the server's encoder runs.

Text queries are a few tokens long, so the text tower runs on the tokens up to the batch's last
end-of-text, not on the padding to the full context: its attention is causal and it pools at the
end-of-text token, so later positions cannot change the result, and on CPU the work for a batch
of short queries halves (BENCHMARKS.md#http-api-under-load). Each block's attention is written
out with `scaled_dot_product_attention` on the block's own weights, because torch's ONNX tracer
fixes `nn.MultiheadAttention`'s sequence length to the example's, and a graph for one query
length is no use; the export and the server check the result against open_clip's `encode_text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, text_global_pool

from modaclip.model.clip_model import ClipBundle
from modaclip.model.clip_tokenizer import cut_padding


def cuts_padding(model: torch.nn.Module) -> bool:
    """Whether `TextTower` can drop the padding: open_clip's CLIP text tower, plain blocks, causal, end-of-text pool."""
    if not (isinstance(model, open_clip.CLIP) and model.attn_mask is not None and model.text_pool_type == "argmax"):
        return False
    return all(
        type(block) is ResidualAttentionBlock and block.attn.batch_first and not hasattr(block, "ln_1_kv")
        for block in model.transformer.resblocks
    )


class TextTower(torch.nn.Module):
    """L2-normalised text embeddings of token ids [batch, length], length at most the context.

    For a model that `cuts_padding`, any length from the end of the batch's last text on gives
    `encode_text`'s result; any other model needs tokens padded to the full context.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.unpadded = cuts_padding(model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.unpadded:
            return self.model.encode_text(tokens, normalize=True)
        model = self.model
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[: tokens.shape[1]].to(cast)
        for block in model.transformer.resblocks:
            x = x + block.ls_1(_causal_attention(block.attn, block.ln_1(x)))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        x = text_global_pool(model.ln_final(x), tokens, "argmax")
        projection = model.text_projection
        x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
        return F.normalize(x, dim=-1)


def _causal_attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """`attn(x, x, x)` under a causal mask, for batch-first x [batch, length, width]."""
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return attn.out_proj(heads.transpose(1, 2).flatten(2))


class ImageTower(torch.nn.Module):
    """L2-normalised image embeddings of preprocessed pixels [batch, 3, size, size]."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


def unpadded_text_encoder(bundle: ClipBundle) -> Callable[[Sequence[str]], np.ndarray]:
    """`encode_texts` on the tokens up to each batch's last end-of-text (`TextTower`), for a model that `cuts_padding`.

    Any other model, or one whose output differs from open_clip's own `encode_text` on probe texts
    (a library change this code does not know about), gets plain `encode_texts`.
    """
    plain = bundle.embed_texts
    tower = TextTower(bundle.model)
    if not tower.unpadded:
        return plain

    @torch.inference_mode()
    def encode(texts: Sequence[str]) -> np.ndarray:
        tokens = torch.from_numpy(cut_padding(np.asarray(bundle.tokenizer(list(texts)))))
        return tower(tokens.to(bundle.device)).float().cpu().numpy()

    probes = ["a photo of a red summer dress", "shoes", "women blue casual slim fit jeans for the summer season"]
    return encode if np.allclose(encode(probes), plain(probes), atol=1e-5) else plain
