"""DVC stage `download@<dataset>`: fetch and verify one dataset's upstream files into data/raw/<dataset>/."""
from __future__ import annotations

import argparse
import logging

from pipeline import cifar
from pipeline.cli import run_stage
from pipeline.datasets import SPECS
from pipeline.download import fetch_dataset, hash_file
from pipeline.errors import PipelineError
from pipeline.params import load_params, required_base_datasets
from pipeline.paths import raw_dir

log = logging.getLogger("download")


def without_it(dataset: str, datasets: list[str]) -> str:
    """The other fix for a dataset that cannot be had: a command that runs the grid without it."""
    rest = [d for d in datasets if dataset not in required_base_datasets([d])]
    if not rest:
        return ""
    return f"; or run the grid without it: dvc exp run -S 'data.datasets=[{','.join(rest)}]'"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, choices=sorted(SPECS))
    args = parser.parse_args(argv)
    params = load_params()

    dest = raw_dir(args.dataset)
    dest.mkdir(parents=True, exist_ok=True)
    if args.dataset not in required_base_datasets(params.data.datasets):
        log.info("%s: not needed by data.datasets; nothing to download", args.dataset)
        return

    spec = SPECS[args.dataset]
    sources = params.download.sources.get(args.dataset, [])
    try:
        paths = fetch_dataset(spec, sources, dest, params.download.checksums, params.download.timeout_s)
    except PipelineError as error:
        raise PipelineError(f"{error}{without_it(args.dataset, params.data.datasets)}") from None
    if args.dataset == "cifar10":
        archive = paths[0]
        batch_dir = cifar.extract(archive, dest, archive_digest=hash_file(archive)["sha256"])
        log.info("cifar10: batches ready in %s", batch_dir)



if __name__ == "__main__":
    run_stage(main)
