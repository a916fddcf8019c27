"""Where things live. DVC runs every stage from the project root, so data paths are relative."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
RESULTS_DIR = Path("results")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
REPORT_FILE = Path("report") / "study.md"
# The report's own figures (what each recipe and each strategy buys), beside it: linked as figures/<file>.
RECIPE_FIGURES = REPORT_FILE.parent / "figures"
# Paired statistics per dataset: nested JSON, so beside the metrics rather than among `dvc plots` data.
STATISTICS_DIR = METRICS_DIR / "statistics"
# The study's curve-level verdicts per dataset (Holm-corrected over all datasets): the headline metrics.
VERDICTS_DIR = METRICS_DIR / "verdicts"
CHECKPOINTS_DIR = Path("checkpoints")


def raw_dir(dataset: str) -> Path:
    return RAW_DIR / dataset


def prepared_dir(dataset: str) -> Path:
    return PREPARED_DIR / dataset


# The seed's recipe (params.yaml's `model` section as it is): its cells keep the paths they had before
# recipes were an axis; another recipe's cells sit under recipes/<name>/ in their dataset's folder.
DEFAULT_RECIPE = "default"


# A study unit is a dataset under one recipe: its figures, statistics, summary and verdicts are written
# under its name, the dataset's alone for the default recipe (today's files), `<dataset>~<recipe>` otherwise.
UNIT_SEPARATOR = "~"  # in neither a dataset's name nor a recipe's


def study_unit(dataset: str, recipe: str = DEFAULT_RECIPE) -> str:
    return dataset if recipe == DEFAULT_RECIPE else f"{dataset}{UNIT_SEPARATOR}{recipe}"


def unit_parts(unit: str) -> tuple[str, str]:
    """(dataset, recipe) of a study unit's name."""
    dataset, _, recipe = unit.partition(UNIT_SEPARATOR)
    return dataset, recipe or DEFAULT_RECIPE


def _recipe_folder(dataset: str, recipe: str) -> Path:
    return Path(dataset) if recipe == DEFAULT_RECIPE else Path(dataset) / "recipes" / recipe


def run_dir(dataset: str, strategy: str, seed: int, recipe: str = DEFAULT_RECIPE) -> Path:
    return RESULTS_DIR / _recipe_folder(dataset, recipe) / strategy / f"s{seed}"


def checkpoint_dir(dataset: str, strategy: str, seed: int, recipe: str = DEFAULT_RECIPE) -> Path:
    return CHECKPOINTS_DIR / _recipe_folder(dataset, recipe) / strategy / f"s{seed}"


def cell_lock(dataset: str, strategy: str, seed: int, recipe: str = DEFAULT_RECIPE) -> Path:
    """Held by the process running the cell; beside its checkpoint folder, which a fresh start removes."""
    return checkpoint_dir(dataset, strategy, seed, recipe).with_name(f"s{seed}.lock")


def project_root(start: Path | None = None) -> Path:
    """The user's project root, also from inside a `dvc exp run --temp/--queue` copy.

    Those copies live under <root>/.dvc/tmp/exps/...; results that must be shared
    across experiments (the MLflow store) belong to the outer root.
    """
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return here
