"""DVC stage `imbalance`: derive fashion_mnist_imbalanced from prepared Fashion-MNIST with a seeded class profile."""
from __future__ import annotations

import argparse
import logging

from pipeline.cli import run_stage
from pipeline.datasets import CLASS_NAMES
from pipeline.fileio import save_json
from pipeline.imbalance import imbalance_split, retention_profile
from pipeline.params import IMBALANCED_DATASET, load_params
from pipeline.paths import METRICS_DIR, prepared_dir
from pipeline.preprocess import class_counts, load_splits, write_splits

log = logging.getLogger("imbalance")
SOURCE = "fashion_mnist"
METRICS_FILE = METRICS_DIR / "imbalance.json"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    params = load_params()
    out_dir = prepared_dir(IMBALANCED_DATASET)
    out_dir.mkdir(parents=True, exist_ok=True)
    if IMBALANCED_DATASET not in params.data.datasets:
        log.info("%s: not in data.datasets; nothing to derive", IMBALANCED_DATASET)
        save_json(METRICS_FILE, {"derived": False})
        return

    train, test = load_splits(prepared_dir(SOURCE))
    fractions = retention_profile(params.imbalance)
    train = imbalance_split(train, fractions, params.base.seed)
    if params.imbalance.imbalance_test:
        test = imbalance_split(test, fractions, params.base.seed + 1)
    write_splits(out_dir, train, test, {"dataset": IMBALANCED_DATASET, "derived_from": SOURCE,
                                         "retention": fractions.round(4).tolist(),
                                         "class_names": list(CLASS_NAMES[IMBALANCED_DATASET])})
    train_counts, test_counts = class_counts(train.labels), class_counts(test.labels)
    save_json(METRICS_FILE, {
        "derived": True,
        "train_total": len(train.x), "test_total": len(test.x),
        "train_class_counts": {str(c): n for c, n in enumerate(train_counts)},
        "test_class_counts": {str(c): n for c, n in enumerate(test_counts)},
        "imbalance_ratio_observed": round(max(train_counts) / max(1, min(train_counts)), 3),
    })
    log.info("%s: kept %d of the training images; per class %s", IMBALANCED_DATASET, len(train.x), train_counts)


if __name__ == "__main__":
    run_stage(main)
