"""shop-log: the search log the feedback loop learns from, into --out.

`feedback.log: simulated` simulates shoppers searching the catalog with the fine-tuned model
(feedback/simulate.py); a path or glob of `modaclip serve` logs is copied instead, consistently
while servers write (SQLite's backup API). The stage always runs (a live log grows); an unchanged
log gives the same output, so the stages after it stay cached.
"""

import argparse
import logging

from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.feedback.log_files import snapshot_logs
from modaclip.feedback.simulate import simulate_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--model", required=True, help="the model the simulated shop serves")
    parser.add_argument("--embeddings", required=True, help="its embeddings of the catalog")
    parser.add_argument("--data", required=True, help="the clean catalog")
    parser.add_argument("--out", required=True, help="folder of log files to write")
    args = parser.parse_args()
    params = load_params(args.params)
    say = logging.getLogger("modaclip.shop_log")
    if params.feedback.log == "simulated":
        counts = simulate_log(
            args.model,
            args.embeddings,
            args.data,
            out=args.out,
            params=params.feedback.simulate,
            train_fields=list(params.train.fields),
        )
        say.info("simulated %s into %s", counts, args.out)
    else:
        copied = snapshot_logs(params.feedback.log, args.out)
        say.info("copied %d search log(s) from %s into %s", len(copied), params.feedback.log, args.out)


if __name__ == "__main__":
    run(main, "shop-log")
