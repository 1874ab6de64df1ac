"""finetune: contrastive fine-tuning of the open_clip model named in params on the train split.

With `--init DIR` training starts from a saved model folder instead of model.pretrained (a warm
start); with `--feedback DIR` (a `modaclip feedback export` folder) it trains with feedback.train's
epochs, lr and warmup and a `{queries}` field of the products' logged queries (finetune-feedback).

Runs as one process, or as N under `torchrun --nproc_per_node=N stages/finetune.py ...` (DDP);
then rank 0 alone writes the model, checkpoints, curves and metrics.
"""

import argparse
import logging

from modaclip.core.atomic import write_json
from modaclip.core.catalog_io import read_catalog, read_catalog_fields
from modaclip.core.config import load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.stage_runner import run
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.model.saved_model import is_saved_model
from modaclip.train.distributed import init_distributed, shutdown
from modaclip.train.logged_queries import LoggedQueries, feedback_train_params
from modaclip.train.run_identity import RunIdentity
from modaclip.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--curves", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--init", help="a saved model folder to start from instead of model.pretrained")
    parser.add_argument("--feedback", help="a feedback export folder: train on its logged queries too")
    args = parser.parse_args()
    params = load_params(args.params)
    if args.init and not is_saved_model(args.init):
        raise ModaclipError(f"--init {args.init}: not a saved model folder (a finetune stage's --out)")
    train_params = feedback_train_params(params) if args.feedback else params.train
    queries = LoggedQueries.read(args.feedback) if args.feedback else None
    catalog = read_catalog_fields(args.data)
    columns = ["id", "image", "captions", *catalog.filled]
    train = read_catalog(args.data, columns, split="train")
    val = read_catalog(args.data, columns, split="val")
    context, device = init_distributed(params.train.device)
    if not context.is_main:
        logging.getLogger("modaclip").setLevel(logging.WARNING)  # one copy of the progress log, from rank 0
    try:
        bundle = create_base_model(params.model.arch, args.init or params.model.pretrained, train_params.seed)
        pairs = queries.pairs if queries is not None else None
        identity = RunIdentity.of(bundle, train_params, train, val, world_size=context.world_size, feedback=pairs)
        trainer = Trainer(
            bundle,
            train,
            val,
            train_params,
            checkpoint_dir=args.checkpoints,
            identity=identity,
            device=device,
            context=context,
            catalog=catalog,
            queries=queries,
        )
        summary = trainer.fit(args.curves)
        if context.is_main:
            bundle.model.cpu()
            provenance = {"data_source": params.data.source, "train_params": train_params.model_dump()}
            if args.init:
                provenance["init"] = args.init
            if args.feedback:
                provenance["feedback"] = args.feedback
            save_model(bundle, args.out, {"train": summary, **provenance})  # the model card's "how it was made"
            write_json(args.metrics, summary)
            logging.getLogger("modaclip.finetune").info("saved %s: %s", args.out, summary)
    finally:
        shutdown(context)


if __name__ == "__main__":
    run(main, "finetune")
