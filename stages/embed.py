"""embed: embed every clean catalog image with the fine-tuned model into data/embeddings, with its faiss index
and the model's towers as ONNX (data/embeddings/onnx), with which search embeds queries without torch.

`--shard i/n` embeds only part i of n (no index, no towers); `--merge DIR...` joins such parts into
--out and builds the index and the towers of --model. A plain run reuses the previous --out's vectors
of unchanged products.
"""

import argparse
import logging

from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.embed.embedding import Shard, embed_catalog, merge_shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--data", default="data/clean")
    parser.add_argument("--out", default="data/embeddings")
    parser.add_argument("--shard", default="0/1", help="embed only part i of n of the catalog, e.g. 0/4")
    parser.add_argument("--merge", nargs="+", metavar="DIR", help="join these shard folders (in order) into --out")
    args = parser.parse_args()
    params = load_params(args.params).embed
    log = logging.getLogger("modaclip.embed")
    if args.merge:
        meta = merge_shards(args.merge, args.out, params.index, args.model)
    else:
        meta = embed_catalog(args.model, args.data, args.out, params, Shard.parse(args.shard), towers=True)
    log.info(
        "%d products (dim %d) in %s, index %s",
        meta["count"],
        meta["dim"],
        args.out,
        meta.get("index", {}).get("type", "none"),
    )


if __name__ == "__main__":
    run(main, "embed")
