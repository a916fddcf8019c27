"""The study on a machine with GPUs, in one command: one cell alone, then the whole default study packed
N cells to a GPU for each N given. Run by hand, from a clone, on the GPU machine (issue 32, item 7).

    pip install -e '.[jax-gpu]'
    python -m benchmarks.bench_gpu                                   # N = 8 and 16, about 10 minutes
    python -m benchmarks.bench_gpu --cells-per-gpu 4 8 16 --cpu-results ../cpu-study/results --cpu-minutes 38

Each run is a fresh clone of the project (--project, default: here) in --workdir, its params.yaml
the project's with model.backend jax (or --backend torch), model.device gpu and a fixed design
(study.sequential: null), all clones sharing one DVC cache (the data are downloaded and prepared
once). Timed: `alstudy grid`, the grid's cells and the study stages after them (plots, verdicts,
report), as a user runs it. Printed per run: wall time, cells per minute, and each dataset x
strategy's mean AUBC; with --cpu-results (a CPU study's results/ folder), `alstudy compare-studies`
between it and each GPU run: within seed noise, no difference is significant after Holm. Goal: the
default study in under 5 minutes on one H200-class GPU and at least 10x faster than the 2-core CPU
study (--cpu-minutes: its wall time).

With --device cpu it runs the same steps on the CPU cores (N cells at once), which is how the tests check it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from alstudy import hardware
from alstudy.errors import PipelineError
from alstudy.runner import run_stage
from alstudy.scale.grid import grid_cells
from alstudy.study import results
from alstudy.study.summary import aubc


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run a command in the clone, its output shown; the seconds it took. A failure stops the benchmark."""
    bin_dir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)  # each clone logs to its own store: runs of one N stay together
    full_env.pop("KERAS_BACKEND", None)  # set in this process from here's params.yaml; the clone's decides
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=full_env)
    if done.returncode != 0:
        raise PipelineError(f"bench: `{' '.join(args)}` failed in {cwd} (exit {done.returncode}); its output is above")
    return time.perf_counter() - start


def clone(project: Path, dest: Path, cache: Path, overrides: dict) -> Path:
    """A clone of the project's committed HEAD with params.yaml overridden, on the shared DVC cache."""
    subprocess.run(["git", "clone", "--quiet", str(project), str(dest)], check=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section] = {**(params.get(section) or {}), **values}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([str(Path(sys.executable).parent / "dvc"), "cache", "dir", "--local", str(cache)], dest)
    return dest


def mean_aubcs(results_dir: Path) -> dict[str, float]:
    """Mean AUBC of accuracy per dataset/strategy over the seeds of a study's results/."""
    means = {}
    for (dataset, strategy), by_seed in sorted(results.curve_files(results_dir).items()):
        values = [aubc(n, acc) for n, acc, _ in (results.read_curve(path) for path in by_seed.values())]
        means[f"{dataset}/{strategy}"] = round(float(np.mean(values)), 4)
    return means


def prepare_data(root: Path) -> float:
    """The stages the grid's cells depend on (download, preprocess, imbalanced variants), brought up to date."""
    with contextlib.chdir(root):  # DVC names stages relative to the working folder
        _, upstream = grid_cells(root)
    return run([str(Path(sys.executable).parent / "dvc"), "repro", *upstream], root) if upstream else 0.0


def grid(root: Path, device: str, per_device: int) -> float:
    flag = ["--cells-per-gpu", str(per_device)] if device == "gpu" else ["--jobs", str(per_device)]
    return run([sys.executable, "-m", "alstudy.console.grid", *flag], root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the clone to copy (default: here)")
    parser.add_argument(
        "--workdir", type=Path, help="clones go here, one folder per run (default: a new /tmp/alstudy-bench-gpu/TIME)"
    )
    parser.add_argument("--cells-per-gpu", type=int, nargs="+", default=[8, 16], help="N per run (default 8 16)")
    parser.add_argument("--skip-single", action="store_true", help="leave out the one-cell run")
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="cpu: the same steps on CPU cores")
    parser.add_argument("--backend", choices=["jax", "torch"], default="jax", help="model.backend (default jax)")
    parser.add_argument("--cpu-results", type=Path, help="a CPU study's results/ to compare each run with")
    parser.add_argument("--cpu-minutes", type=float, help="that CPU study's wall time, for the speed-up")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=YAML",
        help="override a param in every clone, e.g. al.seeds=[0] (a smaller study)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    if args.device == "gpu":
        if not hardware.visible_gpus():
            raise PipelineError("bench: no NVIDIA GPU here (nvidia-smi lists none); --device cpu runs the steps on CPU")
        if not hardware.gpu_runtime_installed(args.backend):
            fix = "pip install -e '.[jax-gpu]'" if args.backend == "jax" else "install PyTorch's CUDA build"
            raise PipelineError(f"bench: {args.backend} has no CUDA runtime in this environment; {fix}")
    overrides: dict = {"model": {"backend": args.backend, "device": args.device}, "study": {"sequential": None}}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    workdir = args.workdir or Path("/tmp/alstudy-bench-gpu") / time.strftime("%Y%m%d-%H%M%S")
    if workdir.exists() and any(workdir.iterdir()):
        raise PipelineError(f"bench: --workdir {workdir} is not empty; name a new folder")
    cache = workdir / "dvc-cache"
    gpus = hardware.visible_gpus() if args.device == "gpu" else []
    print(f"bench: {args.device}: {', '.join(g.name for g in gpus) or f'{os.cpu_count()} CPU cores'}; in {workdir}")

    # The data once (every later clone's `dvc repro` of them is a cache hit), then one cell alone.
    rows, data_s = [], None
    if not args.skip_single:
        single = clone(args.project, workdir / "one-cell", cache, overrides)
        params = yaml.safe_load((single / "params.yaml").read_text())
        first, strategies = params["data"]["datasets"][0], params["al"]["strategies"]
        strategy = "margin" if "margin" in strategies else strategies[0]
        params["data"]["datasets"] = [first]
        params["al"].update({"strategies": [strategy], "seeds": params["al"]["seeds"][:1]})
        (single / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        data_s = prepare_data(single)
        wall = grid(single, args.device, 1)
        rows.append({"run": f"one cell ({first}, {strategy})", "cells": 1, "per_device": 1, "wall_s": wall})

    for per_device in args.cells_per_gpu:
        root = clone(args.project, workdir / f"n{per_device}", cache, overrides)
        prepared_s = prepare_data(root)
        data_s = prepared_s if data_s is None else data_s
        wall = grid(root, args.device, per_device)
        cells = sum(len(seeds) for seeds in results.curve_files(root / "results").values())
        row = {"run": f"study, {per_device} per {args.device}", "cells": cells, "per_device": per_device}
        row.update(wall_s=wall, aubc=mean_aubcs(root / "results"))
        if args.cpu_results:
            from alstudy.console.compare_studies import compare

            row["compare"] = compare(args.cpu_results, root / "results", None)
        rows.append(row)

    print(f"\nbench: data downloaded and prepared in {data_s:.0f} s (once, shared by the runs)")
    print("| run | cells | wall | cells per minute | speed-up over the CPU study |")
    print("|---|---|---|---|---|")
    for row in rows:
        wall = row["wall_s"]
        speedup = f"{args.cpu_minutes * 60 / wall:.1f}x" if args.cpu_minutes and row["cells"] > 1 else ""
        print(f"| {row['run']} | {row['cells']} | {wall / 60:.1f} min | {row['cells'] * 60 / wall:.1f} | {speedup} |")
    for row in rows:
        if "aubc" not in row:
            continue
        print(f"\n{row['run']}: mean AUBC (accuracy) " + ", ".join(f"{k} {v:.4f}" for k, v in row["aubc"].items()))
        if "compare" in row:
            print(f"against the CPU study ({args.cpu_results}):")
            print("\n".join(row["compare"]))
    if args.json:
        figures = {"device": args.device, "gpus": [g.name for g in gpus], "data_s": data_s, "runs": rows}
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main)
