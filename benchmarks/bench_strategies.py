"""Query cost of every registered strategy on a full pool, against one probability pass. Run by hand.

For each strategy: one query of --query-size images from the whole unlabelled
pool (pool_subsample 0) with --labeled images already labelled, through the
loop's own `query()` (the inputs the strategy declared, then its selection).
Targets (issue: strategies beyond the first four):
  - coreset and badge: at most 3x the time of one probability pass over the same pool;
  - bald: about T passes (T and the time are printed);
  - peak memory under 2 GB on a CIFAR-10-sized pool (a subprocess per strategy).

    python -m benchmarks.bench_strategies --json strategies.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from alstudy import strategies
from alstudy.data.preprocess import load_splits
from alstudy.learning.loop import query, round_rng
from alstudy.learning.model import CNN, configure
from alstudy.params import ALParams
from alstudy.runner import run_stage
from benchmarks.common import project_params
from benchmarks.micro import make_synthetic_cifar, proc_status_kb

ROOT = Path.cwd()  # the project: run from its root (params.yaml, data/prepared/)
MAX_RATIO = {"coreset": 3.0, "badge": 3.0}
MEMORY_LIMIT_MB = 2048


def trained_learner(pool, labeled: np.ndarray, seed: int) -> CNN:
    """The project's CNN after one epoch on the labelled set: realistic outputs, little time."""
    params = project_params()
    cnn = CNN(pool.x.shape[1:], pool.y.shape[1], params.model.model_copy(update={"epochs": 1}))
    cnn.reinitialize(seed)
    cnn.fit(np.asarray(pool.x[labeled]), np.asarray(pool.y[labeled]), seed)
    return cnn


def al_for(name: str, query_size: int) -> ALParams:
    params = project_params()
    options = {name: params.al.strategy_options.get(name, {})}
    return ALParams(
        strategies=[name], strategy_options=options, initial_size=1, query_size=query_size, rounds=1, pool_subsample=0
    )


def time_queries(data_dir: Path, n_labeled: int, query_size: int, seed: int, names: list[str]) -> dict:
    pool, _ = load_splits(data_dir)
    labeled = np.sort(round_rng(seed, 0).choice(len(pool.x), size=n_labeled, replace=False))
    cnn = trained_learner(pool, labeled, seed)
    candidates = np.setdiff1d(np.arange(len(pool.x)), labeled)
    cnn.infer(pool.x, candidates)  # trace, and bring the file into the page cache
    start = time.perf_counter()
    cnn.infer(pool.x, candidates)
    proba_s = time.perf_counter() - start
    print(
        f"pool {len(pool.x)} images {pool.x.shape[1:]}, {n_labeled} labelled, {len(candidates)} candidates, "
        f"query {query_size}",
        flush=True,
    )
    print(
        f"one probability pass over the candidates: {proba_s:.2f} s ({len(candidates) / proba_s:.0f} images/s)",
        flush=True,
    )
    results = {
        "n_pool": len(pool.x),
        "n_labeled": n_labeled,
        "n_candidates": len(candidates),
        "query_size": query_size,
        "proba_pass_s": proba_s,
        "strategies": {},
    }
    for name in names:
        al = al_for(name, query_size)
        query(name, al.options(name), cnn, pool, labeled.tolist(), al, seed, 1)  # trace this request's function
        start = time.perf_counter()
        picked, inputs_s = query(name, al.options(name), cnn, pool, labeled.tolist(), al, seed, 1)
        total = time.perf_counter() - start
        assert len(set(picked.tolist())) == query_size
        passes = getattr(al.options(name), "mc_passes", None)
        results["strategies"][name] = {
            "seconds": total,
            "inputs_seconds": inputs_s,
            "select_seconds": total - inputs_s,
            "ratio_to_proba_pass": total / proba_s,
            "mc_passes": passes,
        }
        extra = f"  (T = {passes} MC passes)" if passes else ""
        print(
            f"  {name:16s} {total:6.2f} s = {total / proba_s:4.1f}x a probability pass "
            f"(inputs {inputs_s:.2f} s, selection {total - inputs_s:.2f} s){extra}",
            flush=True,
        )
    return results


def memory_child(folder: Path, name: str, n_labeled: int, query_size: int, seed: int) -> None:
    pool, _ = load_splits(folder)
    labeled = np.sort(round_rng(seed, 0).choice(len(pool.x), size=n_labeled, replace=False))
    cnn = trained_learner(pool, labeled, seed)
    al = al_for(name, query_size)
    query(name, al.options(name), cnn, pool, labeled.tolist(), al, seed, 1)
    print("RESULT " + json.dumps(proc_status_kb()), flush=True)


def measure_memory(n_pool: int, n_labeled: int, query_size: int, seed: int, names: list[str]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench_strategies_"))
    try:
        make_synthetic_cifar(folder, n_pool, max(1000, n_pool // 5), seed)
        print(f"memory: synthetic {n_pool} x 32 x 32 x 3 pool, one query per strategy in its own process", flush=True)
        out = {}
        for name in names:
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_strategies",
                    "--memory-child",
                    str(folder),
                    "--strategy",
                    name,
                    "--labeled",
                    str(n_labeled),
                    "--query-size",
                    str(query_size),
                    "--seed",
                    str(seed),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            line = next(x for x in child.stdout.splitlines() if x.startswith("RESULT "))
            status = json.loads(line.removeprefix("RESULT "))
            peak_mb = status["VmHWM"] / 1024
            out[name] = {"peak_rss_mb": peak_mb, **status}
            print(f"  {name:16s} peak RSS {peak_mb:6.0f} MB", flush=True)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def verdicts(timing: dict, memory: dict | None) -> list[str]:
    lines = []
    for name, limit in MAX_RATIO.items():
        if name in timing["strategies"]:
            ratio = timing["strategies"][name]["ratio_to_proba_pass"]
            lines.append(
                f"{'PASS' if ratio <= limit else 'FAIL'}  {name}: {ratio:.1f}x a probability pass "
                f"(target <= {limit:.0f}x)"
            )
    if "bald" in timing["strategies"]:
        b = timing["strategies"]["bald"]
        lines.append(
            f"INFO  bald: T = {b['mc_passes']} passes in {b['seconds']:.2f} s = "
            f"{b['ratio_to_proba_pass']:.1f}x one pass (dropout sits in the dense head, so the "
            "convolutions run once)"
        )
    for name, m in (memory or {}).items():
        ok = m["peak_rss_mb"] < MEMORY_LIMIT_MB
        lines.append(
            f"{'PASS' if ok else 'FAIL'}  memory, {name}: peak RSS {m['peak_rss_mb']:.0f} MB "
            f"(target < {MEMORY_LIMIT_MB} MB)"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data/prepared/fashion_mnist"))
    parser.add_argument("--labeled", type=int, default=5000)
    parser.add_argument("--query-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--strategy",
        action="append",
        choices=strategies.names(),
        help="repeat to pick several (default: every registered strategy)",
    )
    parser.add_argument("--memory-pool-size", type=int, default=50000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", type=Path, metavar="OUT")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.strategy or list(strategies.STRATEGIES)
    configure(project_params().model)  # as a cell of the grid runs: its threads, precision
    if args.memory_child:
        memory_child(args.memory_child, names[0], args.labeled, args.query_size, args.seed)
        return
    timing = time_queries(args.data_dir, args.labeled, args.query_size, args.seed, names)
    memory = (
        None
        if args.skip_memory
        else measure_memory(args.memory_pool_size, args.labeled, args.query_size, args.seed, names)
    )
    print("\n=== SUMMARY ===")
    for line in verdicts(timing, memory):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"timing": timing, "memory": memory}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_stage(main)
