"""Write a built-in dataset's images out as PNG files in class folders: a real image folder to try
the image-folder workflow (data.folders) and the labelling loop on.

    python -m alstudy.console.export_images --dataset fashion_mnist --out data/raw/fashion_png --train 3000 --test 1000

Reads the verified raw files (run `dvc repro download@fashion_mnist` first) and writes
<out>/train/<class>/<index>.png and <out>/test/<class>/<index>.png for N images of each split,
from the first (or after `--skip` training images). PNG is lossless: the pixels are the dataset's
own; <index> is the image's index in its split, so two exports share a file name only where they
share an image. `--unlabelled` writes the train images into one flat folder instead, without their
classes, as a labelling project starts. Two exports are disjoint when the second skips what the
first wrote: the command says which `--skip` that is.

    alstudy export-images --out data/raw/start --train 100 --test 0                # a labelled start set
    alstudy export-images --out data/raw/unlabelled --unlabelled --train 3000 --skip 100   # the rest
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from alstudy.data import datasets
from alstudy.errors import PipelineError
from alstudy.paths import raw_dir
from alstudy.runner import run_stage

log = logging.getLogger("export")


def folder_name(class_name: str) -> str:
    """A class name as a folder name ("T-shirt/top" -> "T-shirt_top")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name).strip("_") or "class"


def write_pngs(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    out: Path,
    flat: bool = False,
    first: int = 0,
) -> int:
    """Images first, first + 1, ... of a split as PNG files named by that index."""
    for index, (pixels, label) in enumerate(zip(images, labels), start=first):
        folder = out if flat else out / folder_name(class_names[int(label)])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels if pixels.ndim == 2 or pixels.shape[-1] == 3 else pixels[..., 0]).save(
            folder / f"{index:06d}.png"
        )
    return len(images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset", default="fashion_mnist", choices=[n for n, s in datasets.BUILT_IN.items() if s.read]
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=3000, help="first N training images (default 3000)")
    parser.add_argument("--test", type=int, default=1000, help="first N test images (default 1000; 0: none)")
    parser.add_argument("--skip", type=int, default=0, help="start after this many training images (default 0)")
    parser.add_argument("--unlabelled", action="store_true", help="train images in one flat folder, no classes")
    args = parser.parse_args(argv)
    spec = datasets.get(args.dataset)
    if args.out.exists() and any(args.out.iterdir()):
        raise PipelineError(f"{args.out}: not empty; choose a new folder (nothing was written)")
    if min(args.train, args.test, args.skip) < 0:
        raise PipelineError("--train, --test and --skip count images: give 0 or more")
    x_train, y_train, x_test, y_test = spec.read(raw_dir(args.dataset))
    stop = min(args.skip + args.train, len(x_train))
    n = write_pngs(
        x_train[args.skip : stop],
        y_train[args.skip : stop],
        spec.class_names,
        args.out if args.unlabelled else args.out / "train",
        flat=args.unlabelled,
        first=args.skip,
    )
    if n:
        log.info(
            "%s: training images %d to %d (%d) written to %s; an export with --skip %d is disjoint from it",
            args.dataset,
            args.skip,
            stop - 1,
            n,
            args.out,
            stop,
        )
    if args.test and not args.unlabelled:
        m = write_pngs(x_test[: args.test], y_test[: args.test], spec.class_names, args.out / "test")
        log.info("%s: test images 0 to %d (%d) written to %s", args.dataset, m - 1, m, args.out / "test")


if __name__ == "__main__":
    run_stage(main)
