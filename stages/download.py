"""download: write the raw catalog named by `data.source` to data/raw (parquet parts with image bytes).

Source rows too malformed to read, and each earlier row of a repeated id (the id's last row is kept),
are skipped and counted in --metrics, up to data.max_bad_rows.
"""

import argparse
import logging

from modaclip.core.atomic import write_json
from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.sources import read_source
from modaclip.ingest.unique_ids import UniqueIdParts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    params = load_params(args.params).data
    skipped = BadRows(params.max_bad_rows)
    rows = UniqueIdParts(skipped, params.source).write(read_source(params, skipped), args.out)
    write_json(args.metrics, {"rows": rows, **skipped.summary()})
    logging.getLogger("modaclip.download").info("wrote %d raw rows from %r to %s", rows, params.source, args.out)


if __name__ == "__main__":
    run(main, "download")
