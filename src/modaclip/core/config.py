"""Typed, validated view of params.yaml.

Every stage reads params.yaml through `load_params`, so a misspelt key or a value of the wrong type
stops the stage at once with a message that names the key, instead of a KeyError deep inside.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML, YAMLError

from modaclip.core.errors import ModaclipError
from modaclip.core.fields import check_field_texts, check_names

DEFAULT_PARAMS_PATH = Path("params.yaml")
_HOST_PORT = re.compile(r"[\w.-]+:\d{1,5}")


class Section(BaseModel):
    """A params.yaml section: unknown keys and wrongly typed values are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(Section):
    source: str = "synthetic"
    num_items: int = Field(3000, ge=1)
    seed: int = Field(0, ge=0)
    image_size: int = Field(128, ge=32)
    defect_rate: float = Field(0.01, ge=0.0, le=0.5)
    limit: int = Field(0, ge=0)
    columns: dict[str, str] = {}
    chunk_rows: int = Field(500, ge=1)
    fetch_timeout_s: float = Field(10.0, gt=0.0)
    max_bad_rows: float = Field(0.01, ge=0.0, le=1.0)


class CaptionParams(Section):
    engine: str = "local"  # a key of curate.engines.CAPTION_ENGINES, checked by run_caption before any work
    required_attributes: list[str] = ["gender", "type", "colour"]
    min_image_side: int = Field(32, ge=1)
    templates: Literal["auto"] | list[str] = "auto"
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    split_salt: str = "modaclip"
    image_size: int = Field(128, ge=32)

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> CaptionParams:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("caption.val_fraction + caption.test_fraction must be below 1")
        return self


class ModelParams(Section):
    arch: str = "modaclip-tiny"
    pretrained: str = "none"


class TrainParams(Section):
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.1, ge=0.0)
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float = Field(1.0, ge=0.0)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    loss: str = "fields"  # a key of train.losses.LOSSES, checked by create_loss when the finetune stage starts
    fields: dict[str, float] = Field(
        default_factory=lambda: {
            "{captions}": 1.0,
            "a photo of a {type}": 2.0,
            "a photo of a {colour}": 1.0,
            "{type} for {gender}": 0.5,
        }
    )
    zero_shot_field: str = "type"
    schedule: str = "warmup_cosine"  # a key of train.schedules.SCHEDULES, checked likewise by create_schedule
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    accum_steps: int = Field(1, ge=1)
    grad_checkpointing: bool = False
    lock_image: bool = False
    lock_image_unlocked_groups: int = Field(0, ge=0)
    lock_text: bool = False
    lock_text_unlocked_layers: int = Field(0, ge=0)
    select_metric: Literal["recall@10", "zero_shot_f1"] = "recall@10"
    patience: int = Field(0, ge=0)
    wise_ft_alphas: list[float] = Field(default_factory=list)
    checkpoint_every_steps: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _alphas_are_weights(self) -> TrainParams:
        if any(not 0.0 <= alpha <= 1.0 for alpha in self.wise_ft_alphas):
            raise ValueError(f"train.wise_ft_alphas must lie in [0, 1], got {self.wise_ft_alphas}")
        return self

    @model_validator(mode="after")
    def _fields_are_weighted_templates(self) -> TrainParams:
        check_field_texts(self.fields)
        check_names("train.zero_shot_field", [self.zero_shot_field])
        return self


class IndexParams(Section):
    type: str = "auto"  # auto or a key of embed.index.INDEX_BUILDERS, checked by check_index_type before embedding
    exact_below: int = Field(50000, ge=0)
    hnsw_m: int = Field(32, ge=2)
    hnsw_ef_construction: int = Field(80, ge=1)
    ef_search: int = Field(64, ge=1)
    ivf_lists: int = Field(0, ge=0)
    nprobe: int = Field(16, ge=1)
    pq_m: int = Field(64, ge=1)
    refine_factor: int = Field(64, ge=1)
    train_sample: int = Field(100000, ge=1)


class EmbedParams(Section):
    engine: str = "local"  # a key of embed.engines.EMBED_ENGINES, checked by run_embed before any work
    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    actors: int = Field(0, ge=0)
    gpus_per_actor: float = Field(1.0, gt=0.0)
    index: IndexParams = IndexParams()


class RayParams(Section):
    """Where the `ray` engines run: `local` starts a Ray instance on this machine, `auto` joins the cluster
    this machine is part of, `ray://host:port` (Ray Client) or `host:port` (a head node's GCS) a remote one."""

    address: str = "local"
    num_cpus: int = Field(0, ge=0)
    object_store_mb: int = Field(0, ge=0)

    @field_validator("address")
    @classmethod
    def _known_address_form(cls, address: str) -> str:
        if address in ("local", "auto") or _HOST_PORT.fullmatch(address.removeprefix("ray://")):
            return address
        raise ValueError(f"expected local, auto, ray://host:port or host:port, got {address!r}")


class EvaluateParams(Section):
    recall_ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 50], min_length=1)
    relevance_attributes: list[str] = ["gender", "colour", "type"]
    zero_shot_fields: list[str] = ["type", "colour"]
    zero_shot_templates: list[str] = Field(default_factory=lambda: ["a photo of a {label}"], min_length=1)
    grid_queries: list[str] = Field(
        default_factory=lambda: [
            "red striped dress",
            "black casual shoes",
            "blue jeans",
            "white sneakers",
            "brown leather belt",
        ],
        min_length=1,
    )
    grid_k: int = Field(8, ge=1)
    grid_relevant: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: {
            "red striped dress": {"articleType": ["Dresses"], "baseColour": ["Red"]},
            "black casual shoes": {"articleType": ["Casual Shoes"], "baseColour": ["Black"]},
            "blue jeans": {"articleType": ["Jeans"], "baseColour": ["Blue"]},
            "white sneakers": {"articleType": ["Casual Shoes", "Sports Shoes"], "baseColour": ["White"]},
            "brown leather belt": {"articleType": ["Belts"], "baseColour": ["Brown"]},
        }
    )
    zero_shot_sets: list[str] = []
    query_sets: list[str] = ["shoppers:200"]
    kagl_label_fields: list[str] = ["masterCategory", "subCategory", "baseColour"]
    kagl_label_template: str = "{label}"
    kagl_doc_text_weight: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fields_are_roles_or_columns(self) -> EvaluateParams:
        for query, attributes in self.grid_relevant.items():
            check_names(f"evaluate.grid_relevant[{query!r}]", list(attributes))
        check_names("evaluate.relevance_attributes", self.relevance_attributes)
        check_names("evaluate.zero_shot_fields", self.zero_shot_fields)
        return self


class PromoteParams(Section):
    """The gate `modaclip retrain` applies before a new model replaces production (see promotion.py)."""

    metric: str = Field("finetuned.text_to_image.recall@10", min_length=1)
    min_gain: float = Field(0.005, ge=0.0)
    guarded: list[str] = Field(
        default_factory=lambda: [
            "finetuned.zero_shot.articleType.weighted_f1",
            "finetuned.image_to_image.precision@10_articleType",
        ]
    )
    max_regression: float = Field(0.02, ge=0.0)
    min_confidence: float = Field(0.9, ge=0.0, le=1.0)
    mode: Literal["auto", "review"] = "auto"


class ServeLimits(Section):
    """How much load `modaclip serve` takes before it sheds, and how long it waits for a client or its encoder.

    The fixed caps on one request (query length, page size, image pixels) are in serve/limits.py;
    docs/search.md#caps-load-limits-and-status-codes says what each answers past its limit.
    """

    max_in_flight: int = Field(512, ge=1)  # requests handled at once (/health and /metrics aside); more: 503
    max_connections: int = Field(1024, ge=1)  # open connections (uvicorn's limit_concurrency); more: uvicorn's 503
    body_timeout_s: float = Field(20.0, gt=0.0)  # an upload or event body must arrive whole within this; later: 408
    upload_memory_mb: float = Field(256.0, gt=0.0)  # upload bytes held in memory by all requests together; more: 503
    encoder_queue: int = Field(512, ge=1)  # text queries waiting for the encoder; more: 503
    encoder_batch: int = Field(64, ge=1)  # text queries in one forward pass
    encode_timeout_s: float = Field(10.0, gt=0.0)  # a forward pass this long means a hung encoder, which is replaced
    keep_alive_s: int = Field(5, ge=1)  # an idle keep-alive connection is closed after this
    shutdown_s: int = Field(10, ge=0)  # on SIGTERM, requests still running after this are cancelled
    rate_limit: str = ""  # per-client rate such as "120/minute" (the `limits` library's syntax); "" = none

    @field_validator("rate_limit")
    @classmethod
    def _a_rate(cls, rate: str) -> str:
        if rate:
            from limits import parse  # imported only when a rate is set

            try:
                parse(rate)
            except ValueError as err:
                raise ValueError(f"expected a rate such as 120/minute, got {rate!r}") from err
        return rate

    @property
    def upload_memory_bytes(self) -> int:
        return int(self.upload_memory_mb * 2**20)


class ServeParams(Section):
    """`modaclip serve`: every default of the server (its flags override them), and how a server of production
    follows the registry (serve/follow.py)."""

    host: str = Field("127.0.0.1", min_length=1)  # address to bind; 127.0.0.1 = this machine only
    port: int = Field(8000, ge=1, le=65535)
    cors_origins: list[str] = []  # origins whose browser pages may call the API
    max_upload_mb: float = Field(10.0, gt=0.0)  # largest accepted image upload
    threads: int = Field(16, ge=1)  # image uploads, similar products, filtered and hybrid searches handled at once
    text_threads: int = Field(0, ge=0)  # torch threads of the text encoder process; 0 = half the cores
    query_cache: int = Field(10_000, ge=0)  # text query embeddings kept for repeated queries; 0 = off
    follow_seconds: int = Field(30, ge=0)  # 0 pins the version it started with
    fetch_from: str = ""  # git remote whose tags are fetched before each check; "" = this workspace's tags
    log_path: str = Field("logs/search-log.sqlite", min_length=1)  # the search log (feedback/search_log.py)
    log_retention_days: int = Field(90, ge=0)  # searches and events older than this are deleted; 0 keeps all
    limits: ServeLimits = ServeLimits()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class FeedbackExportParams(Section):
    """`modaclip feedback export` and the feedback stage: a search log -> training pairs and held-out judged queries."""

    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # the latest share of text searches held out for evaluation
    min_shoppers: int = Field(2, ge=1)  # a query typed by fewer distinct shoppers (sessions) is dropped, for privacy
    eta: float = Field(1.0, ge=0.0)  # position bias: a result at position p is examined with probability (1/p)^eta
    max_weight: float = Field(10.0, ge=1.0)  # inverse-propensity clip, so a lone deep click cannot dominate


class FeedbackSimulateParams(Section):
    """The simulated shoppers of the embedded default (feedback/simulate.py, docs/feedback.md)."""

    searches: int = Field(4000, ge=1)
    shoppers: int = Field(800, ge=1)  # sessions the searches are spread over
    pool: int = Field(400, ge=1)  # distinct queries drawn from (shoppers' words, evaluate/shopper_queries.py)
    zipf: float = Field(1.1, gt=0.0)  # popularity skew of the pool: query of rank r drawn with weight 1/r^zipf
    page: int = Field(20, ge=1)  # results shown per search
    eta: float = Field(1.0, ge=0.0)  # examination: position p is looked at with probability (1/p)^eta
    open_probability: list[float] = Field(default_factory=lambda: [0.02, 0.3, 0.7], min_length=3, max_length=3)
    add_probability: float = Field(0.3, ge=0.0, le=1.0)  # chance an opened product of grade 2 is added
    seed: int = Field(1, ge=0)  # queries, popularity and clicks; another than the shoppers' query set's
    start: int = 1_767_225_600  # first search's time (Unix seconds; 2026-01-01 UTC)
    seconds_between: float = Field(30.0, gt=0.0)  # searches are spaced evenly from `start`

    @field_validator("open_probability")
    @classmethod
    def _probabilities(cls, values: list[float]) -> list[float]:
        if any(not 0.0 <= p <= 1.0 for p in values):
            raise ValueError(f"probabilities lie in [0, 1], got {values}")
        return values


class FeedbackTrainParams(Section):
    """finetune-feedback: a warm start from models/finetuned, trained on catalog + logged queries."""

    epochs: int = Field(3, ge=1)
    lr: float = Field(2e-4, gt=0.0)
    warmup_steps: int = Field(20, ge=0)
    queries_weight: float = Field(2.0, ge=0.0)  # the `{queries}` weight beside train.fields'; 0: the control, no log


class FeedbackParams(Section):
    """Learning from the shop's search log (docs/feedback.md)."""

    log: str = Field("simulated", min_length=1)  # simulated | a path or glob of `modaclip serve` logs
    export: FeedbackExportParams = FeedbackExportParams()
    simulate: FeedbackSimulateParams = FeedbackSimulateParams()
    train: FeedbackTrainParams = FeedbackTrainParams()


class Params(Section):
    data: DataParams = DataParams()
    caption: CaptionParams = CaptionParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    embed: EmbedParams = EmbedParams()
    evaluate: EvaluateParams = EvaluateParams()
    promote: PromoteParams = PromoteParams()
    ray: RayParams = RayParams()
    serve: ServeParams = ServeParams()
    feedback: FeedbackParams = FeedbackParams()


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate a parsed params mapping; errors name the dotted key, e.g. `train.lr`."""
    if raw is None:
        raw = {}
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        detail = first["msg"]
        if first["type"] == "extra_forbidden":
            detail = "unknown parameter"
        raise ModaclipError(f"{source}: {key}: {detail} (got {first.get('input')!r})") from err


def load_params(path: str | Path = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ModaclipError(f"{path}: parameter file not found") from err
    try:
        # YAML 1.2 (as DVC writes it): `lr: 1e-3` is a number, not the string PyYAML would make of it.
        raw = YAML(typ="safe", pure=True).load(text)
    except YAMLError as err:
        raise ModaclipError(f"{path}: not valid YAML: {err}") from err
    return parse_params(raw, str(path))
