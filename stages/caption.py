"""caption: clean the raw catalog, caption it from attribute templates and split it by product id hash."""

import argparse
import logging

from modaclip.core.atomic import write_json
from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.curate.clean_and_caption import clean_and_caption


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--out", default="data/clean")
    parser.add_argument("--metrics", default="metrics/clean.json")
    args = parser.parse_args()
    summary = clean_and_caption(args.raw, args.out, load_params(args.params).caption)
    write_json(args.metrics, summary)
    logging.getLogger("modaclip.caption").info(
        "kept %d of %d rows (dropped: %s); splits: %s",
        summary["rows_kept"],
        summary["rows_in"],
        summary["dropped"],
        summary["splits"],
    )


if __name__ == "__main__":
    run(main, "caption")
