"""Training throughput of the finetune stage's loop against a plain reference loop, and its input wait.

Both loops train the same model on the same generated catalog with the same batch size and
precision; the reference is forward, ClipLoss, backward, AdamW step over a plain shuffled
DataLoader, nothing else. The stage's loop is `Trainer.run_epoch` (deterministic data order, caption
keys, NaN checks, clipping, schedule). "input wait" is the share of the loop's wall time spent
waiting for the next batch from the DataLoader.

    PYTHONPATH=src python benchmarks/train_throughput.py --items 1200 --batch-size 128 --steps 6
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from open_clip.loss import ClipLoss
from torch.utils.data import DataLoader

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import CaptionParams, TrainParams
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.ingest.synthetic import generate_catalog
from modaclip.model.clip_model import create_base_model
from modaclip.train.batches import CaptionedImages, Collate
from modaclip.train.run_identity import RunIdentity
from modaclip.train.trainer import Trainer


class TimedBatches:
    """Wraps a loader and records the time each `next()` takes: the loop's wait on input."""

    def __init__(self, batches: Iterable) -> None:
        self.batches = batches
        self.waits: list[float] = []

    def wait_share(self, loop_seconds: float) -> float:
        """Share of the timed loop spent waiting; the first batch (loader start-up) falls before it."""
        return sum(self.waits[1:]) / loop_seconds

    def __iter__(self) -> Iterator:
        iterator = iter(self.batches)
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - started)
            yield batch


def catalog(directory: Path, items: int) -> tuple:
    write_parts([generate_catalog(items, seed=0)], directory / "raw")
    clean_and_caption(directory / "raw", directory / "clean", CaptionParams(val_fraction=0.0, test_fraction=0.0))
    train = read_catalog(directory / "clean", ["id", "image", "captions"], split="train")
    return train, train.head(0)


def stage_loop(train, params: TrainParams, steps: int, directory: Path) -> tuple[float, float]:
    """samples/s and input-wait share of Trainer.run_epoch over `steps` steps after one warm-up step."""
    bundle = create_base_model("modaclip-tiny", "none", params.seed)
    trainer = Trainer(
        bundle,
        train.head(params.batch_size * (steps + 1)),
        train.head(0),
        params,
        checkpoint_dir=directory,
        identity=RunIdentity({}),
        device=torch.device("cpu"),
    )
    timed: list[TimedBatches] = []
    loader = trainer.loader

    def timed_loader(epoch: int) -> TimedBatches:
        timed.append(TimedBatches(loader(epoch)))
        return timed[-1]

    trainer.loader = timed_loader
    original_step = trainer.train_step
    marks: list[float] = []

    def marking_step(batches):
        value = original_step(batches)
        marks.append(time.perf_counter())
        return value

    trainer.train_step = marking_step
    trainer.run_epoch(0)
    # time from the end of the warm-up step to the end of the last one
    total = marks[-1] - marks[0]
    return params.batch_size * (len(marks) - 1) / total, timed[0].wait_share(total)


def reference_loop(train, params: TrainParams, steps: int) -> tuple[float, float]:
    """The plainest loop on the same model, data, batch and precision: forward, loss, backward, step."""
    bundle = create_base_model("modaclip-tiny", "none", params.seed)
    model = bundle.model
    model.train()
    dataset = CaptionedImages(
        train["image"].tolist(), train["captions"].tolist(), bundle.preprocess_train, seed=params.seed
    )
    loader = TimedBatches(
        DataLoader(
            dataset,
            batch_size=params.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=params.num_workers,
            collate_fn=Collate(bundle.tokenizer),
        )
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
    loss_fn = ClipLoss()
    marks = []
    for step, batch in enumerate(loader):
        out = model(batch.images, batch.tokens)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        marks.append(time.perf_counter())
        if step == steps:
            break
    total = marks[-1] - marks[0]
    return params.batch_size * (len(marks) - 1) / total, loader.wait_share(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    # the plain loss in both loops, so they differ only in the loop (the field-aware loss encodes more texts)
    params = TrainParams(batch_size=args.batch_size, num_workers=args.num_workers, warmup_steps=1, loss="clip")
    with tempfile.TemporaryDirectory() as tmp:
        train, _ = catalog(Path(tmp), args.items)
        if len(train) < args.batch_size * (args.steps + 1):
            raise SystemExit(f"--items {args.items} gives {len(train)} rows, fewer than batch * (steps + 1)")
        # interleaved, best of --repeats: on a shared machine the load drifts between runs
        runs = {"reference": [], "stage": []}
        for _ in range(args.repeats):
            runs["reference"].append(reference_loop(train, params, args.steps))
            runs["stage"].append(stage_loop(train, params, args.steps, Path(tmp) / "ckpt"))
        ref_rate, ref_wait = max(runs["reference"])
        stage_rate, stage_wait = max(runs["stage"])
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
        f"{time.strftime('%Y-%m-%d')}, modaclip-tiny, batch {args.batch_size}, fp32 CPU, "
        f"num_workers {args.num_workers}, best of {args.repeats}"
    )
    print(f"{'loop':<12}{'samples/s':>12}{'input wait':>12}")
    print(f"{'reference':<12}{ref_rate:>12.1f}{ref_wait:>11.1%}")
    print(f"{'stage':<12}{stage_rate:>12.1f}{stage_wait:>11.1%}")
    print(f"stage / reference: {stage_rate / ref_rate:.2f}")


if __name__ == "__main__":
    main()
