"""DVC stage `preprocess@<dataset>`: raw upstream files -> scaled, one-hot .npy splits in data/prepared/<dataset>/."""

from __future__ import annotations

import argparse
import logging

from alstudy.data import datasets
from alstudy.data.preprocess import prepare, write_splits
from alstudy.params import load_params
from alstudy.paths import prepared_dir, raw_dir
from alstudy.runner import run_stage

log = logging.getLogger("preprocess")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=datasets.DOWNLOADED)
    args = parser.parse_args(argv)
    params = load_params()

    out_dir = prepared_dir(args.dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.dataset not in params.data.downloads_needed():
        log.info("%s: not needed by data.datasets; nothing to preprocess", args.dataset)
        datasets.mark_not_needed(out_dir, args.dataset)
        return
    (out_dir / datasets.NOT_NEEDED_NOTE).unlink(missing_ok=True)

    spec = datasets.get(args.dataset)
    train, test = prepare(*spec.read(raw_dir(args.dataset)), n_classes=len(spec.class_names))
    write_splits(out_dir, train, test, {"dataset": args.dataset, "class_names": list(spec.class_names)})
    log.info(
        "%s: wrote %d train and %d test images of shape %s to %s",
        args.dataset,
        len(train.x),
        len(test.x),
        train.x.shape[1:],
        out_dir,
    )


if __name__ == "__main__":
    run_stage(main)
