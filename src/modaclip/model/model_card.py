"""A model card (README.md in the Hugging Face card format) for an exported model: where it came from and its figures.

The front matter is the Hub's card metadata (library, pipeline, tags, the base model when it is
a Hub checkpoint); the body says what the model started from, what it was trained on and how,
and gives the figures of its evaluation, as `modaclip eval-report` prints them, when the caller has them.
"""

from __future__ import annotations

import json
from typing import Any

from modaclip.model.saved_model import HUB_PREFIX

CARD_START = "---\nlibrary_name: "
TAG = "\n- modaclip\n"
USAGE = {
    "transformers": """```python
from transformers import CLIPModel, CLIPProcessor

model = CLIPModel.from_pretrained("PATH")
processor = CLIPProcessor.from_pretrained("PATH")
inputs = processor(text=["a red summer dress"], images=image, return_tensors="pt", padding="max_length")
text_embeds = model.get_text_features(input_ids=inputs["input_ids"])
```""",
    "onnx": """```python
import onnxruntime, numpy as np
from tokenizers import Tokenizer

text = onnxruntime.InferenceSession("PATH/text_tower.onnx")
tokens = np.array([e.ids for e in Tokenizer.from_file("PATH/tokenizer.json").encode_batch(["a red summer dress"])])
embedding = text.run(None, {"tokens": tokens})[0]  # L2-normalised; towers.json gives the image preprocessing
```
Clean text first as `towers.json` says (`text_clean`) to get open_clip's token ids exactly.""",
}


def model_card(meta: dict[str, Any], model_cfg: dict[str, Any], library: str, evaluation: str | None) -> str:
    """The card of a saved model (`meta` is its modaclip.json) exported for `library` ("transformers" or "onnx");
    `evaluation` is the Markdown table of its figures."""
    pretrained = str(meta.get("pretrained", "unknown"))
    front = [CARD_START + library, "pipeline_tag: zero-shot-image-classification"]
    front += ["tags:", "- clip", "- fashion", "- image-text-retrieval", "- modaclip"]
    if pretrained.startswith(HUB_PREFIX):
        front.append(f"base_model: {pretrained.removeprefix(HUB_PREFIX).partition('@')[0]}")
    start = "random initialisation (no pretrained weights)" if pretrained == "none" else pretrained
    lines = [
        *front,
        "---",
        "",
        "# modaclip fashion CLIP",
        "",
        "A CLIP model fine-tuned for fashion catalog search and zero-shot product classification by modaclip",
        "(open_clip, contrastive fine-tuning on product images and their captions).",
        "",
        "## Base model",
        "",
        f"- architecture: {meta.get('arch', 'unknown')} (embedding dimension {model_cfg.get('embed_dim')})",
        f"- started from: {start}",
        "",
        "## Training data",
        "",
        f"- catalog source (`data.source`): {meta.get('data_source', 'not recorded')}",
        "",
        "## Training",
        "",
        *_table(meta.get("train_params", {}), "parameter"),
        "",
        *_table(_flat(meta.get("train", {})), "run"),
        "",
        "## Evaluation",
        "",
        evaluation.rstrip() if evaluation else "No evaluation figures were given for this model.",
        "",
        "## Use",
        "",
        USAGE[library],
        "",
    ]
    return "\n".join(lines)


def _table(values: dict[str, Any], heading: str) -> list[str]:
    if not values:
        return [f"(no {heading} figures recorded)"]
    return [f"| {heading} | value |", "| --- | --- |", *(f"| {k} | {json.dumps(v)} |" for k, v in values.items())]


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    """The run summary without nested sections (the WiSE-FT sweep), which a two-column table cannot show."""
    return {k: v for k, v in values.items() if not isinstance(v, dict)}
