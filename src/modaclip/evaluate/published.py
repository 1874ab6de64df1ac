"""Figures other teams published for their models: quoted here, never measured by this pipeline.

Each figure sits at the path where our own figure of the same benchmark lies under `base`,
`finetuned` and `delta` in metrics/eval.json, so `modaclip eval-report` can put them side by side.
Add a figure only with a source a reader can open and check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    title: str
    url: str
    caveat: str


@dataclass(frozen=True)
class QuotedFigure:
    model: str
    path: tuple[str, ...]
    value: float
    source: str


SOURCES: dict[str, Source] = {
    "fashionclip-card": Source(
        "FashionCLIP model card (patrickjohncyh/fashion-clip), table of zero-shot weighted macro F1",
        "https://huggingface.co/patrickjohncyh/fashion-clip",
        "the full 10,000-image Fashion-MNIST test set, with their prompts, not ours",
    ),
    "marqo-leaderboard": Source(
        "Marqo-FashionCLIP LEADERBOARD.md, section KAGL (updated 2024-08-09)",
        "https://github.com/marqo-ai/marqo-FashionCLIP/blob/main/LEADERBOARD.md",
        (
            "their gallery is the whole Marqo/KAGL dataset, not a test split; "
            "recall and MRR fall as a gallery grows, so compare with care"
        ),
    ),
}

_FMNIST_F1 = ("zero_shot_sets", "fmnist", "weighted_f1")
# (task path in eval.json, {model: (P@1 or Recall@1, P@10 or Recall@10, MRR)}) from Marqo's KAGL leaderboard.
_KAGL: list[tuple[tuple[str, ...], tuple[str, str, str], dict[str, tuple[float, float, float]]]] = [
    (
        ("kagl", "text_to_image"),
        ("recall@1", "recall@10", "mrr"),
        {"FashionCLIP 2.0": (0.122, 0.404, 0.217), "Marqo-FashionCLIP": (0.159, 0.446, 0.265)},
    ),
    (
        ("kagl", "label_to_product", "masterCategory"),
        ("p@1", "p@10", "mrr"),
        {"FashionCLIP 2.0": (0.714, 0.686, 0.714), "Marqo-FashionCLIP": (0.714, 0.571, 0.714)},
    ),
    (
        ("kagl", "label_to_product", "subCategory"),
        ("p@1", "p@10", "mrr"),
        {"FashionCLIP 2.0": (0.600, 0.571, 0.627), "Marqo-FashionCLIP": (0.667, 0.613, 0.691)},
    ),
    (
        ("kagl", "label_to_product", "articleType"),
        ("p@1", "p@10", "mrr"),
        {"FashionCLIP 2.0": (0.634, 0.577, 0.694), "Marqo-FashionCLIP": (0.725, 0.613, 0.772)},
    ),
    (
        ("kagl", "label_to_product", "baseColour"),
        ("p@1", "p@10", "mrr"),
        {"FashionCLIP 2.0": (0.413, 0.443, 0.518), "Marqo-FashionCLIP": (0.500, 0.496, 0.614)},
    ),
    (
        ("kagl", "label_to_product", "season"),
        ("p@1", "p@10", "mrr"),
        {"FashionCLIP 2.0": (0.500, 0.225, 0.550), "Marqo-FashionCLIP": (0.250, 0.425, 0.542)},
    ),
    (
        ("kagl", "label_to_product", "usage"),
        ("p@1", "p@10", "mrr"),
        {"FashionCLIP 2.0": (0.250, 0.237, 0.275), "Marqo-FashionCLIP": (0.250, 0.263, 0.354)},
    ),
]

PUBLISHED: list[QuotedFigure] = [
    QuotedFigure("FashionCLIP 2.0", _FMNIST_F1, 0.83, "fashionclip-card"),
    *(
        QuotedFigure(model, (*task, metric), value, "marqo-leaderboard")
        for task, metrics, by_model in _KAGL
        for model, values in by_model.items()
        for metric, value in zip(metrics, values)
    ),
    QuotedFigure("OpenAI CLIP", _FMNIST_F1, 0.66, "fashionclip-card"),
    QuotedFigure("FashionCLIP", _FMNIST_F1, 0.74, "fashionclip-card"),
    QuotedFigure("Laion CLIP", _FMNIST_F1, 0.78, "fashionclip-card"),
]
