"""params.yaml, loaded once into a typed, validated object.

Every stage calls ``load_params()`` first: an unknown key, a wrong type or an
out-of-range value stops it with one line naming the key and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from alstudy import strategies as strategy_registry
from alstudy.data import datasets as dataset_registry
from alstudy.errors import PipelineError
from alstudy.hardware import best_precision
from alstudy.paths import DEFAULT_RECIPE
from alstudy.recipes import augmentations as augmentation_registry
from alstudy.recipes import networks as network_registry


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BaseParams(_Section):
    """Settings every stage shares."""

    seed: int = Field(0, ge=0, description="seeds the imbalanced variants' subsets and image folders' train/test split")
    mlflow_tracking_uri: str = Field(
        "",
        description=(
            "where runs are logged; empty: `sqlite:///<project root>/mlflow.db`; `MLFLOW_TRACKING_URI` overrides both"
        ),
    )
    experiment: str = Field("deep-active-learning", min_length=1, description="the MLflow experiment's name")
    tracking_wait_seconds: int = Field(
        300,
        ge=0,
        description=(
            "how long a run waits, retrying, for a tracking server or database that went away (a restart); "
            "past that it stops in one line and the next `dvc repro` resumes from its last round"
        ),
    )


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

    path: str = Field(
        min_length=1, description="the folder: one sub-folder per class, or train/ and test/ with class folders inside"
    )
    image_size: tuple[int, int] = Field(
        description=(
            "[height, width] after resizing; at least 8 each, so that the CNN's three 2x2 poolings leave a pixel"
        )
    )
    color_mode: Literal["rgb", "grayscale"] = Field("rgb", description="`rgb` or `grayscale`")
    test_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description=(
            "share of each class held out for testing (seeded, stratified) when the folder has no train/ and test/"
        ),
    )

    _size = field_validator("image_size", mode="before")(_image_size)


class ImbalancedParams(_Section):
    """An imbalanced variant of a dataset: a seeded share of each class of its training split kept."""

    source: str = Field(
        min_length=1,
        description=(
            "the dataset it is made from: a built-in one (`fashion_mnist`, `cifar10`) or a name under `data.folders`"
        ),
    )
    ratio: float = Field(
        10.0,
        ge=1.0,
        description=(
            "long tail: class c of n keeps `ratio ** (-c / (n - 1))` of its training images (the first class all, "
            "the last 1/ratio)"
        ),
    )
    fractions: list[float] | None = Field(
        None, description="or explicit per-class shares in (0, 1], one per class of the source; overrides `ratio`"
    )
    imbalance_test: bool = Field(False, description="also imbalance the test split (default: keep it balanced)")

    @field_validator("fractions")
    @classmethod
    def _shares(cls, fractions: list[float] | None) -> list[float] | None:
        if fractions is not None and (len(fractions) < 2 or not all(0 < f <= 1 for f in fractions)):
            raise ValueError("must be numbers in (0, 1], one per class of the source")
        return fractions


class DataParams(_Section):
    """What the grid runs on."""

    # Validated before `datasets`, which may name them.
    folders: dict[str, FolderParams] = Field(
        {},
        description=(
            "your own image folders, one dataset each by name (keys below); list a name in `data.datasets` "
            "to put it in the grid"
        ),
    )
    imbalanced: dict[str, ImbalancedParams] = Field(
        default_factory=lambda: {"fashion_mnist_imbalanced": ImbalancedParams(source="fashion_mnist")},
        description=(
            "imbalanced variants, one dataset each by name (keys below), made by the `imbalance@<name>` stage; "
            "list a name in `data.datasets` to put it in the grid"
        ),
    )
    datasets: list[str] = Field(
        min_length=1,
        description=(
            "the grid's datasets: `cifar10`, `fashion_mnist`, a name under `data.folders` or under `data.imbalanced`"
        ),
    )

    @field_validator("folders")
    @classmethod
    def _folder_names(cls, folders: dict[str, FolderParams]) -> dict[str, FolderParams]:
        for name in folders:
            if name in dataset_registry.BUILT_IN:
                raise ValueError(
                    f"{name}: clashes with the built-in dataset of that name; give the folder another name"
                )
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"{name!r}: use letters, digits, '_', '-' or '.' (it names stages and folders)")
        return folders

    @field_validator("imbalanced")
    @classmethod
    def _variants(cls, variants: dict[str, ImbalancedParams], info: ValidationInfo) -> dict[str, ImbalancedParams]:
        folders = info.data.get("folders", {})
        sources = [*dataset_registry.BUILT_IN, *folders]
        for name, variant in variants.items():
            if name in sources:
                raise ValueError(f"{name}: clashes with a dataset of that name; give the variant another name")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"{name!r}: use letters, digits, '_', '-' or '.' (it names stages and folders)")
            if variant.source not in sources:
                raise ValueError(
                    f"{name}.source: unknown dataset {variant.source!r}; allowed: {', '.join(sources)} "
                    "(a built-in dataset or a name under data.folders)"
                )
            spec = dataset_registry.BUILT_IN.get(variant.source)
            if spec is not None and variant.fractions is not None and len(variant.fractions) != len(spec.class_names):
                raise ValueError(
                    f"{name}.fractions: {len(variant.fractions)} numbers for the {len(spec.class_names)} classes "
                    f"of {variant.source}; give one per class"
                )
        return variants

    @field_validator("datasets")
    @classmethod
    def _known_unique(cls, names: list[str], info: ValidationInfo) -> list[str]:
        known = [*dataset_registry.BUILT_IN, *info.data.get("folders", {}), *info.data.get("imbalanced", {})]
        for name in names:
            if name not in known:
                raise ValueError(
                    f"unknown dataset {name!r}; allowed: {', '.join(known)} "
                    "(or declare an image folder under data.folders, or a variant under data.imbalanced)"
                )
        if len(set(names)) != len(names):
            raise ValueError("lists a dataset twice")
        return names

    def made_from(self, name: str) -> str:
        """The dataset whose files `name` comes from: the source of an imbalanced variant, else itself."""
        return self.imbalanced[name].source if name in self.imbalanced else name

    def downloads_needed(self) -> list[str]:
        """The downloaded datasets the grid's datasets are, or are made from."""
        return dataset_registry.downloads_needed([self.made_from(name) for name in self.datasets])

    def check(self, name: str) -> str:
        """`name`, if the grid has it; a stage asked for another dataset stops in one line."""
        if name not in self.datasets:
            raise PipelineError(
                f"dataset {name!r} is not in params.yaml's data.datasets ({', '.join(self.datasets)}); add it there"
            )
        return name


class DownloadParams(_Section):
    """Where the built-in datasets come from, and how they are verified."""

    sources: dict[str, list[str]] = Field(
        description=("per downloaded dataset, tried in order: local folders, `file://` or `http(s)://` base URLs")
    )
    checksums: dict[str, str] = Field(
        {},
        description=(
            "per-file overrides of the published checksums, `sha256:<hex>` or `md5:<hex>` (a private mirror, "
            "a test copy)"
        ),
    )
    timeout_s: float = Field(60.0, gt=0, description="network timeout per request, in seconds")

    @field_validator("sources")
    @classmethod
    def _downloaded_datasets(cls, sources: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in sources:
            if name not in dataset_registry.DOWNLOADED:
                raise ValueError(
                    f"{name}: not a downloaded dataset; sources are for {', '.join(dataset_registry.DOWNLOADED)}"
                )
        return sources

    @field_validator("checksums")
    @classmethod
    def _checksum_form(cls, checksums: dict[str, str]) -> dict[str, str]:
        for name, value in checksums.items():
            algo, _, digest = value.partition(":")
            if algo not in ("sha256", "md5") or not digest:
                raise ValueError(f"{name}: expected 'sha256:<hex>' or 'md5:<hex>', got {value!r}")
        return checksums


class ModelParams(_Section):
    """The CNN and its training, the same for every strategy."""

    filters: list[int] = Field(
        [32, 64, 64],
        min_length=3,
        max_length=3,
        description=("the three Conv2D layers' filters, each layer followed by 2x2 max-pooling"),
    )
    network: str = Field(
        network_registry.DEFAULT,
        description=(
            "the trunk under the head (flatten, dropout, `dense_units`, dropout, softmax): `cnn` (the seed's: "
            "`filters`, `kernel_size`), `resnet` (a small CIFAR-style ResNet) or `pretrained` (frozen ImageNet "
            "features of a Keras application); docs/user-guide/recipes.md"
        ),
    )
    network_options: dict = Field({}, description="the network's own options (`{}`: its defaults); see `network`")
    augmentation: dict[str, dict] = Field(
        {},
        description=(
            "augmentations of each epoch's training images, applied in the order listed, each with its options: "
            "`shift` ({pixels, fill}), `flip` ({}), `cutout` ({size}); `{}` trains on the images as they are"
        ),
    )
    kernel_size: int = Field(3, ge=1, description='Conv2D kernel size ("same" padding)')
    dense_units: int = Field(128, ge=1, description="the hidden Dense layer before the softmax output")
    epochs: int = Field(10, ge=1, description="training epochs per round")
    batch_size: int = Field(32, ge=1, description="training batch size")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's learning rate")
    retrain_from_scratch: bool = Field(
        True, description=("a fresh model each round (the usual protocol); `false` keeps training last round's model")
    )
    validation_fraction: float = Field(
        0.0, ge=0, lt=1, description=("> 0 holds out this share of the labelled set for early stopping; 0 disables it")
    )
    early_stopping_patience: int = Field(
        3, ge=1, description=("epochs without a better validation loss before stopping (the best weights are kept)")
    )
    predict_batch_size: int = Field(
        2048,
        ge=1,
        description=(
            "inference batch for pool scoring and evaluation (no effect on results); lowered for large images "
            "so that one batch's activations stay under 512 MB"
        ),
    )
    dropout: float = Field(
        0.25,
        ge=0,
        lt=1,
        description=(
            "dropout before each Dense layer; 0 = no dropout layers (then `bald`, which needs MC-dropout passes, "
            "cannot run)"
        ),
    )
    threads: int = Field(
        1,
        ge=1,
        description=(
            "threads per run (on JAX: 1, or XLA's own pool for more); part of the numbers (the thread count splits "
            "float sums differently); "
            "`alstudy grid` runs cores // threads cells at once"
        ),
    )
    backend: Literal["tensorflow", "jax", "torch"] = Field(
        "tensorflow",
        description=(
            "Keras 3's backend: `tensorflow` (the default install), `jax` (`pip install -e '.[jax]'`) or `torch` "
            "(`pip install -e '.[torch]'`); the same "
            "CNN, its epoch and inference compiled per backend; part of the numbers (curves agree within seed "
            "noise, not bit for bit), recorded with each run"
        ),
    )
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto",
        description=(
            "`auto`: a GPU where the backend sees one, else the CPU; `gpu` stops in one line where there is none; "
            "the device used is recorded with each run (MLflow tag `device`) and in its checkpoint"
        ),
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        validate_default=True,
        description=(
            "`auto`, `float32` or `bfloat16`: bfloat16 arithmetic with float32 weights and a float32 softmax output "
            "and loss (Keras' `mixed_bfloat16`) in training, pool scoring, MC passes and evaluation; part of the "
            "numbers, like `threads`. bfloat16 needs a CPU with AVX512-BF16 or AMX-BF16 (`lscpu` lists "
            "`avx512_bf16` or `amx_bf16`) or a GPU from Ampere on; asked for on a CPU without them, a run stops at "
            "start in one line. `auto` takes bfloat16 where the run's device (a GPU where it computes on one, "
            "else the CPU) has those units and float32 elsewhere, and each run records the one it used "
            "(float32's results are within the seed noise of bfloat16's, docs/explanation/speed.md)"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_auto_precision(cls, data):
        # Resolved here, once, so that every run, fingerprint and MLflow record holds the precision used;
        # before the fields, as the device the run computes on decides it.
        if isinstance(data, dict) and data.get("precision", "auto") == "auto":
            backend, device = data.get("backend", "tensorflow"), data.get("device", "auto")
            data = {**data, "precision": best_precision(str(backend), str(device))}
        return data

    @field_validator("network")
    @classmethod
    def _known_network(cls, name: str) -> str:
        network_registry.get(name)  # "unknown network ...; allowed: ..." where it is not registered
        return name

    @field_validator("network_options")
    @classmethod
    def _network_options(cls, options: dict, info: ValidationInfo) -> dict:
        name = info.data.get("network")
        if name is not None:
            try:
                network_registry.get(name).options.model_validate(options)
            except ValidationError as error:
                raise ValueError(_describe(error.errors()[0])) from None
        return options

    @field_validator("augmentation", mode="before")
    @classmethod
    def _known_augmentations(cls, spec) -> dict:
        if not isinstance(spec, dict):
            raise ValueError("expected a mapping from augmentation name to its options, e.g. {shift: {}, flip: {}}")
        for name, options in spec.items():
            augmentation = augmentation_registry.get(name)  # "unknown augmentation ...; allowed: ..."
            try:
                augmentation.options.model_validate(options or {})
            except ValidationError as error:
                raise ValueError(f"{name}.{_describe(error.errors()[0])}") from None
        return {name: dict(options or {}) for name, options in spec.items()}

    def settings(self) -> dict:
        """The fields, less the network and augmentation where they are the seed's (the `cnn`, no augmentation):
        runs of the seed's recipe keep the checkpoint fingerprints, study keys and MLflow params they had
        before networks and augmentations were params."""
        seed_recipe = {"network": network_registry.DEFAULT, "network_options": {}, "augmentation": {}}
        return {k: v for k, v in self.model_dump().items() if k not in seed_recipe or v != seed_recipe[k]}

    def network_settings(self):
        """The network's validated options, defaults filled in."""
        return network_registry.get(self.network).options.model_validate(self.network_options)

    @field_validator("filters")
    @classmethod
    def _positive(cls, filters: list[int]) -> list[int]:
        if any(f < 1 for f in filters):
            raise ValueError("every filter count must be >= 1")
        return filters


# What a recipe may set: how the learner is trained, not where or how precisely it computes (a machine's
# settings, the same for every recipe of a study).
RECIPE_KEYS = (
    "network",
    "network_options",
    "augmentation",
    "filters",
    "kernel_size",
    "dense_units",
    "dropout",
    "epochs",
    "batch_size",
    "learning_rate",
    "retrain_from_scratch",
    "validation_fraction",
    "early_stopping_patience",
)


def _with_changes(model: ModelParams, changes: dict) -> ModelParams:
    """The model params with a recipe's changes, validated as a whole."""
    return ModelParams.model_validate({**model.model_dump(), **changes})


class ALParams(_Section):
    """The active-learning grid: strategies, seeds and the labelling budget."""

    strategies: list[str] = Field(
        min_length=1,
        description=("the grid's query strategies, by module name (`least_confidence`, not its alias `uncertainty`)"),
    )
    seeds: list[int] = Field(
        [0, 1, 2, 3, 4],
        min_length=1,
        description=("one run per seed; runs pair by seed in the statistics (at least 2 for any test)"),
    )
    initial_size: int = Field(200, ge=1, description="random labelled images before round 1")
    query_size: int = Field(200, ge=1, description="images labelled per round")
    rounds: int = Field(10, ge=1, description=("query rounds; the budget is `initial_size + rounds x query_size`"))
    pool_subsample: int = Field(
        10000, ge=0, description=("score this many random unlabelled images per round; 0 scores the whole pool")
    )
    log_models: Literal["every", "last", "never"] = Field(
        "every", description=("`every`, `last` or `never`: which rounds' models go to MLflow")
    )
    recipes: list[str] = Field(
        [],
        description=(
            "recipes (names under `recipes`) the grid also runs, each for every dataset, strategy and seed; "
            "`default` (the model section) always runs, the reference each recipe is measured against; "
            "a recipe's cells write results/<dataset>/recipes/<recipe>/<strategy>/s<seed>/"
        ),
    )
    strategy_options: dict[str, dict] = Field(
        {},
        description=(
            "each strategy's own options, by name (keys below; `{}` for none); every strategy in `strategies` "
            "needs an entry, and changing one reruns only that strategy's cells"
        ),
    )

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in strategy_registry.names():
                raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(strategy_registry.STRATEGIES)}")
            if strategy_registry.canonical(name) != name:  # each cell depends on its strategy's own module
                raise ValueError(
                    f"{name!r} is another name for {strategy_registry.canonical(name)}; "
                    f"list it as {strategy_registry.canonical(name)}"
                )
        if len(set(names)) != len(names):
            raise ValueError("lists a strategy twice")
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

    @property
    def all_recipes(self) -> list[str]:
        """Every recipe the grid runs: the default first, then `recipes` in their order."""
        return [DEFAULT_RECIPE, *self.recipes]

    def check_recipe(self, name: str) -> str:
        """`name`, if the grid runs it; a stage asked for another recipe stops in one line."""
        if name not in self.all_recipes:
            raise PipelineError(
                f"recipe {name!r} is not in params.yaml's al.recipes ({', '.join(self.recipes) or 'none'}); "
                "add it there"
            )
        return name

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

    unlabelled: str = Field(min_length=1, description="the folder of images to label (searched at any depth)")
    classes: list[str] = Field(min_length=2, description="the class names a person chooses from")
    strategy: str = Field("margin", description="the registered strategy that picks each batch")
    recipe: str = Field(
        DEFAULT_RECIPE,
        description=(
            "the recipe (a name under `recipes`) the suggestion model trains with, e.g. `pretrained`: "
            "frozen ImageNet features for photos"
        ),
    )
    batch_size: int = Field(20, ge=1, description="images per batch")
    image_size: tuple[int, int] = Field(description="[height, width] the images are resized to for the CNN")
    color_mode: Literal["rgb", "grayscale"] = Field("rgb", description="`rgb` or `grayscale`")
    labelled: str | None = Field(None, description="optional `<class>/<image>` folder of labels to start from")
    test: str | None = Field(None, description="optional labelled `<class>/<image>` folder to measure progress on")
    seed: int = Field(0, ge=0, description="seeds the first batch's draw and the model")
    min_steps: int = Field(
        500,
        ge=0,
        description=(
            "gradient steps the suggestion model trains for at least (more epochs when there are few labels: "
            "10 epochs of 50 labels are 20 steps, too few for suggestions worth reading); 0: model.epochs only"
        ),
    )
    image_url: str = Field(
        "", description=("where Label Studio finds the images; empty: its local-files URL for the `unlabelled` folder")
    )
    retrain_every: int = Field(
        10,
        ge=1,
        description=(
            "new labels between two rounds of the live Label Studio backend (`alstudy label serve`): it retrains "
            "and re-scores every image after this many annotations"
        ),
    )
    scores_sent: int = Field(
        2000,
        ge=0,
        description=(
            "tasks the live backend sends each round's scores to Label Studio for: the top by priority, which the "
            "Data Manager sorted by Prediction score lists first (Label Studio takes about 3 ms a prediction); 0: all"
        ),
    )

    _size = field_validator("image_size", mode="before")(_image_size)

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: list[str]) -> list[str]:
        if len(set(classes)) != len(classes) or not all(c.strip() for c in classes):
            raise ValueError("must be distinct, non-empty class names")
        return classes

    _strategy = field_validator("strategy")(_known_strategy)


class LabelParams(_Section):
    """Labelling your own images, batch by batch."""

    projects: dict[str, LabelProject] = Field(
        {},
        description=(
            "labelling projects by name (keys below): `alstudy label next --project <name>`, or the "
            "`label@<name>` stage"
        ),
    )


class PlotParams(_Section):
    """Figures and summary metrics per dataset."""

    target_fraction: float = Field(
        0.95,
        gt=0,
        le=1,
        description=('"labels to target": the labels needed to reach this share of the best final accuracy'),
    )


class StoppingParams(_Section):
    """When labelling could stop: stabilising predictions (Bloodgood and Vijay-Shanker 2009;
    alstudy/learning/stopping.py). The study reports where each run would have stopped; a labelling
    project reports it with each batch."""

    stop_set: int = Field(
        1000,
        ge=0,
        description=(
            "unlabelled images (a fixed seeded sample) each round's model predicts, to compare it with the "
            "previous round's; 0 turns the criterion off"
        ),
    )
    threshold: float = Field(
        0.99, gt=0, le=1, description="Cohen's kappa between successive models' predictions that counts as stable"
    )
    window: int = Field(3, ge=1, description="rounds in a row with stable predictions before the criterion says stop")


class SequentialParams(_Section):
    """A study that asks for verdicts rather than a number of seeds: `alstudy grid` adds seeds in steps."""

    seeds_per_look: int = Field(
        5,
        ge=2,
        description=(
            "seeds added at each step; after each, the verdicts are tested again (group-sequential, O'Brien-Fleming "
            "alpha spending, so looking again does not inflate the error rate) and the grid stops once every "
            "comparison is decided"
        ),
    )
    max_seeds: int = Field(
        10,
        ge=2,
        description=(
            "the most seeds the study will run; alpha is spent over this plan, so raising it later makes the "
            "verdicts already reached slightly harder to reach"
        ),
    )
    max_hours: float = Field(
        4.0,
        gt=0,
        description=(
            "`alstudy grid` starts no step that the time of its last step says would end past this many hours "
            "from its start; rerun it to go on"
        ),
    )

    @model_validator(mode="after")
    def _step_fits(self) -> "SequentialParams":
        if self.seeds_per_look > self.max_seeds:
            raise ValueError(
                f"seeds_per_look ({self.seeds_per_look}) is more than max_seeds ({self.max_seeds}); lower it"
            )
        return self


class StudyParams(_Section):
    """How the study reaches its verdicts (alstudy/study/verdicts.py; read by the plot, verdicts and report stages)."""

    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description=(
            "significance level of every test; the headline verdicts are Holm-corrected over the study's "
            "comparisons at this level, the per-round detail is not corrected"
        ),
    )
    baseline: str = Field(
        "random",
        description=("the strategy the others are compared with first (strategy minus baseline); usually random"),
    )
    metrics: list[Literal["accuracy", "balanced_accuracy", "f1_macro"]] = Field(
        ["accuracy", "f1_macro"],
        min_length=1,
        description=(
            "the learning curves compared: each gets curve-level verdicts (in the Holm family), "
            "per-round tests and penalty matrices"
        ),
    )
    power: float = Field(
        0.8,
        gt=0,
        lt=1,
        description=(
            "for an undecided comparison: the power at which the report estimates the seeds that would decide it"
        ),
    )
    max_seeds: int = Field(100, ge=2, description="that estimate's cap: beyond it the report says 'more than'")
    equivalence_margin: float = Field(
        0.5,
        gt=0,
        description=(
            "AUBC points (0-100 scale): two strategies whose difference is shown to lie within +- this margin "
            "(two one-sided tests, in the Holm family) are called equivalent; a smaller difference is not worth "
            "a choice between them"
        ),
    )

    sequential: SequentialParams | None = Field(
        SequentialParams(),
        description=(
            "null: the verdicts of the seeds in al.seeds; a block (seeds_per_look, max_seeds, max_hours): "
            "`alstudy grid` adds seeds to al.seeds in params.yaml, a step at a time, until every comparison is "
            "decided or a cap is reached"
        ),
    )

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
    model: ModelParams = ModelParams()
    recipes: dict[str, dict] = Field(
        {DEFAULT_RECIPE: {}},
        description=(
            "named training recipes, each a set of `model` keys it changes (" + ", ".join(RECIPE_KEYS) + "); "
            "`default: {}` is the `model` section as it is; docs/user-guide/recipes.md"
        ),
    )
    al: ALParams
    stopping: StoppingParams = StoppingParams()
    plot: PlotParams = PlotParams()
    study: StudyParams = StudyParams()
    label: LabelParams = LabelParams()

    @model_validator(mode="after")
    def _grid_recipes_are_named(self) -> "Params":
        listed = self.al.recipes
        if len(set(listed)) != len(listed):
            raise ValueError("al.recipes: lists a recipe twice")
        if DEFAULT_RECIPE in listed:
            raise ValueError(f"al.recipes: `{DEFAULT_RECIPE}` always runs; list only the other recipes")
        unknown = [name for name in listed if name not in self.recipes]
        if unknown:
            raise ValueError(
                f"al.recipes: {', '.join(unknown)} not under recipes ({', '.join(self.recipes)}); "
                "add it there, or take it out of al.recipes"
            )
        return self

    @model_validator(mode="after")
    def _project_recipes_are_named(self) -> "Params":
        for name, project in self.label.projects.items():
            if project.recipe not in self.recipes and project.recipe != DEFAULT_RECIPE:
                raise ValueError(
                    f"label.projects.{name}.recipe: {project.recipe} is not under recipes "
                    f"({', '.join(self.recipes)}); add it there or name one of those"
                )
        return self

    def for_recipe(self, name: str) -> "Params":
        """These params with the named recipe's model: what a cell of that recipe runs with."""
        return self if name == DEFAULT_RECIPE else self.model_copy(update={"model": self.recipe(name)})

    def study_units(self) -> list[tuple[str, str]]:
        """(dataset, recipe) of every unit the study stages read, each dataset's recipes together, the
        default first (alstudy.paths.study_unit names them)."""
        return [(dataset, recipe) for dataset in self.data.datasets for recipe in self.al.all_recipes]

    @model_validator(mode="after")
    def _seeds_within_the_plan(self) -> "Params":
        plan = self.study.sequential
        if plan is not None and len(self.al.seeds) > plan.max_seeds:
            raise ValueError(
                f"al.seeds: {len(self.al.seeds)} seeds, more than study.sequential.max_seeds ({plan.max_seeds}); "
                "raise the cap or drop seeds"
            )
        return self

    @model_validator(mode="after")
    def _mc_dropout_has_dropout(self) -> "Params":
        for name in self.al.strategies:
            if strategy_registry.Need.MC_PROBA in strategy_registry.get(name).needs and not self.model.dropout:
                raise ValueError(
                    f"al.strategies: {name} needs MC dropout, but model.dropout is 0; "
                    f"set model.dropout (e.g. 0.25) or take {name} out of al.strategies"
                )
        return self

    @field_validator("recipes", mode="before")
    @classmethod
    def _valid_recipes(cls, recipes, info: ValidationInfo) -> dict:
        if not isinstance(recipes, dict):
            raise ValueError("expected a mapping from recipe name to the model keys it changes")
        model = info.data.get("model")
        for name, changes in recipes.items():
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"{name!r}: a recipe's name is lowercase letters, digits and _ (it names files)")
            changes = changes or {}
            if not isinstance(changes, dict):
                raise ValueError(f"{name}: expected the model keys the recipe changes, e.g. {{epochs: 20}}")
            for key in changes:
                if key not in RECIPE_KEYS:
                    raise ValueError(
                        f"{name}.{key}: not a recipe key (a recipe sets how the learner trains: "
                        f"{', '.join(RECIPE_KEYS)}); set it under model for every recipe"
                    )
            if model is not None:
                try:
                    _with_changes(model, changes)
                except ValidationError as error:
                    raise ValueError(f"{name}.{_describe(error.errors()[0])}") from None
        if DEFAULT_RECIPE in recipes and recipes[DEFAULT_RECIPE]:
            raise ValueError(f"{DEFAULT_RECIPE}: is the model section as it is; write `{DEFAULT_RECIPE}: {{}}`")
        return {name: dict(changes or {}) for name, changes in recipes.items()}

    def recipe(self, name: str) -> ModelParams:
        """The model params of the named recipe: the `model` section with the recipe's changes."""
        if name not in self.recipes and name != DEFAULT_RECIPE:
            raise PipelineError(f"recipe {name!r} is not in params.yaml's recipes ({', '.join(self.recipes)})")
        return _with_changes(self.model, self.recipes.get(name, {}))

    def run_settings(self, strategies: list[str] | None = None) -> dict:
        """The settings that shape the numbers of runs of these strategies (default: the grid's):
        not which cells run, nor what is logged, nor other strategies' options."""
        names = self.al.strategies if strategies is None else strategies
        al = self.al.model_dump(exclude={"strategies", "seeds", "log_models", "strategy_options", "recipes"})
        al["strategy_options"] = {n: self.al.options(n).model_dump() for n in names}
        return {"al": al, "model": self.model.settings(), "stop_set": self.stopping.stop_set}


# Sections that moved: where to now, for a params.yaml written for an earlier version.
MOVED = {
    "imbalance": (
        "moved to data.imbalanced.<name> (source, ratio, fractions, imbalance_test): for the old one, "
        "data.imbalanced.fashion_mnist_imbalanced with source: fashion_mnist; see docs/reference/params.md"
    )
}


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden" and where in MOVED:
        return f"{where}: {MOVED[where]}"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key; remove it or check its spelling against docs/reference/params.md"
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
