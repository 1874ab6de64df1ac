"""The evaluate stage: retrieval and zero-shot benchmarks of base vs fine-tuned, and their report."""

from modaclip.evaluate.evaluation import compare_base_and_finetuned
from modaclip.evaluate.markdown_report import markdown_report

__all__ = ["compare_base_and_finetuned", "markdown_report"]
