"""Benchmark the active-learning loop against a naive Keras baseline.

Run by hand from the root of a clone (never in CI); see docs/developer/benchmarks.md:

    python -m benchmarks.bench_al [--json bench.json]

Sections, in one run, ending with a summary table and PASS/FAIL lines (report.py):
  1. a naive baseline, the loop a modAL tutorial writes, in plain Keras (baseline.py), per seed;
  2. this project's loop (alstudy.learning.loop.run_loop): same protocol, project defaults,
     early stopping, warm start, the defaults in the other model.precision, per seed (common.py);
  3. training throughput: Keras fit vs the project's training vs matmul, 1 and 2 threads, and the
     project's training in bfloat16 beside bfloat16 matmul (training.py);
  4. pool scoring vs the best compiled forward pass, in both precisions, and the arithmetic limit (micro.py);
  5. peak memory on a CIFAR-10-sized memory-mapped pool, in a subprocess (micro.py);
  6. the cost of mlflow.keras.log_model (micro.py);
  7. each convolution alone in float32 and bfloat16, and the first one in other shapes (convolutions.py).
The bfloat16 parts are skipped on a CPU without AVX512-BF16 or AMX-BF16.
The exit status is 1 when a target fails, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alstudy import strategies
from alstudy.data.preprocess import Split, load_splits
from alstudy.learning.loop import check_budget
from alstudy.learning.model import configure, cpu_has_bfloat16
from alstudy.params import ALParams, ModelParams
from alstudy.runner import run_stage
from benchmarks.baseline import QUERIES, run_baseline
from benchmarks.common import (
    MATMUL_SIZES,
    compare,
    describe_config,
    fmt_ratio,
    heading,
    project_params,
    run_project_loop,
)
from benchmarks.convolutions import bench_convolutions
from benchmarks.micro import bench_arithmetic, bench_memory, bench_mlflow, bench_scoring, memory_child
from benchmarks.report import VARIANTS, print_summary
from benchmarks.training import bench_training

ROOT = Path.cwd()  # the project: run from its root (params.yaml, data/prepared/)

EARLY_STOPPING = {"validation_fraction": 0.1, "early_stopping_patience": 3}
# Keeping last round's model and training it for fewer epochs cuts training itself; shown for its accuracy cost.
WARM_START_EPOCH_SHARE = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data/prepared/fashion_mnist"))
    parser.add_argument("--initial-size", type=int, help="default: al.initial_size from params.yaml")
    parser.add_argument("--query-size", type=int, help="default: al.query_size from params.yaml")
    parser.add_argument("--rounds", type=int, help="default: al.rounds from params.yaml")
    parser.add_argument("--epochs", type=int, help="default: model.epochs from params.yaml")
    # The strategies the baseline can run too.
    parser.add_argument(
        "--strategy", choices=[n for n in strategies.names() if n in QUERIES], default="least_confidence"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="one baseline and one project loop per seed (default: 0 1)"
    )
    parser.add_argument("--pool-size", type=int, help="use only the first N training images (quick smoke runs)")
    parser.add_argument("--train-images", type=int, default=5000, help="images in the training-throughput section")
    parser.add_argument(
        "--matmul-sizes",
        type=int,
        nargs="+",
        default=list(MATMUL_SIZES),
        help="square matrix sizes of the arithmetic limit, sections 3 and 4 (default 2048 4096)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="skip section 1 (and the comparisons)")
    parser.add_argument("--skip-training", action="store_true", help="skip section 3")
    parser.add_argument("--skip-scoring", action="store_true", help="skip sections 4 and 6")
    parser.add_argument("--skip-memory", action="store_true", help="skip section 5")
    parser.add_argument("--skip-convolutions", action="store_true", help="skip section 7")
    parser.add_argument("--memory-only", action="store_true", help="run section 5 alone")
    parser.add_argument(
        "--memory-pool-size",
        type=int,
        default=50000,
        help="training images of the synthetic CIFAR-10-sized pool in section 5 (default 50000)",
    )
    parser.add_argument(
        "--memory-image-size",
        type=int,
        nargs=3,
        default=[32, 32, 3],
        metavar=("H", "W", "C"),
        help="image shape of section 5's synthetic pool (default 32 32 3; e.g. 64 64 3 with 100000)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every number to this JSON file")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)  # internal: section 5's subprocess
    return parser.parse_args(argv)


def mean_summary(per_seed: list[dict]) -> dict:
    """The per-seed summaries of one loop, averaged over seeds."""
    return {key: float(np.mean([s[key] for s in per_seed])) for key in per_seed[0]}


def run_loops(args, config: dict, params) -> dict:
    """Sections 1 and 2: the baseline and the project's variants, once per seed."""
    name = strategies.canonical(args.strategy)  # the loop's params take a strategy by its module's name
    al_same = ALParams(
        strategies=[name],
        strategy_options={name: {}},
        seeds=args.seeds,
        initial_size=config["initial_size"],
        query_size=config["query_size"],
        rounds=config["rounds"],
        pool_subsample=0,
        log_models="never",
    )
    mp_same = ModelParams(**{**params.model.model_dump(), "epochs": config["epochs"], "validation_fraction": 0.0})
    al_defaults = ALParams(**{**al_same.model_dump(), "pool_subsample": params.al.pool_subsample})
    mp_defaults = ModelParams(**{**params.model.model_dump(), "epochs": config["epochs"]})
    variants = {"same_protocol": (al_same, mp_same), "project_defaults": (al_defaults, mp_defaults)}
    if cpu_has_bfloat16():  # the defaults in the other model.precision, run next so that the two see the same load
        other = "bfloat16" if mp_defaults.precision == "float32" else "float32"
        variants[f"defaults_{other}"] = (al_defaults, mp_defaults.model_copy(update={"precision": other}))
    if mp_defaults.validation_fraction == 0:
        variants["early_stopping"] = (al_defaults, ModelParams(**{**mp_defaults.model_dump(), **EARLY_STOPPING}))
    if mp_defaults.retrain_from_scratch:
        variants["warm_start"] = (
            al_defaults,
            ModelParams(
                **{
                    **mp_defaults.model_dump(),
                    "retrain_from_scratch": False,
                    "epochs": max(1, mp_defaults.epochs // WARM_START_EPOCH_SHARE),
                }
            ),
        )

    pool, test = load_splits(args.data_dir)
    if args.pool_size:
        pool = Split(pool.x[: args.pool_size], pool.y[: args.pool_size])
    check_budget(al_same, len(pool.x), str(args.data_dir))
    runs: dict[str, dict[int, dict]] = {}
    for seed in args.seeds:
        if not args.skip_baseline:
            baseline = run_baseline(args.data_dir, args.pool_size, al_same, mp_same, name, seed)
            runs.setdefault("baseline", {})[seed] = {"rounds": baseline.rounds, "summary": baseline.summary()}
        heading(f"2. THIS PROJECT'S LOOP, seed {seed}: alstudy.learning.loop.run_loop on memory-mapped splits")
        for key, (al, mp) in variants.items():
            print(f"({key}) {describe_config(al, mp)}, retrain_from_scratch={mp.retrain_from_scratch}", flush=True)
            stats = run_project_loop(f"ours/{key}", pool, test, name, al, mp, seed)
            runs.setdefault(key, {})[seed] = {"rounds": stats.rounds, "summary": stats.summary()}

    loops = {}
    for key, per_seed in runs.items():
        loops[key] = {
            "per_seed": {str(s): r for s, r in per_seed.items()},
            "summary": mean_summary([r["summary"] for r in per_seed.values()]),
        }
    if "baseline" in loops:
        for key in (key for key, _ in VARIANTS if key in loops):
            c = compare(loops["baseline"]["summary"], loops[key]["summary"])
            c["accuracy_diff_points_per_seed"] = [
                100.0 * (runs[key][s]["summary"]["final_accuracy"] - runs["baseline"][s]["summary"]["final_accuracy"])
                for s in args.seeds
            ]
            loops[key]["vs_baseline"] = c
            print(
                f"  {key}: baseline/ours per round total {fmt_ratio(c['speedup_total'])}, "
                f"train {fmt_ratio(c['speedup_train'])}, score {fmt_ratio(c['speedup_score'])}; final accuracy "
                f"{c['accuracy_diff_points']:+.2f} points (per seed: "
                f"{', '.join(f'{d:+.2f}' for d in c['accuracy_diff_points_per_seed'])})",
                flush=True,
            )
    return loops, mp_same


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.seeds[0])
        return 0

    params = project_params()
    configure(params.model)  # the loops run as a cell of the grid would (a bfloat16 one needs bfloat16 units)
    config = {
        "data_dir": str(args.data_dir),
        "strategy": args.strategy,
        "seeds": args.seeds,
        "pool_size": args.pool_size,
        "initial_size": args.initial_size or params.al.initial_size,
        "query_size": args.query_size or params.al.query_size,
        "rounds": args.rounds or params.al.rounds,
        "epochs": args.epochs or params.model.epochs,
        "threads": params.model.threads,
        "precision": params.model.precision,
        "cpu_bfloat16": cpu_has_bfloat16(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpus": os.cpu_count(),
        "matmul_sizes": args.matmul_sizes,
    }
    results: dict = {"config": config}
    print("bench_al: " + ", ".join(f"{k}={v}" for k, v in config.items()), flush=True)

    model = None
    if not args.memory_only:
        results["loops"], mp_same = run_loops(args, config, params)
        if not args.skip_training:
            results["training"] = bench_training(
                args.data_dir, args.train_images, epochs=2, matmul_sizes=tuple(args.matmul_sizes)
            )
        if not args.skip_scoring:
            scoring = bench_scoring(args.data_dir, args.pool_size, mp_same, config["initial_size"], args.seeds[0])
            model = scoring.pop("_model")
            results["scoring"] = scoring
            results["arithmetic"] = bench_arithmetic(model, scoring, tuple(args.matmul_sizes))
    if not args.skip_memory:
        results["memory"] = bench_memory(args.memory_pool_size, args.seeds[0], tuple(args.memory_image_size))
    if not (args.memory_only or args.skip_convolutions):
        image_shape = load_splits(args.data_dir)[0].x.shape[1:]  # memory-mapped: only the header is read
        results["convolutions"] = bench_convolutions(params.model, tuple(image_shape))
    if model is not None:
        results["mlflow"] = bench_mlflow(model)

    targets = print_summary(results)
    results["targets"] = [{"verdict": v, "text": t} for v, t in targets]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(v == "FAIL" for v, _ in targets) else 0


if __name__ == "__main__":
    sys.exit(run_stage(main))
