"""Training throughput: Keras `fit` against the project's compiled epoch, beside the matmul limit;
and the project's epoch in bfloat16 (model.precision) beside bfloat16 matmul, where the CPU has it.

TensorFlow fixes its thread count when it starts, so each thread count is measured
in a process of its own (`python -m benchmarks.training --threads N`, which prints
one RESULT line of JSON); `bench_training` runs those and collects the results.
The CNN and batch size are the project's (params.yaml); the images are the first
N of the prepared training split.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import MATMUL_SIZES, best_of, forward_flops, heading, matmul_gflops, project_params

ROOT = Path.cwd()  # the project: run from its root (params.yaml, data/prepared/)
TRAIN_FLOPS_PER_FORWARD = 3  # a training step: the forward pass, and two of its size backwards (inputs, weights)


def measure(threads: int, data_dir: Path, n_images: int, epochs: int, matmul_sizes=MATMUL_SIZES) -> dict:
    """In this process: images/s of Keras fit and of the project's training, and matmul GFLOP/s;
    the project's training and matmul in bfloat16 too where the CPU has bfloat16 units (else None)."""
    import numpy as np

    from alstudy.data.preprocess import load_splits
    from alstudy.learning.model import build_cnn, configure_tensorflow, cpu_has_bfloat16, set_seed
    from alstudy.learning.training import Trainer

    configure_tensorflow(threads)
    params = project_params().model
    pool, _ = load_splits(data_dir)
    x, y = np.ascontiguousarray(pool.x[:n_images]), np.ascontiguousarray(pool.y[:n_images])

    def fresh(precision: str = "float32"):
        set_seed(0)
        return build_cnn(x.shape[1:], y.shape[1], params.model_copy(update={"precision": precision}))

    keras_model = fresh()
    keras_model.fit(x[:256], y[:256], epochs=1, batch_size=params.batch_size, verbose=0)  # trace once
    keras_s = best_of(
        2, lambda: keras_model.fit(x, y, epochs=epochs, batch_size=params.batch_size, shuffle=True, verbose=0)
    )

    def project_seconds(precision: str):
        model = fresh(precision)
        trainer = Trainer(model, params.batch_size)
        trainer.fit(x[:256], y[:256], epochs=1, seed=0)  # trace once
        return best_of(2, lambda: trainer.fit(x, y, epochs=epochs, seed=0)), model

    project_s, project_model = project_seconds("float32")
    matmul = max(matmul_gflops(n) for n in matmul_sizes)
    train_flops = TRAIN_FLOPS_PER_FORWARD * forward_flops(project_model)
    out = {
        "threads": threads,
        "images": len(x),
        "epochs": epochs,
        "batch_size": params.batch_size,
        "matmul_gflops": matmul,
        "train_mflop_per_image": train_flops / 1e6,
    }
    timed = [("keras_fit", keras_s, matmul), ("project", project_s, matmul)]
    out["matmul_bfloat16_gflops"] = out["project_bfloat16"] = None
    if cpu_has_bfloat16():  # emulated bfloat16 would measure nothing the project runs
        out["matmul_bfloat16_gflops"] = max(matmul_gflops(n, dtype="bfloat16") for n in matmul_sizes)
        timed.append(("project_bfloat16", project_seconds("bfloat16")[0], out["matmul_bfloat16_gflops"]))
    for name, seconds, limit in timed:
        ips = len(x) * epochs / seconds
        out[name] = {
            "seconds": seconds,
            "images_per_s": ips,
            "gflops": ips * train_flops / 1e9,
            "share_of_matmul": ips * train_flops / 1e9 / limit,
        }
    return out


def bench_training(data_dir: Path, n_images: int, epochs: int, thread_counts=(1, 2), matmul_sizes=MATMUL_SIZES) -> dict:
    heading("TRAINING THROUGHPUT: Keras fit vs the project's compiled epoch (one process per thread count)")
    results = {}
    for threads in thread_counts:
        command = [
            sys.executable,
            "-m",
            "benchmarks.training",
            "--threads",
            str(threads),
            "--data-dir",
            str(data_dir),
            "--images",
            str(n_images),
            "--epochs",
            str(epochs),
            "--matmul-sizes",
            *map(str, matmul_sizes),
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"training benchmark with {threads} threads failed: {done.stderr[-2000:]}")
        r = json.loads(lines[-1][len("RESULT ") :])
        results[str(threads)] = r
        print(
            f"  {threads} thread(s): matmul {r['matmul_gflops']:6.1f} GFLOP/s | Keras fit "
            f"{r['keras_fit']['images_per_s']:6.0f} images/s ({100 * r['keras_fit']['share_of_matmul']:3.0f}% "
            f"of matmul) | project {r['project']['images_per_s']:6.0f} images/s "
            f"({100 * r['project']['share_of_matmul']:3.0f}%) | "
            f"{r['project']['images_per_s'] / r['keras_fit']['images_per_s']:.2f}x",
            flush=True,
        )
        if r["project_bfloat16"]:
            b = r["project_bfloat16"]
            print(
                f"  {threads} thread(s), bfloat16: matmul {r['matmul_bfloat16_gflops']:6.1f} GFLOP/s | project "
                f"{b['images_per_s']:6.0f} images/s ({100 * b['share_of_matmul']:3.0f}% of bfloat16 matmul) | "
                f"{b['images_per_s'] / r['project']['images_per_s']:.2f}x float32 at batch {r['batch_size']}",
                flush=True,
            )
        else:
            print(
                f"  {threads} thread(s), bfloat16: skipped, this CPU has neither AVX512-BF16 nor AMX-BF16", flush=True
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data/prepared/fashion_mnist"))
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--matmul-sizes", type=int, nargs="+", default=list(MATMUL_SIZES))
    args = parser.parse_args()
    start = time.perf_counter()
    result = measure(args.threads, args.data_dir, args.images, args.epochs, tuple(args.matmul_sizes))
    result["process_seconds"] = time.perf_counter() - start
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
