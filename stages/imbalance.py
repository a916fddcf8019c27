"""DVC stage `imbalance@<name>`: an imbalanced variant (data.imbalanced.<name>) of any prepared dataset,
built-in or image folder, by keeping a seeded share of each class; its class counts as metrics."""

from __future__ import annotations

import argparse
import json
import logging

from alstudy.data.imbalance import imbalance_split, retention_profile
from alstudy.data.preprocess import class_counts, load_splits, write_splits
from alstudy.errors import PipelineError
from alstudy.fileio import save_json
from alstudy.params import load_params
from alstudy.paths import METRICS_DIR, prepared_dir
from alstudy.runner import run_stage

log = logging.getLogger("imbalance")


def metrics_file(name: str):
    return METRICS_DIR / "imbalance" / f"{name}.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, help="a key of data.imbalanced in params.yaml")
    args = parser.parse_args(argv)
    params = load_params()
    name = args.dataset
    variant = params.data.imbalanced.get(name)
    if variant is None:
        raise PipelineError(f"no imbalanced variant {name!r} under data.imbalanced in params.yaml; declare it there")
    out_dir = prepared_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    if name not in params.data.datasets:
        log.info("%s: not in data.datasets; nothing to derive", name)
        save_json(metrics_file(name), {"derived": False})
        return

    source_dir = prepared_dir(variant.source)
    if not (source_dir / "meta.json").is_file():
        raise PipelineError(f"{source_dir}: {variant.source} is not prepared; run `dvc repro imbalance@{name}`")
    class_names = json.loads((source_dir / "meta.json").read_text())["class_names"]
    if variant.fractions is not None and len(variant.fractions) != len(class_names):
        raise PipelineError(
            f"data.imbalanced.{name}.fractions: {len(variant.fractions)} numbers for the {len(class_names)} "
            f"classes of {variant.source} ({', '.join(class_names)}); give one per class"
        )
    train, test = load_splits(source_dir)
    fractions = retention_profile(variant.ratio, len(class_names), variant.fractions)
    train = imbalance_split(train, fractions, params.base.seed)
    if variant.imbalance_test:
        test = imbalance_split(test, fractions, params.base.seed + 1)
    write_splits(
        out_dir,
        train,
        test,
        {
            "dataset": name,
            "derived_from": variant.source,
            "retention": fractions.round(4).tolist(),
            "class_names": list(class_names),
        },
    )
    train_counts = class_counts(train.labels, len(class_names))
    test_counts = class_counts(test.labels, len(class_names))
    save_json(
        metrics_file(name),
        {
            "derived": True,
            "source": variant.source,
            "train_total": len(train.x),
            "test_total": len(test.x),
            "train_class_counts": dict(zip(class_names, train_counts)),
            "test_class_counts": dict(zip(class_names, test_counts)),
            "imbalance_ratio_observed": round(max(train_counts) / max(1, min(train_counts)), 3),
        },
    )
    log.info("%s: kept %d of %s's training images; per class %s", name, len(train.x), variant.source, train_counts)


if __name__ == "__main__":
    run_stage(main)
