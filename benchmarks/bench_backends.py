"""A default round's arithmetic on each installed Keras backend, one process each, pinned to one core. Run by hand.

Per backend (model.backend): the project's CNN and params (float32 where the CPU has no
bfloat16 units), trained on --labeled images for model.epochs epochs (the last round of the
default protocol: 200 + 10 x 200 = 2,200), twice: the first fit includes compiling, the second
is what every later round costs; then the candidates scored (--candidates, al.pool_subsample)
with probabilities, and with model.mc_passes MC-dropout passes as BALD asks. Images are the
prepared Fashion-MNIST when it is there (`dvc repro preprocess@fashion_mnist`), else random
ones of its shape. Target (issue 32): TensorFlow no slower than before; each backend's figures
side by side.

    python -m benchmarks.bench_backends                      # every installed backend
    python -m benchmarks.bench_backends --backend jax --json backends.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from alstudy.learning import backends
from alstudy.runner import run_stage

ROOT = Path.cwd()


def images(data_dir: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if (data_dir / "x_train.npy").is_file():
        x = np.load(data_dir / "x_train.npy", mmap_mode="r")
        y = np.load(data_dir / "y_train.npy", mmap_mode="r")
        rows = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
        return np.asarray(x[rows], np.float32), np.asarray(y[rows], np.float32)
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]


def child(backend: str, labeled: int, candidates: int, data_dir: Path, recipe: str | None = None) -> dict:
    """One backend's figures, in this process (Keras takes KERAS_BACKEND, set by the parent); the model of
    params.yaml's `recipe` if named (benchmarks/bench_recipes.py), else the `model` section."""
    from alstudy.learning.model import CNN, configure
    from benchmarks.common import project_params

    params = project_params()
    model = (params.recipe(recipe) if recipe else params.model).model_copy(update={"backend": backend})
    device = configure(model)
    x, y = images(data_dir, labeled, 0)
    pool, _ = images(data_dir, candidates, 1)
    cnn = CNN(x.shape[1:], y.shape[1], model)
    timings = {}
    for name in ("first_fit_s", "fit_s"):
        cnn.reinitialize(0)
        start = time.perf_counter()
        cnn.fit(x, y, seed=0)
        timings[name] = time.perf_counter() - start
    cnn.infer(pool[:64])  # compiled once, as every round after the first finds it
    start = time.perf_counter()
    cnn.infer(pool)
    timings["score_s"] = time.perf_counter() - start
    passes = params.al.options("bald").mc_passes if model.dropout else 0
    if passes:
        cnn.infer(pool[:64], mc_passes=passes)
        start = time.perf_counter()
        cnn.infer(pool, mc_passes=passes)
        timings["mc_s"] = time.perf_counter() - start
    return {
        "backend": backend,
        "recipe": recipe,
        "device": device,
        "precision": model.precision,
        "labeled": len(x),
        "epochs": model.epochs,
        "candidates": len(pool),
        "mc_passes": passes,
        # Four decimals: a tiny measure (64 candidates, a test's) takes under 5 ms and must not read 0.
        **{k: round(v, 4) for k, v in timings.items()},
    }


def measure(
    backend: str, labeled: int, candidates: int, data_dir: Path, core: int | None, recipe: str | None = None
) -> dict:
    """One backend in a fresh process (Keras fixes its backend per process), pinned to one core."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)}
    env["KERAS_BACKEND"] = backend
    command = [sys.executable, "-m", "benchmarks.bench_backends", "--child", backend]
    command += ["--labeled", str(labeled), "--candidates", str(candidates), "--data-dir", str(data_dir)]
    command += ["--recipe", recipe] if recipe else []
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", choices=backends.names(), help="default: every installed one")
    parser.add_argument("--labeled", type=int, default=2200, help="images trained on (default 2200: the last round)")
    parser.add_argument("--candidates", type=int, default=10000, help="images scored (default 10000)")
    parser.add_argument("--data-dir", type=Path, default=Path("data/prepared/fashion_mnist"))
    parser.add_argument("--core", type=int, default=0, help="the core each process is pinned to (-1: none)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one backend, in its own process
    parser.add_argument("--recipe", help=argparse.SUPPRESS)  # internal: that recipe's model
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.labeled, args.candidates, args.data_dir, args.recipe)))
        return
    chosen = args.backend or [name for name in backends.names() if backends.installed(name)]
    rows = []
    for backend in chosen:
        row = measure(backend, args.labeled, args.candidates, args.data_dir, None if args.core < 0 else args.core)
        rows.append(row)
        print(
            f"{backend:10s} {row['device']} {row['precision']}: fit {row['labeled']} x {row['epochs']} epochs "
            f"{row['fit_s']:.2f} s (first, compiling: {row['first_fit_s']:.2f} s); score {row['candidates']} "
            f"{row['score_s']:.2f} s; {row['mc_passes']} MC passes {row.get('mc_s', 0):.2f} s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main)
