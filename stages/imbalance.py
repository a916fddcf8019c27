"""DVC stage `imbalance`: derive fashion_mnist_imbalanced from prepared Fashion-MNIST with a seeded class profile."""

from __future__ import annotations

import argparse
import logging

from alstudy.data import datasets
from alstudy.data.imbalance import imbalance_split, retention_profile
from alstudy.data.preprocess import class_counts, load_splits, write_splits
from alstudy.fileio import save_json
from alstudy.params import load_params
from alstudy.paths import METRICS_DIR, prepared_dir
from alstudy.runner import run_stage

log = logging.getLogger("imbalance")
DERIVED = datasets.FASHION_MNIST_IMBALANCED
METRICS_FILE = METRICS_DIR / "imbalance.json"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    params = load_params()
    out_dir = prepared_dir(DERIVED.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    if DERIVED.name not in params.data.datasets:
        log.info("%s: not in data.datasets; nothing to derive", DERIVED.name)
        save_json(METRICS_FILE, {"derived": False})
        return

    train, test = load_splits(prepared_dir(DERIVED.derived_from))
    n_classes = len(DERIVED.class_names)
    fractions = retention_profile(params.imbalance.ratio, n_classes, params.imbalance.fractions)
    train = imbalance_split(train, fractions, params.base.seed)
    if params.imbalance.imbalance_test:
        test = imbalance_split(test, fractions, params.base.seed + 1)
    write_splits(
        out_dir,
        train,
        test,
        {
            "dataset": DERIVED.name,
            "derived_from": DERIVED.derived_from,
            "retention": fractions.round(4).tolist(),
            "class_names": list(DERIVED.class_names),
        },
    )
    train_counts, test_counts = class_counts(train.labels, n_classes), class_counts(test.labels, n_classes)
    save_json(
        METRICS_FILE,
        {
            "derived": True,
            "train_total": len(train.x),
            "test_total": len(test.x),
            "train_class_counts": {str(c): n for c, n in enumerate(train_counts)},
            "test_class_counts": {str(c): n for c, n in enumerate(test_counts)},
            "imbalance_ratio_observed": round(max(train_counts) / max(1, min(train_counts)), 3),
        },
    )
    log.info("%s: kept %d of the training images; per class %s", DERIVED.name, len(train.x), train_counts)


if __name__ == "__main__":
    run_stage(main)
