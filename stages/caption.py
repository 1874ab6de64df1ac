"""caption: clean the raw catalog, caption it from attribute templates and split it by product id hash.

`caption.engine: ray` spreads the per-image work over a Ray cluster (params `ray`); the output is the same.
"""

import argparse
import logging

from modaclip.core.atomic import write_json
from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.curate.engines import run_caption


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    params = load_params(args.params)
    summary = run_caption(args.raw, args.out, params.caption, params.ray)
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
