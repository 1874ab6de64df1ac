"""`--model production|vN|base|CHECKPOINT|PATH`: which model a search or classify command uses, and its embeddings.

`base` is the model fine-tuning starts from (params.yaml `model` section and `train.seed`, as the
evaluate stage builds it), so a user can compare it with the fine-tuned one on a query; a
transformers CLIP checkpoint (`hf:org/name` or a `save_pretrained` folder) is converted and saved
once. Their catalog embeddings are no pipeline output: they are computed on first use and kept in a
cache outside the repository (`$MODACLIP_CACHE`, default ~/.cache/modaclip), in a folder named by
the weights' sha256 and the catalog's content digest, so a changed model or catalog never meets
stale vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from pathlib import Path

from modaclip.core.catalog_io import part_files
from modaclip.core.config import DEFAULT_PARAMS_PATH, EmbedParams, Params, load_params
from modaclip.embed.stored import META_FILE, TOWERS_DIR
from modaclip.model.embedders import Embedder, TorchEmbedder, open_embedder
from modaclip.model.saved_model import is_transformers_checkpoint, weights_fingerprint
from modaclip.registry.versions import SEARCH_PATHS, SearchSource, search_inputs, search_source

log = logging.getLogger(__name__)

BASE = "base"
CACHE_ENV = "MODACLIP_CACHE"
KEY_CHARS = 16  # hex digits of each digest in a cache folder name


def cache_dir() -> Path:
    """$MODACLIP_CACHE, else $XDG_CACHE_HOME/modaclip, else ~/.cache/modaclip."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modaclip"


def model_folder(spec: str, params_path: Path = DEFAULT_PARAMS_PATH) -> Path:
    """The saved model folder `--model` names (classify needs no embeddings)."""
    if spec == BASE:
        return base_model_dir(load_params(params_path), cache_dir())
    if is_transformers_checkpoint(spec):
        return converted_model_dir(spec, cache_dir())
    return search_inputs(spec)["model"]


def query_embedder(spec: str, params_path: Path = DEFAULT_PARAMS_PATH) -> Embedder:
    """What embeds queries for `--model` when no catalog is needed (classify): the ONNX towers beside
    the model's embeddings when they were exported from it, else the model in torch."""
    if spec == BASE or is_transformers_checkpoint(spec):
        return TorchEmbedder(model_folder(spec, params_path))
    source = search_source(spec)
    return open_embedder(source.model, source.embeddings / TOWERS_DIR, weights_fingerprint(source.model))


def search_source_for(
    spec: str, embeddings: str | None = None, catalog: str | None = None, params_path: Path = DEFAULT_PARAMS_PATH
) -> SearchSource:
    """`registry.search_source`, plus `base` and transformers checkpoints; explicit --embeddings / --catalog win.

    The catalog embeddings of those two are made on first use, and only when no --embeddings is given.
    """
    if spec != BASE and not is_transformers_checkpoint(spec):
        source = search_source(spec)
        return replace(
            source, embeddings=Path(embeddings or source.embeddings), catalog=Path(catalog or source.catalog)
        )
    params = load_params(params_path)
    catalog_dir = Path(catalog or SEARCH_PATHS["catalog"])
    if spec == BASE:
        model_dir, kind = base_model_dir(params, cache_dir()), BASE
        description = f"base model of {params_path} ({params.model.arch}, pretrained {params.model.pretrained})"
    else:
        model_dir, kind, description = converted_model_dir(spec, cache_dir()), "transformers", f"checkpoint {spec}"
    embeddings_dir = (
        Path(embeddings) if embeddings else cached_embeddings_dir(model_dir, catalog_dir, params.embed, cache_dir())
    )
    return SearchSource(model_dir, embeddings_dir, catalog_dir, kind, description)


def base_model_dir(params: Params, cache: Path) -> Path:
    """The base model saved under cache/models/<weights sha256>, written the first time these weights are seen."""
    from modaclip.model.clip_model import create_base_model, save_model, weights_digest  # torch: only for `base`

    bundle = create_base_model(params.model.arch, params.model.pretrained, params.train.seed)
    directory = cache / "models" / weights_digest(bundle)[:KEY_CHARS]
    if not directory.is_dir():
        save_model(bundle, directory, {"role": "base model of params.yaml (cached by modaclip --model base)"})
    return directory


def converted_model_dir(spec: str, cache: Path) -> Path:
    """A transformers checkpoint converted and saved under cache/models/<weights sha256> the first time."""
    from modaclip.model.clip_model import create_base_model, save_model, weights_digest  # torch: only here

    bundle = create_base_model("none", spec, seed=0)  # a checkpoint brings its architecture and weights
    directory = cache / "models" / weights_digest(bundle)[:KEY_CHARS]
    if not directory.is_dir():
        save_model(bundle, directory, {"role": f"{spec} converted by modaclip --model"})
    return directory


def cached_embeddings_dir(model_dir: Path, catalog_dir: Path, params: EmbedParams, cache: Path) -> Path:
    """Embeddings of the catalog with a model the pipeline did not embed with (`base`, a converted
    checkpoint), and its ONNX towers: computed once per (weights, catalog content).

    An earlier folder of the same model (a smaller catalog) is handed to the embed step, so when
    products were only added, only they are embedded.
    """
    model_key = weights_fingerprint(model_dir)[:KEY_CHARS]
    directory = cache / "embeddings" / f"{model_key}-{catalog_digest(catalog_dir)[:KEY_CHARS]}"
    if (directory / META_FILE).is_file():
        return directory
    earlier = sorted(directory.parent.glob(f"{model_key}-*/{META_FILE}"), key=lambda meta: meta.stat().st_mtime)
    from modaclip.embed.embedding import embed_catalog  # torch: only for models outside the pipeline

    log.info("embedding %s with %s once; cached in %s", catalog_dir, model_dir, directory)
    previous = earlier[-1].parent if earlier else directory
    embed_catalog(model_dir, catalog_dir, directory, params, previous_dir=previous, towers=True)
    return directory


def catalog_digest(catalog_dir: Path) -> str:
    """blake2b of every catalog part's name and bytes: any added, removed or changed row changes it."""
    digest = hashlib.blake2b(digest_size=16)
    for path in part_files(catalog_dir):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
