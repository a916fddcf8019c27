"""DVC stage `folder@<name>`: an image folder of yours (data.folders.<name>) -> prepared splits.

Writes data/prepared/<name>/ like the built-in datasets' preprocessing: pixels as float32
in [0, 1], labels one-hot, class names (from the folder names) in meta.json.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alstudy.data.image_folder import prepare_folder
from alstudy.errors import PipelineError
from alstudy.params import load_params
from alstudy.paths import prepared_dir
from alstudy.runner import run_stage

log = logging.getLogger("folder")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, help="a key of data.folders in params.yaml")
    args = parser.parse_args(argv)
    params = load_params()
    folder = params.data.folders.get(args.dataset)
    if folder is None:
        raise PipelineError(f"no image folder {args.dataset!r} under data.folders in params.yaml; declare it there")
    out = prepared_dir(args.dataset)
    split = prepare_folder(
        Path(folder.path),
        out,
        args.dataset,
        folder.image_size,
        folder.color_mode,
        folder.test_fraction,
        params.base.seed,
    )
    log.info(
        "%s: wrote %d train and %d test images of %s (%s), %d classes: %s",
        args.dataset,
        len(split.train),
        len(split.test),
        "x".join(map(str, folder.image_size)),
        folder.color_mode,
        len(split.class_names),
        ", ".join(split.class_names),
    )


if __name__ == "__main__":
    run_stage(main)
