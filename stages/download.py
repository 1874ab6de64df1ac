"""download: write the raw catalog named by `data.source` to data/raw (parquet parts with image bytes)."""

import argparse
import logging

from modaclip.core.catalog_io import write_parts
from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.ingest.sources import read_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/raw")
    args = parser.parse_args()
    params = load_params(args.params).data
    rows = write_parts(read_source(params), args.out)
    logging.getLogger("modaclip.download").info("wrote %d raw rows from %r to %s", rows, params.source, args.out)


if __name__ == "__main__":
    run(main, "download")
