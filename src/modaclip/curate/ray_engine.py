"""The `ray` engine of the caption stage: the per-image work of every raw part as a Ray task.

Ray Data runs `assess_part` (decode, check, convert, resize) over the raw parts in parallel across
the cluster, a task per part, and Ray retries a task whose worker dies. The driver takes the
assessed parts back in catalog order and hands them to the same `Curator` as the local engine,
which drops duplicates, captions and splits, so the clean parts are those the local engine writes.
Every node must read the raw parts at the driver's path (one machine, or a shared file system).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modaclip.core.catalog_io import count_rows, part_files, write_parts
from modaclip.core.config import CaptionParams, RayParams
from modaclip.core.ray_cluster import ray_session
from modaclip.curate.clean_and_caption import CatalogCaptioning, Curator, assess_part, for_catalog

PART_COLUMN = "raw_part"  # added to assessed rows in flight: which raw part they came from


def clean_and_caption_on_ray(
    raw_dir: str | Path, out_dir: str | Path, params: CaptionParams, cluster: RayParams
) -> dict[str, Any]:
    """Write the clean catalog to `out_dir` as the local engine would, assessing the raw parts on Ray."""
    parts = [path.resolve() for path in part_files(raw_dir)]
    with ray_session(cluster) as ray:  # an unreachable cluster stops the stage before any work or log line
        captioning = for_catalog(params, raw_dir)
        curator = Curator(captioning)
        dataset = ray.data.from_items(
            [{"number": number, "path": str(path)} for number, path in enumerate(parts)],
            override_num_blocks=len(parts),
        ).map_batches(_assess_one, fn_kwargs={"captioning": captioning}, batch_size=1, batch_format="pyarrow")
        dataset.context.execution_options.preserve_order = True
        dataset.context.enable_progress_bars = False  # the Curator's bar counts rows as they arrive
        blocks = dataset.iter_batches(batch_size=None, batch_format="pyarrow")
        write_parts(curator.process_all(_in_parts(blocks, parts, captioning), count_rows(raw_dir)), out_dir)
    return curator.summary()


def _assess_one(batch: pa.Table, captioning: CatalogCaptioning) -> pa.Table:
    """A Ray task: read one raw part and assess it, tagging its rows with the part's number."""
    (number,), (path,) = batch["number"].to_pylist(), batch["path"].to_pylist()
    assessed = assess_part(pq.read_table(path), captioning)
    return assessed.append_column(PART_COLUMN, pa.array(np.full(len(assessed), number, dtype=np.int64)))


def _in_parts(blocks: Iterable[pa.Table], parts: list[Path], captioning: CatalogCaptioning) -> Iterator[pa.Table]:
    """The assessed parts in catalog order, whole, from blocks in that order that may split or join them.

    A part no rows came back for is an empty one; it is assessed here, so its output part exists too.
    """
    pieces: list[pa.Table] = []
    number = 0
    for block in blocks:
        numbers = block[PART_COLUMN].to_numpy()
        starts = [0, *np.flatnonzero(np.diff(numbers)) + 1]
        for start, stop in zip(starts, [*starts[1:], len(numbers)]):
            while number < numbers[start]:
                yield _whole(pieces, parts[number], captioning)
                pieces, number = [], number + 1
            pieces.append(block.slice(start, stop - start).drop_columns([PART_COLUMN]))
    while number < len(parts):
        yield _whole(pieces, parts[number], captioning)
        pieces, number = [], number + 1


def _whole(pieces: list[pa.Table], path: Path, captioning: CatalogCaptioning) -> pa.Table:
    if not pieces:
        return assess_part(pq.read_table(path), captioning)
    return pa.concat_tables(pieces)
