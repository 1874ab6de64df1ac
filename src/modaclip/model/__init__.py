"""open_clip models: create, save and load them, embed texts and images, classify zero-shot, convert and export them.

The names load on first use (PEP 562), so a module here that needs no torch, such as the light
tokenizer `modaclip.model.clip_tokenizer`, imports without importing torch through this face.
"""

from __future__ import annotations

from modaclip.core.lazy_face import lazy_names

_HOMES = {
    "ClipBundle": "clip_model",
    "class_embeddings": "zero_shot",
    "classify_image": "zero_shot",
    "create_base_model": "clip_model",
    "encode_images": "clip_model",
    "encode_texts": "clip_model",
    "load_model": "clip_model",
    "predict_labels": "zero_shot",
    "save_model": "clip_model",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
