"""Training examples and the order they are seen in, both pure functions of (seed, epoch, position).

Each epoch's order is a seeded permutation cut into global batches; a process takes its rank's
slice of each. So a run resumed mid-epoch sees exactly the batches it would have seen, and N
processes together see the same global batches as one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from modaclip.model.clip_model import decode_image
from modaclip.train.logged_queries import QueryOptions
from modaclip.train.losses import caption_keys, field_keys

Tokenizer = Callable[[Sequence[str]], torch.Tensor]


class CaptionedImages(Dataset):
    """(augmented image, caption, field texts) per item; caption and augmentation depend only on (seed, epoch, index).

    `field_texts[i]` holds item i's text for each template of train.fields (None where it lacks the
    field); without field texts every item has none. With `queries` (the `{queries}` field), item i's
    logged query, drawn among `queries[i]` by (seed, epoch, index), follows its field texts (None
    when it has no logged query).
    """

    def __init__(
        self,
        images: Sequence[bytes],
        captions: Sequence[Sequence[str]],
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        seed: int,
        field_texts: Sequence[tuple[str | None, ...]] | None = None,
        queries: Sequence[QueryOptions | None] | None = None,
    ) -> None:
        self.images = images
        self.captions = captions
        self.transform = transform
        self.seed = seed
        self.field_texts = field_texts
        self.queries = queries
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, tuple[str | None, ...]]:
        options = self.captions[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        caption = str(options[rng.integers(len(options))])
        # Random crops draw from torch's global CPU generator: seed it per item (restoring it after,
        # so the caller's stream is untouched) and the same item gets the same crop in any worker or
        # rerun. The generator's own methods cost microseconds; torch.manual_seed costs ~0.3 ms.
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(int(rng.integers(2**62)))
        try:
            image = self.transform(decode_image(self.images[index]))
        finally:
            generator.set_state(saved)
        texts = self.field_texts[index] if self.field_texts is not None else ()
        if self.queries is not None:
            options = self.queries[index]
            texts = (*texts, options.draw(rng) if options is not None else None)
        return image, caption, texts


class EpochBatches(Sampler[list[int]]):
    """This rank's micro-batches of one epoch, from micro-batch `start` on.

    An optimizer step covers `micro_batch * accum_steps * world_size` items, a contiguous slice of
    the epoch's permutation; micro-batch j of a step on rank r is its (j, r)-th piece, so the union
    over micro-batches and ranks is the same set of items whatever accum_steps and world_size are.
    """

    def __init__(
        self,
        num_items: int,
        micro_batch: int,
        *,
        accum_steps: int,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_items, self.micro_batch, self.accum_steps = num_items, micro_batch, accum_steps
        self.seed, self.epoch, self.start = seed, epoch, start
        self.rank, self.world_size = rank, world_size

    def steps(self) -> int:
        return self.num_items // (self.micro_batch * self.accum_steps * self.world_size)

    def __len__(self) -> int:
        return self.steps() * self.accum_steps - self.start

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(
            self.num_items, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        )
        across_ranks = self.micro_batch * self.world_size
        for micro in range(self.start, self.steps() * self.accum_steps):
            first = micro * across_ranks + self.rank * self.micro_batch
            yield order[first : first + self.micro_batch].tolist()


@dataclass(frozen=True)
class Batch:
    """One micro-batch as the model takes it.

    Field texts repeat across a batch ("a photo of a dresses"), so each distinct one is tokenized
    (and later encoded) once: `field_tokens` holds the distinct texts, `field_rows[f, i]` the row of
    item i's text for field f (-1: none), `field_keys[f, i]` its key (MISSING_KEY: none).
    """

    images: torch.Tensor
    tokens: torch.Tensor
    keys: torch.Tensor
    field_tokens: torch.Tensor
    field_rows: torch.Tensor
    field_keys: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(*(tensor.to(device, non_blocking=True) for tensor in self.__dict__.values()))


class Collate:
    """Stack images, tokenize and key captions and field texts (a class, not a closure, so workers can pickle it)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: list[tuple[torch.Tensor, str, tuple[str | None, ...]]]) -> Batch:
        images, captions, fields = zip(*batch)
        tokens = self.tokenizer(list(captions))
        by_field = list(zip(*fields))  # [field][item]
        distinct = list(dict.fromkeys(text for texts in by_field for text in texts if text is not None))
        row_of = {text: row for row, text in enumerate(distinct)}
        rows = [[row_of[text] if text is not None else -1 for text in texts] for texts in by_field]
        return Batch(
            images=torch.stack(images),
            tokens=tokens,
            keys=caption_keys(captions),
            field_tokens=self.tokenizer(distinct) if distinct else tokens[:0],
            field_rows=torch.tensor(rows, dtype=torch.int64).reshape(len(by_field), len(batch)),
            field_keys=torch.stack([field_keys(texts) for texts in by_field])
            if by_field
            else torch.empty((0, len(batch)), dtype=torch.int64),
        )
