"""DVC stage `preprocess@<dataset>`: raw upstream files -> scaled, one-hot .npy splits in data/prepared/<dataset>/."""
from __future__ import annotations

import argparse
import logging

from pipeline import cifar, idx
from pipeline.cli import run_stage
from pipeline.datasets import SPECS
from pipeline.params import load_params, required_base_datasets
from pipeline.paths import prepared_dir, raw_dir
from pipeline.preprocess import prepare, write_splits

log = logging.getLogger("preprocess")

READERS = {
    "fashion_mnist": idx.read_fashion_mnist,
    "cifar10": lambda folder: cifar.read_cifar10(folder / cifar.BATCH_DIR),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=sorted(SPECS))
    args = parser.parse_args(argv)
    params = load_params()

    out_dir = prepared_dir(args.dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.dataset not in required_base_datasets(params.data.datasets):
        log.info("%s: not needed by data.datasets; nothing to preprocess", args.dataset)
        return

    train, test = prepare(*READERS[args.dataset](raw_dir(args.dataset)))
    write_splits(out_dir, train, test, {"dataset": args.dataset, "class_names": list(SPECS[args.dataset].class_names)})
    log.info("%s: wrote %d train and %d test images of shape %s to %s",
             args.dataset, len(train.x), len(test.x), train.x.shape[1:], out_dir)


if __name__ == "__main__":
    run_stage(main)
