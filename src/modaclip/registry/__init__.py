"""Which model serves: GTO versions, the promotion gate, scheduled retraining, `--model` resolution."""

from modaclip.registry.model_choice import search_source_for
from modaclip.registry.retrain import retrain

__all__ = ["retrain", "search_source_for"]
