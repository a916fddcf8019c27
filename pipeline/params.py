"""params.yaml, loaded once into a typed, validated object.

Every stage calls ``load_params()`` first: an unknown key, a wrong type or an
out-of-range value stops it with one line naming the key and what is allowed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from pipeline import datasets as dataset_registry
from pipeline import strategies as strategy_registry
from pipeline.errors import PipelineError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BaseParams(_Section):
    seed: int = Field(0, ge=0)
    # Empty: sqlite:///<project root>/mlflow.db. MLFLOW_TRACKING_URI overrides both.
    mlflow_tracking_uri: str = ""
    experiment: str = Field("deep-active-learning", min_length=1)


def _image_size(size) -> tuple[int, int]:
    """[height, width], at least 8 each so that the CNN's three 2x2 poolings leave a pixel."""
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) and v >= 8 for v in size):
        raise ValueError("must be [height, width], two integers >= 8")
    return tuple(size)


def _known_strategy(name: str) -> str:
    """A registered strategy's name (the registry is the one list of them)."""
    if name not in strategy_registry.names():
        raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(strategy_registry.names())}")
    return name


class FolderParams(_Section):
    """One image-folder dataset: <path>/<class>/<image> (or <path>/train/... and <path>/test/...)."""
    path: str = Field(min_length=1)
    # Height, width after resizing; at least 8 so that the CNN's three 2x2 poolings leave a pixel.
    image_size: tuple[int, int]
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    # Share of each class held out for testing when the folder has no train/ and test/ split.
    test_fraction: float = Field(0.2, gt=0, lt=1)

    _size = field_validator("image_size", mode="before")(_image_size)


class DataParams(_Section):
    # The user's own image folders, by dataset name (validated before `datasets`, which may name them).
    folders: dict[str, FolderParams] = {}
    datasets: list[str] = Field(min_length=1)

    @field_validator("folders")
    @classmethod
    def _folder_names(cls, folders: dict[str, FolderParams]) -> dict[str, FolderParams]:
        for name in folders:
            if name in dataset_registry.BUILT_IN:
                raise ValueError(f"{name}: clashes with the built-in dataset of that name; give the folder another name")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"{name!r}: use letters, digits, '_', '-' or '.' (it names stages and folders)")
        return folders

    @field_validator("datasets")
    @classmethod
    def _known_unique(cls, names: list[str], info: ValidationInfo) -> list[str]:
        known = [*dataset_registry.BUILT_IN, *info.data.get("folders", {})]
        for name in names:
            if name not in known:
                raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(known)} "
                                 "(or declare an image folder under data.folders)")
        if len(set(names)) != len(names):
            raise ValueError("lists a dataset twice")
        return names

    def check(self, name: str) -> str:
        """`name`, if the grid has it; a stage asked for another dataset stops in one line."""
        if name not in self.datasets:
            raise PipelineError(f"dataset {name!r} is not in params.yaml's data.datasets "
                                f"({', '.join(self.datasets)}); add it there")
        return name


class DownloadParams(_Section):
    # Per dataset, tried in order: http(s):// or file:// base URLs, or local folders.
    sources: dict[str, list[str]]
    # Optional per-file overrides of the published checksums, "sha256:<hex>" or "md5:<hex>",
    # for a private mirror or a test copy of the data.
    checksums: dict[str, str] = {}
    timeout_s: float = Field(60.0, gt=0)

    @field_validator("sources")
    @classmethod
    def _downloaded_datasets(cls, sources: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in sources:
            if name not in dataset_registry.DOWNLOADED:
                raise ValueError(f"{name}: not a downloaded dataset; sources are for "
                                 f"{', '.join(dataset_registry.DOWNLOADED)}")
        return sources

    @field_validator("checksums")
    @classmethod
    def _checksum_form(cls, checksums: dict[str, str]) -> dict[str, str]:
        for name, value in checksums.items():
            algo, _, digest = value.partition(":")
            if algo not in ("sha256", "md5") or not digest:
                raise ValueError(f"{name}: expected 'sha256:<hex>' or 'md5:<hex>', got {value!r}")
        return checksums


class ImbalanceParams(_Section):
    # Long-tail profile: class c keeps ratio ** (-c / 9) of its training images,
    # so class 0 keeps all and class 9 keeps 1/ratio.
    ratio: float = Field(10.0, ge=1.0)
    # Explicit per-class retention fractions (10 values in (0, 1]); overrides ratio.
    fractions: list[float] | None = None
    # Apply the same profile to the test split (default: keep it balanced).
    imbalance_test: bool = False

    @field_validator("fractions")
    @classmethod
    def _ten_fractions(cls, fractions: list[float] | None) -> list[float] | None:
        if fractions is None:
            return None
        n_classes = len(dataset_registry.get(dataset_registry.FASHION_MNIST_IMBALANCED.derived_from).class_names)
        if len(fractions) != n_classes or not all(0 < f <= 1 for f in fractions):
            raise ValueError(f"must be {n_classes} numbers in (0, 1], one per class")
        return fractions


class ModelParams(_Section):
    filters: list[int] = Field([32, 64, 64], min_length=3, max_length=3)
    kernel_size: int = Field(3, ge=1)
    dense_units: int = Field(128, ge=1)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    # True: a fresh model each round (the usual protocol); False: keep training the last one.
    retrain_from_scratch: bool = True
    # Early stopping on a held-out slice of the labelled set; 0 disables it.
    validation_fraction: float = Field(0.0, ge=0, lt=1)
    early_stopping_patience: int = Field(3, ge=1)
    # Batch size for pool scoring and test evaluation (inference only).
    predict_batch_size: int = Field(2048, ge=1)
    # Dropout rate before each Dense layer (0: no dropout layers). BALD needs it for its MC passes.
    dropout: float = Field(0.25, ge=0, lt=1)
    # TensorFlow threads per run. Part of the result: the thread count splits float sums
    # differently. The grid runner (scripts/grid.py) runs cores // threads cells at once.
    threads: int = Field(1, ge=1)
    # Arithmetic of training, pool scoring, MC-dropout passes and test evaluation. bfloat16: Keras'
    # mixed_bfloat16 (bfloat16 compute, float32 weights, float32 softmax output and loss); needs a CPU
    # with AVX512-BF16 or AMX-BF16. Part of the result, like threads.
    precision: Literal["float32", "bfloat16"] = "float32"

    @field_validator("filters")
    @classmethod
    def _positive(cls, filters: list[int]) -> list[int]:
        if any(f < 1 for f in filters):
            raise ValueError("every filter count must be >= 1")
        return filters


class ALParams(_Section):
    strategies: list[str] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    initial_size: int = Field(100, ge=1)
    query_size: int = Field(100, ge=1)
    rounds: int = Field(10, ge=1)
    # 0 scores the whole unlabelled pool each round; N scores N random candidates.
    pool_subsample: int = Field(0, ge=0)
    log_models: Literal["every", "last", "never"] = "every"
    # Per strategy, its own options (see pipeline/strategies.py); missing keys take their defaults.
    strategy_options: dict[str, dict] = {}

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in strategy_registry.names():
                raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(strategy_registry.names())}")
        if len({strategy_registry.canonical(n) for n in names}) != len(names):
            raise ValueError("lists a strategy twice (uncertainty is another name for least_confidence)")
        return names

    @field_validator("strategy_options", mode="before")
    @classmethod
    def _valid_options(cls, options: dict) -> dict:
        if not isinstance(options, dict):
            raise ValueError("expected a mapping from strategy name to its options")
        for name, values in options.items():
            if name not in strategy_registry.names():
                raise ValueError(f"{name}: unknown strategy; allowed: {', '.join(strategy_registry.names())}")
            try:
                strategy_registry.get(name).options.model_validate(values or {})
            except ValidationError as error:
                raise ValueError(f"{name}.{_describe(error.errors()[0])}") from None
        return {name: dict(values or {}) for name, values in options.items()}

    @field_validator("strategy_options")
    @classmethod
    def _every_strategy_has_options(cls, options: dict, info: ValidationInfo) -> dict:
        # DVC tracks al.strategy_options.<name> per cell and refuses to run a cell whose key is missing.
        for name in info.data.get("strategies", []):
            if name not in options:
                raise ValueError(f"no entry for {name}; add `{name}: {{}}` (DVC tracks each strategy's options)")
        return options

    def options(self, strategy: str):
        """The strategy's validated options, defaults filled in."""
        return strategy_registry.get(strategy).options.model_validate(self.strategy_options.get(strategy, {}))

    @field_validator("seeds")
    @classmethod
    def _non_negative_unique(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct integers >= 0")
        return seeds

    @model_validator(mode="after")
    def _subsample_covers_a_query(self) -> "ALParams":
        if self.pool_subsample and self.pool_subsample < self.query_size:
            raise ValueError(f"pool_subsample ({self.pool_subsample}) must be 0 or >= query_size ({self.query_size})")
        return self

    @property
    def budget(self) -> int:
        """Labels used by the end of the last round."""
        return self.initial_size + self.rounds * self.query_size


class LabelProject(_Section):
    """One labelling project: images a person labels, batch by batch, in the order a strategy picks."""
    unlabelled: str = Field(min_length=1)        # folder of images to label (searched at any depth)
    classes: list[str] = Field(min_length=2)
    strategy: str = "margin"
    batch_size: int = Field(20, ge=1)
    image_size: tuple[int, int]
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    labelled: str | None = None                  # optional <class>/<image> folder to start from
    test: str | None = None                      # optional labelled <class>/<image> folder to measure on
    seed: int = Field(0, ge=0)
    # Where Label Studio finds the images; "" = its local-files URL for the `unlabelled` folder.
    image_url: str = ""

    _size = field_validator("image_size", mode="before")(_image_size)

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: list[str]) -> list[str]:
        if len(set(classes)) != len(classes) or not all(c.strip() for c in classes):
            raise ValueError("must be distinct, non-empty class names")
        return classes

    _strategy = field_validator("strategy")(_known_strategy)


class LabelParams(_Section):
    # By project name; `python -m stages.label next --project <name>` (or the label@<name> stage).
    projects: dict[str, LabelProject] = {}


class PlotParams(_Section):
    # "Labels to reach" metric: labels needed to reach this share of the best final accuracy.
    target_fraction: float = Field(0.95, gt=0, le=1)


class StudyParams(_Section):
    """How the study reaches its verdicts (pipeline/verdicts.py; read by the plot, verdicts and report stages)."""
    alpha: float = Field(0.05, gt=0, lt=1, description=(
        "significance level of every test; the headline verdicts are Holm-corrected over the study's "
        "comparisons at this level, the per-round detail is not corrected"))
    baseline: str = Field("random", description=(
        "the strategy the others are compared with first (strategy minus baseline); usually random"))
    metrics: list[Literal["accuracy", "balanced_accuracy", "f1_macro"]] = Field(
        ["accuracy", "f1_macro"], min_length=1, description=(
            "the learning curves compared: each gets curve-level verdicts (in the Holm family), "
            "per-round tests and penalty matrices"))
    power: float = Field(0.8, gt=0, lt=1, description=(
        "for a comparison that is not significant: the power at which the report estimates the seeds "
        "that would decide it"))
    max_seeds: int = Field(100, ge=2, description="that estimate's cap: beyond it the report says 'more than'")

    _baseline = field_validator("baseline")(_known_strategy)

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, metrics: list[str]) -> list[str]:
        if len(set(metrics)) != len(metrics):
            raise ValueError("lists a metric twice")
        return metrics


class Params(_Section):
    base: BaseParams = BaseParams()
    data: DataParams
    download: DownloadParams
    imbalance: ImbalanceParams = ImbalanceParams()
    model: ModelParams = ModelParams()
    al: ALParams
    plot: PlotParams = PlotParams()
    study: StudyParams = StudyParams()
    label: LabelParams = LabelParams()

    @model_validator(mode="after")
    def _mc_dropout_has_dropout(self) -> "Params":
        for name in self.al.strategies:
            if strategy_registry.Need.MC_PROBA in strategy_registry.get(name).needs and not self.model.dropout:
                raise ValueError(f"al.strategies: {name} needs MC dropout, but model.dropout is 0; "
                                 f"set model.dropout (e.g. 0.25) or take {name} out of al.strategies")
        return self

    def run_settings(self, strategies: list[str] | None = None) -> dict:
        """The settings that shape the numbers of runs of these strategies (default: the grid's):
        not which cells run, nor what is logged, nor other strategies' options."""
        names = self.al.strategies if strategies is None else strategies
        al = self.al.model_dump(exclude={"strategies", "seeds", "log_models", "strategy_options"})
        al["strategy_options"] = {n: self.al.options(n).model_dump() for n in names}
        return {"al": al, "model": self.model.model_dump()}


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key; remove it or check its spelling against README.md"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "missing" and "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}" if where else message


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        more = len(error.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise PipelineError(f"{source}: {_describe(first)}{suffix}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run from the project root, where params.yaml lives") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PipelineError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping of sections (base, data, download, ...)")
    return parse_params(raw, str(path))
