"""Training examples and the order they are seen in, both pure functions of (seed, epoch, position).

Each epoch's order is a seeded permutation cut into global batches; a process takes its rank's
slice of each. So a run resumed mid-epoch sees exactly the batches it would have seen, and N
processes together see the same global batches as one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from modaclip.model.clip_model import decode_image
from modaclip.train.losses import caption_keys

Tokenizer = Callable[[Sequence[str]], torch.Tensor]


class CaptionedImages(Dataset):
    """(augmented image, caption) pairs; the caption and the augmentation depend only on (seed, epoch, index)."""

    def __init__(
        self,
        images: Sequence[bytes],
        captions: Sequence[Sequence[str]],
        transform: Callable[[Image.Image], torch.Tensor],
        seed: int,
    ) -> None:
        self.images = images
        self.captions = captions
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
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
        return image, caption


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


class Collate:
    """Stack images, tokenize captions and key them (a class, not a closure, so worker processes can pickle it)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, captions = zip(*batch)
        return torch.stack(images), self.tokenizer(list(captions)), caption_keys(captions)
