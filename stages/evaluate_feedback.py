"""evaluate-feedback: base, fine-tuned and fine-tuned-on-the-log models on the export's held-out logged queries;
the nDCG@10 of each, on all held-out queries and on those never typed in training, is the headline `dvc exp show`
lists."""

import argparse
import logging

from modaclip.core.atomic import write_json
from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.feedback.logged_evaluation import evaluate_logged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--data", required=True, help="the clean catalog")
    parser.add_argument("--finetuned", required=True, help="the catalog-fine-tuned model")
    parser.add_argument("--embeddings", required=True, help="its embeddings of the catalog")
    parser.add_argument("--feedback-model", required=True, help="the model fine-tuned on catalog + log")
    parser.add_argument("--feedback", required=True, help="the feedback export (held-out judged sets)")
    parser.add_argument(
        "--truth", required=True, help="a simulated log's attribute judgments (absent for a real log: not scored)"
    )
    parser.add_argument("--metrics", required=True, help="every figure, as JSON")
    parser.add_argument("--headline", required=True, help="nDCG@10 per model and set, for dvc exp show")
    args = parser.parse_args()
    params = load_params(args.params)
    report, headline = evaluate_logged(
        params,
        catalog_dir=args.data,
        finetuned_dir=args.finetuned,
        embeddings_dir=args.embeddings,
        feedback_model_dir=args.feedback_model,
        feedback_dir=args.feedback,
        truth_dir=args.truth,
    )
    write_json(args.metrics, report)
    write_json(args.headline, headline)
    logging.getLogger("modaclip.evaluate_feedback").info("held-out logged queries, nDCG@10: %s", headline)


if __name__ == "__main__":
    run(main, "evaluate-feedback")
