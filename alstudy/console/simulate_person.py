"""Stand in for the person who labels: fill a batch manifest with the true labels of images that
`alstudy/console/export_images.py --unlabelled` wrote (file <index>.png is image <index> of the train split).

    python -m alstudy.console.simulate_person labelling/fashion/batch-001/manifest.csv --out filled.csv

For trying the labelling loop end to end without a person; a real project imports what a
person filled in instead.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from alstudy.console.export_images import folder_name
from alstudy.data import datasets
from alstudy.paths import raw_dir
from alstudy.runner import run_stage

log = logging.getLogger("person")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--dataset", default="fashion_mnist", choices=[n for n, s in datasets.BUILT_IN.items() if s.read]
    )
    args = parser.parse_args(argv)
    spec = datasets.get(args.dataset)
    _, y_train, _, _ = spec.read(raw_dir(args.dataset))
    with open(args.manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        row["label"] = folder_name(spec.class_names[int(y_train[int(Path(row["path"]).stem)])])
    with open(args.out, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info("labelled %d images of %s into %s", len(rows), args.manifest, args.out)


if __name__ == "__main__":
    run_stage(main)
