"""embed: embed every clean catalog image with the fine-tuned model into data/embeddings, with its faiss index
and the model's towers as ONNX (data/embeddings/onnx), with which search embeds queries without torch.

A run reuses the previous --out's vectors of unchanged products. `embed.engine: ray` spreads the
work over a Ray cluster (params `ray`); the output is the same.
"""

import argparse
import logging

from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.embed.engines import run_embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    params = load_params(args.params)
    meta = run_embed(args.model, args.data, args.out, params.embed, cluster=params.ray, towers=True)
    logging.getLogger("modaclip.embed").info(
        "%d products (dim %d) in %s, index %s", meta["count"], meta["dim"], args.out, meta["index"]["type"]
    )


if __name__ == "__main__":
    run(main, "embed")
