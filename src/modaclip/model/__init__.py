"""open_clip models: create, save and load them, embed texts and images, classify zero-shot."""

from modaclip.model.clip_model import ClipBundle, create_base_model, encode_images, encode_texts, load_model, save_model
from modaclip.model.zero_shot import class_embeddings, classify_image, predict_labels

__all__ = [
    "ClipBundle",
    "class_embeddings",
    "classify_image",
    "create_base_model",
    "encode_images",
    "encode_texts",
    "load_model",
    "predict_labels",
    "save_model",
]
