"""Shared by the benchmark's sections: timing, ratios, FLOP counts, and the per-round log of a loop."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alstudy.data.preprocess import Split
from alstudy.learning.loop import LoopState, RoundResult, run_loop
from alstudy.learning.model import CNN, cpu_has_bfloat16
from alstudy.params import ALParams, ModelParams, Params, load_params

ROOT = Path.cwd()  # the project: run from its root (params.yaml, data/prepared/)
# Square matrix sizes of the arithmetic limit (matmul), each timed best of MATMUL_REPEATS: large enough to
# reach the CPU's peak. `--matmul-sizes` takes smaller ones for a smoke run.
MATMUL_SIZES = (2048, 4096)
MATMUL_REPEATS = 3


def project_params() -> Params:
    """params.yaml, as the benchmarks measure it: on a CPU without bfloat16 units, where a grid would stop
    at start, its model in float32 (said once on stderr), so that the rest is still measured there."""
    params = load_params(ROOT / "params.yaml")
    if params.model.precision == "bfloat16" and not cpu_has_bfloat16():
        if not getattr(project_params, "said", False):
            print("bench: this CPU has no bfloat16 units: the defaults run in float32 here", file=sys.stderr)
            project_params.said = True
        params = params.model_copy(update={"model": params.model.model_copy(update={"precision": "float32"})})
    return params


def best_of(repeats: int, fn) -> float:
    """Shortest wall time of `repeats` calls: the least disturbed by other work on the machine."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is under a millisecond (e.g. no scoring with --strategy random): noise, not speed."""
    return a / b if b >= 1e-3 else None


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def heading(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


@dataclass
class LoopStats:
    """Per-round timings and scores of one active-learning loop."""

    name: str
    rounds: list[dict] = field(default_factory=list)
    labeled: list[int] = field(default_factory=list)  # pool indices, in labelling order

    def add(
        self,
        round_: int,
        n_labeled: int,
        train: float,
        score: float,
        evaluation: float,
        wall: float,
        accuracy: float,
        f1: float,
        total_rounds: int,
    ) -> None:
        row = dict(
            round=round_,
            n_labeled=n_labeled,
            train_s=train,
            score_s=score,
            eval_s=evaluation,
            total_s=train + score + evaluation,
            wall_s=wall,
            accuracy=accuracy,
            f1_macro=f1,
        )
        self.rounds.append(row)
        print(
            f"  [{self.name}] round {round_:2d}/{total_rounds}  {n_labeled:5d} labelled  "
            f"train {train:6.2f} s  score {score:6.2f} s  eval {evaluation:5.2f} s  (wall {wall:6.2f} s)  "
            f"acc {accuracy:.4f}  F1 {f1:.4f}",
            flush=True,
        )

    def summary(self) -> dict:
        """Means over rounds >= 1 (round 0 has no scoring and pays one-time tracing), and the final scores."""
        later = [r for r in self.rounds if r["round"] >= 1] or self.rounds
        means = {
            key: float(np.mean([r[key] for r in later]))
            for key in ("total_s", "train_s", "score_s", "eval_s", "wall_s")
        }
        last = self.rounds[-1]
        return {
            **means,
            "final_accuracy": last["accuracy"],
            "final_f1_macro": last["f1_macro"],
            "final_n_labeled": last["n_labeled"],
        }


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of the Conv2D and Dense layers for one image; pooling and activations ignored."""
    flops, shape = 0, tuple(model.input_shape)
    for layer in model.layers:
        out = tuple(layer.compute_output_shape(shape))
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            flops += 2 * out[1] * out[2] * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            n_in, n_out = layer.kernel.shape
            flops += 2 * n_in * n_out
        shape = out
    return int(flops)


def matmul_gflops(n: int, repeats: int = MATMUL_REPEATS, dtype: str = "float32") -> float:
    """tf.matmul throughput on n x n matrices of `dtype` (float32 or bfloat16): the arithmetic limit."""
    rng = np.random.default_rng(0)  # NumPy, not tf.random: op determinism wants seeded TF ops
    a = tf.cast(tf.constant(rng.standard_normal((n, n), dtype=np.float32)), dtype)
    b = tf.cast(tf.constant(rng.standard_normal((n, n), dtype=np.float32)), dtype)
    # reduce_sum makes the timed call wait for the product without copying n x n floats out.
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    product(a, b).numpy()
    seconds = best_of(repeats, lambda: product(a, b).numpy())
    return 2 * n**3 / seconds / 1e9


# The project's loop, timed round by round (section 2, and the memory child).


def run_project_loop(
    name: str, pool: Split, test: Split, strategy: str, al: ALParams, model_params: ModelParams, seed: int
) -> LoopStats:
    stats = LoopStats(name)
    last = [time.perf_counter()]

    def on_round(state: LoopState, result: RoundResult, cnn: CNN) -> None:
        # Wall time between callbacks also counts what RoundResult leaves out (pool bookkeeping, the strategy).
        now = time.perf_counter()
        wall, last[0] = now - last[0], now
        stats.add(
            result.round,
            result.n_labeled,
            result.train_seconds,
            result.score_seconds,
            result.eval_seconds,
            wall,
            result.accuracy,
            result.f1_macro,
            al.rounds,
        )

    cnn = CNN(pool.x.shape[1:], pool.y.shape[1], model_params)
    state = run_loop(
        pool,
        test,
        strategy,
        al,
        cnn,
        seed,
        options=al.options(strategy),
        retrain_from_scratch=model_params.retrain_from_scratch,
        on_round=on_round,
    )
    stats.labeled = list(state.labeled)
    return stats


def describe_config(al: ALParams, mp: ModelParams) -> str:
    return (
        f"pool_subsample={al.pool_subsample}, epochs={mp.epochs}, validation_fraction={mp.validation_fraction}, "
        f"early_stopping_patience={mp.early_stopping_patience}, predict_batch_size={mp.predict_batch_size}"
    )


def compare(baseline: dict, ours: dict) -> dict:
    """Ratios baseline / ours per part, and the final-accuracy difference in points."""
    out = {
        f"speedup_{key}": ratio(baseline[f"{key}_s"], ours[f"{key}_s"])
        for key in ("total", "train", "score", "eval", "wall")
    }
    out["accuracy_diff_points"] = 100.0 * (ours["final_accuracy"] - baseline["final_accuracy"])
    out["f1_diff_points"] = 100.0 * (ours["final_f1_macro"] - baseline["final_f1_macro"])
    return out
