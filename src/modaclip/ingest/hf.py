"""`hf:<repo_id>[@revision]` (or `hf:<local folder>`): a Hugging Face dataset, streamed.

Copies of the Fashion Product Images catalog on the Hub differ: ashraq/fashion-product-images-small
has our columns with year as float, ceyda/fashion-products-small has id as text and no
productDisplayName, articleType or baseColour. Columns are taken by our names (or `data.columns`),
and `to_catalog_rows` fixes the types. Rows are streamed in batches of data.chunk_rows, so a catalog
larger than memory never sits in RAM.

A local folder in the Hub's layout (data/train-*.parquet, as `save_to_disk` does not write but
`to_parquet` and `huggingface-cli download` do) is read the same way, which is how a machine
without the Hub uses a copy made elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.rows import select_columns, to_catalog_rows
from modaclip.ingest.subset import stream_subset

SPLIT = "train"  # the copies of the catalog on the Hub have one split


def parse_location(location: str) -> tuple[str, str | None]:
    """'repo_id@revision' -> (repo_id, revision); a local folder has no revision."""
    if Path(location).expanduser().exists():
        return str(Path(location).expanduser()), None
    repo_id, _, revision = location.partition("@")
    if not repo_id:
        raise ModaclipError("data.source 'hf:': name a dataset, e.g. hf:ashraq/fashion-product-images-small")
    return repo_id, revision or None


def read_hf(location: str, params: DataParams, _bad_rows: BadRows) -> Iterator[pd.DataFrame]:
    path, revision = parse_location(location)
    is_local = Path(path).exists()
    if not is_local:
        _check_hub(path, revision, params.fetch_timeout_s)
    dataset = _open_stream(path, revision, is_local)
    where = f"hf:{location}"
    chunks = (_catalog_rows(batch, params, where) for batch in dataset.iter(batch_size=params.chunk_rows))
    yield from stream_subset(chunks, params.limit, params.seed, params.chunk_rows)


def _catalog_rows(batch: dict[str, list], params: DataParams, where: str) -> pd.DataFrame:
    frame = select_columns(pd.DataFrame(batch), params.columns, where)
    for needed in ("id", "image"):
        if needed not in frame.columns:
            raise ModaclipError(f"{where}: no {needed} column; name yours with data.columns.{needed}")
    return to_catalog_rows(frame, where)


def _open_stream(path: str, revision: str | None, is_local: bool):  # -> datasets.IterableDataset
    """The train split as a stream, images left encoded (decoding them here only to re-encode is waste)."""
    import datasets

    try:
        dataset = datasets.load_dataset(path, split=SPLIT, revision=revision, streaming=True)
    except (FileNotFoundError, ValueError) as error:
        raise ModaclipError(f"data.source 'hf:{path}': cannot load a {SPLIT} split: {error}") from error
    except ConnectionError as error:
        raise ModaclipError(_unreachable(path, error)) from error
    for name, feature in (dataset.features or {}).items():
        if isinstance(feature, datasets.Image):
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset


def _check_hub(repo_id: str, revision: str | None, timeout_s: float) -> None:
    """One quick request before streaming, so an unreachable Hub fails in seconds, not after the
    minutes of retries `datasets` would spend; skipped in offline mode, where the cache serves."""
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if constants.HF_HUB_OFFLINE:
        return
    try:
        HfApi().dataset_info(repo_id, revision=revision, timeout=timeout_s)
    except RevisionNotFoundError as err:
        raise ModaclipError(f"data.source 'hf:{repo_id}@{revision}': no revision {revision!r} on the Hub") from err
    except RepositoryNotFoundError as err:
        raise ModaclipError(
            f"data.source 'hf:{repo_id}': no such dataset on the Hub (or it is private; log in with `hf auth login`)"
        ) from err
    except (httpx2.HTTPError, HfHubHTTPError, OSError) as error:
        raise ModaclipError(_unreachable(repo_id, error)) from error


def _unreachable(repo_id: str, error: Exception) -> str:
    return (
        f"data.source 'hf:{repo_id}': cannot reach the Hugging Face Hub ({type(error).__name__}: {error}); "
        f"download the dataset on a machine that can (`hf download {repo_id} --repo-type dataset --local-dir DIR`) "
        "and set data.source to hf:DIR"
    )
