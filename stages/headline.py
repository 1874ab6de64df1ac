"""headline: the few figures `dvc exp show` lists by default, from the finetune and evaluate metrics."""

import argparse
import json
import logging
from pathlib import Path

from modaclip.core.atomic import write_json
from modaclip.core.errors import ModaclipError
from modaclip.core.headline import headline_metrics
from modaclip.core.stage_runner import run


def read_report(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModaclipError(f"{path}: cannot read the metrics report ({err})") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", default="metrics/train.json")
    parser.add_argument("--eval", default="metrics/eval.json")
    parser.add_argument("--out", default="metrics/headline.json")
    args = parser.parse_args()
    figures = headline_metrics({"train": read_report(args.train), "eval": read_report(args.eval)})
    write_json(args.out, figures)
    logging.getLogger("modaclip.headline").info("%s: %s", args.out, figures)


if __name__ == "__main__":
    run(main, "headline")
