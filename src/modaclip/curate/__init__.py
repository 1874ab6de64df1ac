"""The caption stage: clean raw rows and images, caption each product, assign splits."""

from modaclip.curate.clean_and_caption import clean_and_caption

__all__ = ["clean_and_caption"]
