"""feedback: the shop's search logs -> training pairs and held-out judged queries (`modaclip feedback export`)."""

import argparse
import logging
from pathlib import Path

from modaclip.core.atomic import write_json
from modaclip.core.config import load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.stage_runner import run
from modaclip.feedback.export import export_feedback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--logs", required=True, help="folder of search log files (*.sqlite)")
    parser.add_argument("--out", required=True, help="export folder to write")
    parser.add_argument("--metrics", required=True, help="the export's summary, as JSON")
    args = parser.parse_args()
    params = load_params(args.params)
    logs = sorted(Path(args.logs).glob("*.sqlite"))
    if not logs:
        raise ModaclipError(f"{args.logs}: no search log (*.sqlite) to export; run the shop-log stage")
    summary = export_feedback(logs, args.out, params.feedback.export)
    write_json(args.metrics, summary)
    logging.getLogger("modaclip.feedback").info("exported %s: %s", args.out, summary)


if __name__ == "__main__":
    run(main, "feedback")
