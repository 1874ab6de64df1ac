"""The finetune stage: the contrastive training loop and its options (losses, schedules,
precision, freezing, WiSE-FT, several processes)."""

from modaclip.train.run_identity import RunIdentity
from modaclip.train.trainer import Trainer

__all__ = ["RunIdentity", "Trainer"]
