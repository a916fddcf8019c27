"""DVC stage `download@<dataset>`: fetch and verify one dataset's upstream files into data/raw/<dataset>/."""

from __future__ import annotations

import argparse
import logging

from alstudy.data import datasets
from alstudy.data.download import fetch_dataset
from alstudy.errors import PipelineError
from alstudy.params import DataParams, load_params
from alstudy.paths import raw_dir
from alstudy.runner import run_stage

log = logging.getLogger("download")


def without_it(dataset: str, data: DataParams) -> str:
    """The other fix for a dataset that cannot be had: a command that runs the grid without it."""
    rest = [d for d in data.datasets if data.made_from(d) != dataset]
    if not rest:
        return ""
    return f"; or run the grid without it: dvc exp run -S 'data.datasets=[{','.join(rest)}]'"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=datasets.DOWNLOADED)
    args = parser.parse_args(argv)
    params = load_params()

    dest = raw_dir(args.dataset)
    dest.mkdir(parents=True, exist_ok=True)
    if args.dataset not in params.data.downloads_needed():
        log.info("%s: not needed by data.datasets; nothing to download", args.dataset)
        datasets.mark_not_needed(dest, args.dataset)
        return
    (dest / datasets.NOT_NEEDED_NOTE).unlink(missing_ok=True)

    spec = datasets.get(args.dataset)
    sources = params.download.sources.get(args.dataset, [])
    try:
        paths = fetch_dataset(spec, sources, dest, params.download.checksums, params.download.timeout_s)
    except PipelineError as error:
        raise PipelineError(f"{error}{without_it(args.dataset, params.data)}") from None
    if spec.unpack is not None:
        spec.unpack(paths, dest)
        log.info("%s: unpacked in %s", args.dataset, dest)


if __name__ == "__main__":
    run_stage(main)
