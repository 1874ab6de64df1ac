"""The finetune stage: the contrastive training loop and its options (losses, schedules,
precision, freezing, WiSE-FT, several processes)."""

from modaclip.train.trainer import Trainer, run_fingerprint

__all__ = ["Trainer", "run_fingerprint"]
