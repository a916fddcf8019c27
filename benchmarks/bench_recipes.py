"""params.yaml's training recipes: what a round of each costs, and how many epochs each needs. Run by hand.

Cost (issue 33 item 7): per recipe, in a process pinned to one core, a round's arithmetic as
benchmarks/bench_backends.py measures it on the backend of params.yaml: the recipe's model
trained on --labeled images (default 2,200: the last round of the default protocol) for its
epochs, then --candidates images scored, and with BALD's MC-dropout passes; beside the default
recipe's figures.

Epochs (--epochs 10 20 30 40): per recipe, the test accuracy of its model trained on --sizes
labelled images (a seeded draw from the prepared training split, --seeds) after each number of
epochs (one fit to the largest, read after each epoch: a fit of E epochs is the first E epochs
of a longer one). A recipe's epochs are the fewest within --tolerance points of its best at
every size: augmented training sees a new version of each image every epoch and needs more of
them than plain training to fit the same labels.

Needs the prepared Fashion-MNIST (`dvc repro preprocess@fashion_mnist`).

    python -m benchmarks.bench_recipes                                  # every recipe's cost
    python -m benchmarks.bench_recipes --epochs 10 20 30 40 --recipe default --recipe augmented
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from alstudy.errors import PipelineError
from alstudy.runner import run_stage
from benchmarks import bench_backends
from benchmarks.common import project_params

ROOT = Path.cwd()


def epochs_child(recipe: str, sizes: list[int], epochs: list[int], seeds: list[int], data_dir: Path) -> dict:
    """Test accuracy after each of `epochs`, per labelled-set size and seed, in this process."""
    from alstudy.learning.model import CNN, configure

    params = project_params()
    model = params.recipe(recipe).model_copy(update={"epochs": max(epochs)})
    configure(model)
    x_train, y_train = (np.load(data_dir / f"{name}_train.npy", mmap_mode="r") for name in ("x", "y"))
    x_test, y_test = np.load(data_dir / "x_test.npy"), np.load(data_dir / "y_test.npy")
    labels = y_test.argmax(axis=1)
    cnn = CNN(x_train.shape[1:], y_train.shape[1], model)
    accuracy: dict[str, dict[str, list[float]]] = {}
    for size in sizes:
        for seed in seeds:
            rows = np.sort(np.random.default_rng(seed).choice(len(x_train), size=size, replace=False))
            x, y = np.asarray(x_train[rows]), np.asarray(y_train[rows])
            found = accuracy.setdefault(str(size), {})

            def read(epoch: int) -> None:
                if epoch in epochs:
                    correct = cnn.predict_proba(x_test).argmax(axis=1) == labels
                    found.setdefault(str(epoch), []).append(round(100 * float(correct.mean()), 2))

            cnn.reinitialize(seed)
            cnn.fit(x, y, seed=seed, after_epoch=read)  # the model's epochs are max(epochs)
            print(f"bench: {recipe}, {size} labels, seed {seed}: {found}", file=sys.stderr, flush=True)
    return {"recipe": recipe, "accuracy": accuracy}


def chosen_epochs(accuracy: dict[str, dict[str, list[float]]], tolerance: float) -> int:
    """The fewest epochs whose mean accuracy is within `tolerance` points of the best, at every size."""
    candidates = sorted({int(e) for by_epoch in accuracy.values() for e in by_epoch})
    for epochs in candidates:
        if all(
            np.mean(by_epoch[str(epochs)]) >= max(np.mean(v) for v in by_epoch.values()) - tolerance
            for by_epoch in accuracy.values()
        ):
            return epochs
    return candidates[-1]


def in_child(args: list[str], core: int | None) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_recipes", *args]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", help="default: every recipe in params.yaml")
    parser.add_argument("--labeled", type=int, default=2200, help="images a costed round trains on")
    parser.add_argument("--candidates", type=int, default=10000, help="images a costed round scores")
    parser.add_argument("--epochs", type=int, nargs="+", help="measure test accuracy after these epochs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2200], help="labelled images (--epochs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="draws of them (--epochs)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="points below the best still chosen")
    parser.add_argument("--data-dir", type=Path, default=Path("data/prepared/fashion_mnist"))
    parser.add_argument("--core", type=int, default=0, help="the core each process is pinned to (-1: none)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--epochs-child", help=argparse.SUPPRESS)  # internal: one recipe's epochs, in a process
    args = parser.parse_args(argv)
    if args.epochs_child:
        result = epochs_child(args.epochs_child, args.sizes, args.epochs, args.seeds, args.data_dir)
        print(json.dumps(result))
        return
    params = project_params()
    recipes = args.recipe or list(params.recipes)
    for name in recipes:
        params.recipe(name)  # an unknown one stops here, in one line
    if not (args.data_dir / "x_train.npy").is_file():
        raise PipelineError(f"{args.data_dir}: no prepared images; run `dvc repro preprocess@fashion_mnist` first")
    core = None if args.core < 0 else args.core
    backend = params.model.backend
    rows = []
    for name in recipes:
        model = params.recipe(name)
        row = bench_backends.measure(backend, args.labeled, args.candidates, args.data_dir, core, recipe=name)
        if args.epochs:
            common = ["--sizes", *map(str, args.sizes), "--seeds", *map(str, args.seeds)]
            common += ["--epochs", *map(str, args.epochs), "--data-dir", str(args.data_dir)]
            row["epochs_test_accuracy"] = in_child(["--epochs-child", name, *common], core)["accuracy"]
            row["chosen_epochs"] = chosen_epochs(row["epochs_test_accuracy"], args.tolerance)
        rows.append(row)
        first = rows[0]
        ratio = f" ({row['fit_s'] / first['fit_s']:.1f}x {recipes[0]}'s fit)" if row is not first else ""
        print(
            f"{name:12s} {model.network}, {model.epochs} epochs, augmentation {list(model.augmentation) or 'none'}: "
            f"fit {row['labeled']} {row['fit_s']:.2f} s{ratio}; score {row['candidates']} {row['score_s']:.2f} s; "
            f"{row['mc_passes']} MC passes {row.get('mc_s', 0):.2f} s",
            flush=True,
        )
        if args.epochs:
            for size, by_epoch in row["epochs_test_accuracy"].items():
                means = ", ".join(f"{e}: {np.mean(v):.2f}" for e, v in by_epoch.items())
                print(f"{'':12s} {size} labels, test accuracy % after epochs {means}", flush=True)
            print(f"{'':12s} fewest epochs within {args.tolerance} points of the best: {row['chosen_epochs']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main)
