"""embed: embed every clean catalog image with the fine-tuned model into data/embeddings."""

import argparse
import logging

from modaclip.config import load_params
from modaclip.embedding import embed_catalog
from modaclip.stage_runner import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--data", default="data/clean")
    parser.add_argument("--out", default="data/embeddings")
    args = parser.parse_args()
    meta = embed_catalog(args.model, args.data, args.out, load_params(args.params).embed)
    logging.getLogger("modaclip.embed").info("embedded %d products (dim %d) into %s", meta["count"], meta["dim"], args.out)


if __name__ == "__main__":
    run(main, "embed")
