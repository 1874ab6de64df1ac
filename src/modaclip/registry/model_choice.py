"""`--model auto|production|vN|base|CHECKPOINT|PATH`: the one place that says which model a command uses, with
its embeddings and catalog.

`production` is the registry's prod version (GTO tags, see model_versions.py), restored from DVC once; asked
for explicitly it fails closed: with no prod tag visible (tags not fetched, a shallow clone, nothing
promoted yet) the command stops and says what to do, rather than serve something else. `auto`, the
default, is production when the registry has one, else the workspace's pipeline output (so a plain
`dvc repro` followed by `modaclip search` works without a registry), and logs which. `vN` is a
registered version, anything else a saved model folder searched over the workspace's embeddings and
catalog.

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
import re
from dataclasses import KW_ONLY, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from modaclip.core.catalog_io import part_files
from modaclip.core.config import DEFAULT_PARAMS_PATH, EmbedParams, Params, load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.paths import CATALOG_DIR, EMBEDDINGS_DIR, EVAL_METRICS, MODEL_DIR, SEARCH_PATHS
from modaclip.embed.stored import META_FILE, TOWERS_DIR
from modaclip.evaluate.markdown_report import read_eval_json
from modaclip.model.embedders import Embedder, TorchEmbedder, open_embedder
from modaclip.model.saved_model import is_transformers_checkpoint, weights_fingerprint
from modaclip.registry import model_versions

log = logging.getLogger(__name__)

BASE = "base"
PRODUCTION = "production"
AUTO = "auto"
CACHE_ENV = "MODACLIP_CACHE"
KEY_CHARS = 16  # hex digits of each digest in a cache folder name


@dataclass(frozen=True)
class SearchSource:
    """Model, embeddings and catalog folders for a `--model` spec, and what they are (for `serve`'s /health)."""

    model: Path
    embeddings: Path
    catalog: Path
    _: KW_ONLY
    kind: str  # "production", "version", "pipeline" (auto with no production yet), "folder" or "base"
    description: str
    version: str | None = None
    since: datetime | None = None  # production: when it became production (its newest prod tag)


def cache_dir() -> Path:
    """$MODACLIP_CACHE, else $XDG_CACHE_HOME/modaclip, else ~/.cache/modaclip."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modaclip"


def model_folder(spec: str, params_path: Path = DEFAULT_PARAMS_PATH, root: Path = Path(".")) -> Path:
    """The saved model folder `--model` names (classify needs no embeddings)."""
    if spec == BASE:
        return base_model_dir(load_params(params_path), cache_dir())
    if is_transformers_checkpoint(spec):
        return converted_model_dir(spec, cache_dir())
    return registered_source(spec, root).model


def query_embedder(spec: str, params_path: Path = DEFAULT_PARAMS_PATH, root: Path = Path(".")) -> Embedder:
    """What embeds queries for `--model` when no catalog is needed (classify): the ONNX towers beside
    the model's embeddings when they were exported from it, else the model in torch."""
    if spec == BASE or is_transformers_checkpoint(spec):
        return TorchEmbedder(model_folder(spec, params_path))
    source = registered_source(spec, root)
    return open_embedder(source.model, source.embeddings / TOWERS_DIR, weights_fingerprint(source.model))


def search_source_for(
    spec: str,
    embeddings: str | None = None,
    catalog: str | None = None,
    params_path: Path = DEFAULT_PARAMS_PATH,
    root: Path = Path("."),
) -> SearchSource:
    """Model, embeddings and catalog for `--model`; explicit --embeddings / --catalog win.

    The catalog embeddings of `base` and of a transformers checkpoint are made on first use, and only
    when no --embeddings is given.
    """
    if spec != BASE and not is_transformers_checkpoint(spec):
        source = registered_source(spec, root)
        return replace(
            source, embeddings=Path(embeddings or source.embeddings), catalog=Path(catalog or source.catalog)
        )
    params = load_params(params_path)
    catalog_dir = Path(catalog or CATALOG_DIR)
    if spec == BASE:
        model_dir, kind = base_model_dir(params, cache_dir()), BASE
        description = f"base model of {params_path} ({params.model.arch}, pretrained {params.model.pretrained})"
    else:
        model_dir, kind, description = converted_model_dir(spec, cache_dir()), "transformers", f"checkpoint {spec}"
    embeddings_dir = (
        Path(embeddings)
        if embeddings
        else cached_embeddings_dir(model_dir, catalog_dir, params.embed, cache_dir(), towers=True)
    )
    return SearchSource(model_dir, embeddings_dir, catalog_dir, kind=kind, description=description)


def registered_source(spec: str, root: Path = Path(".")) -> SearchSource:
    """`--model auto|production|vN|PATH`: a registry version (restored once), the workspace's outputs, or a folder."""
    if spec in (PRODUCTION, AUTO):
        version = model_versions.production(root)
        if version is not None:
            source = version_source(root, version, PRODUCTION)
        elif spec == PRODUCTION:
            raise ModaclipError(no_production_message(root))
        else:
            description = f"working tree's fine-tuned model ({MODEL_DIR}; the registry has no production version)"
            source = SearchSource(**SEARCH_PATHS, kind="pipeline", description=description)
        if spec == AUTO:
            log.info("--model auto: %s", source.description)
        return source
    if re.fullmatch(r"v\d+(\.\d+\.\d+)?", spec):
        return version_source(root, model_versions.find_version(root, spec), "version")
    return SearchSource(Path(spec), EMBEDDINGS_DIR, CATALOG_DIR, kind="folder", description=f"model folder {spec}")


def evaluation_of(spec: str, root: Path = Path(".")) -> dict[str, Any] | None:
    """metrics/eval.json of `--model spec`: a version's as committed with it, the workspace's for the
    pipeline's model; None for the base model, checkpoints and other folders, whose figures nothing records."""
    if spec == BASE or is_transformers_checkpoint(spec):
        return None
    source = registered_source(spec, root)
    if source.version:
        return model_versions.eval_report(root, model_versions.find_version(root, source.version))
    if source.kind == "pipeline" and (root / EVAL_METRICS).is_file():
        return read_eval_json(root / EVAL_METRICS)
    return None


def version_source(root: Path, version: model_versions.ModelVersion, kind: str = PRODUCTION) -> SearchSource:
    """A registered version's restored model, embeddings and catalog (as production: named so, with since when)."""
    paths = model_versions.materialise(root, version)
    label = "production " if kind == PRODUCTION else ""
    return SearchSource(
        **paths,
        kind=kind,
        description=f"{label}{version.version} ({version.tag}, commit {version.commit[:8]})",
        version=version.version,
        since=model_versions.production_since(root) if kind == PRODUCTION else None,
    )


def no_production_message(root: Path) -> str:
    """Why `--model production` cannot resolve here, and the two ways out."""
    return (
        f"--model production: no production version is visible in {root.resolve()} "
        f"(no {model_versions.ARTIFACT}#{model_versions.PROD_STAGE} tag: tags not fetched, a shallow clone, "
        "or nothing promoted yet); "
        "run `git fetch --tags` (a clone), or promote one (`modaclip promote vN`, `modaclip retrain`), "
        "or pass --model auto to use the working tree's model"
    )


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


def cached_embeddings_dir(
    model_dir: Path,
    catalog_dir: Path,
    params: EmbedParams,
    cache: Path,
    reuse_from: Path | None = None,
    towers: bool = False,
) -> Path:
    """Embeddings of the catalog with a model the pipeline did not embed with (the base model, a converted
    checkpoint, or production's for the promotion gate), with its ONNX towers for search (`towers`):
    computed once per (weights, catalog content).

    An earlier folder of the same model (a smaller catalog), else `reuse_from` (that model's own
    embeddings of another catalog), is handed to the embed step, so when products were only added,
    only they are embedded.
    """
    model_key = weights_fingerprint(model_dir)[:KEY_CHARS]
    directory = cache / "embeddings" / f"{model_key}-{catalog_digest(catalog_dir)[:KEY_CHARS]}"
    if (directory / META_FILE).is_file():
        return directory
    earlier = sorted(directory.parent.glob(f"{model_key}-*/{META_FILE}"), key=lambda meta: meta.stat().st_mtime)
    previous = earlier[-1].parent if earlier else reuse_from or directory
    from modaclip.embed.embedding import embed_catalog  # torch: only for models outside the pipeline

    log.info("embedding %s with %s once; cached in %s", catalog_dir, model_dir, directory)
    embed_catalog(model_dir, catalog_dir, directory, params, previous_dir=previous, towers=towers)
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
