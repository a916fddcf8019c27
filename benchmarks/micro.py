"""Micro-benchmarks: pool scoring against the best compiled forward pass, the arithmetic limit,
peak memory on a CIFAR-10-sized memory-mapped pool (in a subprocess), and MLflow's log_model cost.
(Training throughput, which needs one process per thread count, is in training.py.)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alstudy.data.preprocess import load_splits, one_hot
from alstudy.learning.loop import initial_draw
from alstudy.learning.model import CNN, build_cnn, cpu_has_bfloat16, set_seed
from alstudy.params import ALParams, ModelParams
from benchmarks.common import (
    MATMUL_REPEATS,
    MATMUL_SIZES,
    ROOT,
    best_of,
    forward_flops,
    heading,
    matmul_gflops,
    project_params,
    run_project_loop,
)

SCORING_BATCH_SIZES = (256, 1024, 2048, 4096, 8192)


def bench_scoring(
    data_dir: Path, pool_size: int | None, model_params: ModelParams, initial_size: int, seed: int
) -> dict:
    heading("3. SCORING vs BEST COMPILED FORWARD PASS")
    train, _ = load_splits(data_dir)
    x_mapped = train.x[:pool_size] if pool_size else train.x
    unlabeled = np.setdiff1d(np.arange(len(x_mapped)), initial_draw(len(x_mapped), initial_size, seed))
    x_pool = np.ascontiguousarray(x_mapped[unlabeled], dtype=np.float32)  # the best case: contiguous, in RAM
    n = len(x_pool)
    set_seed(seed)
    model = build_cnn(x_pool.shape[1:], train.y.shape[1], model_params)
    print(f"pool: {n} unlabelled images {x_pool.shape[1:]}; random seeded weights", flush=True)

    # Each configuration traces its own function for two shapes; TF's retracing warning is expected noise here.
    tf_logger, tf_level = tf.get_logger(), tf.get_logger().level
    tf_logger.setLevel(logging.ERROR)
    forward_results = []
    for jit in (False, True):
        for batch_size in SCORING_BATCH_SIZES:
            forward = tf.function(lambda x: model(x, training=False), jit_compile=jit)

            def one_pass(forward=forward, batch_size=batch_size):
                for start in range(0, n, batch_size):
                    forward(x_pool[start : start + batch_size]).numpy()

            # Warm up once: trace (and with XLA compile) the full and the last, partial batch shape.
            forward(x_pool[:batch_size]).numpy()
            if n > batch_size and n % batch_size:
                forward(x_pool[: n % batch_size]).numpy()
            seconds = best_of(2, one_pass)
            forward_results.append(
                {"jit_compile": jit, "batch_size": batch_size, "seconds": seconds, "images_per_s": n / seconds}
            )
            print(
                f"  tf.function forward  jit_compile={str(jit):5s}  batch {batch_size:5d}: "
                f"{n / seconds:9.0f} images/s  ({seconds:.2f} s)",
                flush=True,
            )
    tf_logger.setLevel(tf_level)
    best = max(forward_results, key=lambda r: r["images_per_s"])

    # The project's path: the memory-mapped pool, rows gathered a batch at a time.
    cnn = CNN(x_pool.shape[1:], train.y.shape[1], model_params, model=model)
    cnn.predict_proba(x_mapped, unlabeled)  # warm-up pass: traces, and brings the file into the page cache
    ours_s = best_of(2, lambda: cnn.predict_proba(x_mapped, unlabeled))
    ours_ips = n / ours_s
    share = ours_ips / best["images_per_s"]
    print(
        f"  project CNN.predict_proba (memmap, rows, batch {model_params.predict_batch_size}): "
        f"{ours_ips:9.0f} images/s  ({ours_s:.2f} s) = {100 * share:.0f}% of the best "
        f"(jit_compile={best['jit_compile']}, batch {best['batch_size']})",
        flush=True,
    )

    # The same path and weights in the other precision (model.precision), where the CPU has bfloat16 units.
    precisions = {model_params.precision: ours_ips}
    other = "bfloat16" if model_params.precision == "float32" else "float32"
    if cpu_has_bfloat16():
        other_cnn = CNN(x_pool.shape[1:], train.y.shape[1], model_params.model_copy(update={"precision": other}))
        other_cnn.model.set_weights(model.get_weights())
        other_cnn.predict_proba(x_mapped, unlabeled)
        other_s = best_of(2, lambda: other_cnn.predict_proba(x_mapped, unlabeled))
        precisions[other] = n / other_s
        print(
            f"  project CNN.predict_proba in {other}: {n / other_s:9.0f} images/s  ({other_s:.2f} s); bfloat16 "
            f"{precisions['bfloat16'] / precisions['float32']:.2f}x float32",
            flush=True,
        )
    else:
        print("  bfloat16 scoring: skipped, this CPU has neither AVX512-BF16 nor AMX-BF16", flush=True)

    # Reference: what the baseline scores with.
    model.predict(x_pool[:64], verbose=0)
    keras_s = best_of(1, lambda: model.predict(x_pool, verbose=0))
    print(
        f"  Keras model.predict default (batch 32, reference): {n / keras_s:9.0f} images/s  ({keras_s:.2f} s)",
        flush=True,
    )
    return {
        "n_images": n,
        "forward": forward_results,
        "best": best,
        "project_seconds": ours_s,
        "project_images_per_s": ours_ips,
        "project_share_of_best": share,
        "project_precision": model_params.precision,
        "project_images_per_s_by_precision": precisions,
        "keras_predict_seconds": keras_s,
        "keras_predict_images_per_s": n / keras_s,
        "_model": model,
    }


def bench_arithmetic(model: keras.Model, scoring: dict | None, matmul_sizes=MATMUL_SIZES) -> dict:
    heading("4. ARITHMETIC LIMIT")
    flops = forward_flops(model)
    print(f"  forward pass: {flops / 1e6:.2f} MFLOP per image (Conv2D + Dense)", flush=True)
    matmul, matmul_bf16 = {}, {}
    for n in matmul_sizes:
        matmul[n] = matmul_gflops(n)
        print(f"  tf.matmul float32 {n}x{n}: {matmul[n]:7.1f} GFLOP/s (best of {MATMUL_REPEATS})", flush=True)
        if cpu_has_bfloat16():
            matmul_bf16[n] = matmul_gflops(n, dtype="bfloat16")
            print(
                f"  tf.matmul bfloat16 {n}x{n}: {matmul_bf16[n]:7.1f} GFLOP/s ({matmul_bf16[n] / matmul[n]:.1f}x "
                f"float32)",
                flush=True,
            )
    peak = max(matmul.values())
    out = {
        "flops_per_image": flops,
        "matmul_gflops": {str(k): v for k, v in matmul.items()},
        "matmul_best_gflops": peak,
        "matmul_bfloat16_gflops": {str(k): v for k, v in matmul_bf16.items()},
        "matmul_bfloat16_best_gflops": max(matmul_bf16.values(), default=None),
    }
    if scoring:
        # Each throughput against the matmul of the precision it ran in (the model's is model.precision).
        peaks = {"float32": peak, "bfloat16": out["matmul_bfloat16_best_gflops"]}
        own = scoring["project_precision"]
        for key, label, ips in (
            ("project", "project scoring", scoring["project_images_per_s"]),
            ("best_forward", "best forward pass", scoring["best"]["images_per_s"]),
        ):
            gflops = ips * flops / 1e9
            out[f"{key}_gflops"], out[f"{key}_share_of_matmul"] = gflops, gflops / peaks[own]
            print(
                f"  {label:18s}: {gflops:7.1f} GFLOP/s = {100 * gflops / peaks[own]:.0f}% of {own} matmul", flush=True
            )
        for precision, ips in scoring["project_images_per_s_by_precision"].items():
            if precision == own or not peaks.get(precision):
                continue
            gflops = ips * flops / 1e9
            out[f"project_{precision}_gflops"] = gflops
            out[f"project_{precision}_share_of_matmul"] = gflops / peaks[precision]
            print(
                f"  project scoring, {precision}: {gflops:7.1f} GFLOP/s = "
                f"{100 * gflops / peaks[precision]:.0f}% of {precision} matmul",
                flush=True,
            )
    return out


def make_synthetic_cifar(
    folder: Path, n_train: int, n_test: int, seed: int, shape: tuple[int, int, int] = (32, 32, 3)
) -> None:
    """Random float32 splits (CIFAR-10's 32x32x3 by default) written through open_memmap a chunk at a
    time, never whole in RAM."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        x = np.lib.format.open_memmap(folder / f"x_{split}.npy", mode="w+", dtype=np.float32, shape=(n, *shape))
        for start in range(0, n, 2000):
            stop = min(start + 2000, n)
            x[start:stop] = rng.random((stop - start, *shape), dtype=np.float32)
        x.flush()
        del x
        np.save(folder / f"y_{split}.npy", one_hot(rng.integers(0, 10, size=n), 10))


def memory_child(folder: Path, seed: int) -> None:
    """Runs in the subprocess: the project's loop on the memory-mapped synthetic pool."""
    params = project_params()
    mp = ModelParams(**{**params.model.model_dump(), "epochs": 1, "validation_fraction": 0.0})
    al = ALParams(
        strategies=["least_confidence"],  # by its module's name: params refuse the alias `uncertainty`
        strategy_options={"least_confidence": {}},
        seeds=[seed],
        initial_size=100,
        query_size=100,
        rounds=2,
        pool_subsample=0,
        log_models="never",
    )
    pool, test = load_splits(folder)
    print(
        f"  child: run_loop, least_confidence, 100 + 2 x 100 labels, 1 epoch, pool_subsample=0, "
        f"predict_batch_size={mp.predict_batch_size} (params.yaml)",
        flush=True,
    )
    stats = run_project_loop("memory", pool, test, "least_confidence", al, mp, seed)
    print("RESULT " + json.dumps({"rounds": stats.rounds, "proc_status_kb": proc_status_kb()}), flush=True)


def proc_status_kb() -> dict[str, int]:
    """Peak and current RSS split by kind: memory-mapped pool pages show up as RssFile, not RssAnon."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    keys = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if k in keys}


def bench_memory(n_train: int, seed: int, shape: tuple[int, int, int] = (32, 32, 3)) -> dict:
    heading("5. MEMORY on a CIFAR-10-sized memory-mapped pool (subprocess)")
    n_test = max(1000, n_train // 5)
    folder = Path(tempfile.mkdtemp(prefix="bench_al_memory_"))
    try:
        start = time.perf_counter()
        make_synthetic_cifar(folder, n_train, n_test, seed, shape)
        size_mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        print(
            f"  synthetic pool {n_train}x{'x'.join(map(str, shape))} + test {n_test} float32: "
            f"{size_mb:.0f} MB on disk "
            f"in {folder} ({time.perf_counter() - start:.1f} s)",
            flush=True,
        )
        command = [sys.executable, "-m", "benchmarks.bench_al", "--memory-child", str(folder), "--seeds", str(seed)]
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        child_result = None
        for line in child.stdout:
            if line.startswith("RESULT "):
                child_result = json.loads(line[len("RESULT ") :])
            else:
                print(line, end="", flush=True)
        # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the max over every child
        # reaped so far (ru_maxrss is in KiB on Linux).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0 or child_result is None:
            raise RuntimeError(f"memory child failed with exit status {child.returncode}")
        status_mb = {k: v / 1024 for k, v in child_result["proc_status_kb"].items()}
        # The child's own high-water mark since exec (VmHWM). ru_maxrss from wait4 also counts the
        # pages the child shared with this (large) parent between fork and exec, so it is only a fallback.
        peak_mb = status_mb.get("VmHWM", usage.ru_maxrss / 1024)
        split = (
            f"; at exit RSS {status_mb['VmRSS']:.0f} MB = anonymous {status_mb['RssAnon']:.0f} + "
            f"file-backed (memory-mapped pool, libraries) {status_mb['RssFile']:.0f}"
            if status_mb
            else ""
        )
        print(f"  child peak RSS: {peak_mb:.0f} MB (data {size_mb:.0f} MB on disk{split})", flush=True)
        return {
            "n_train": n_train,
            "n_test": n_test,
            "shape": list(shape),
            "data_mb": size_mb,
            "peak_rss_mb": peak_mb,
            "child_status_mb": status_mb,
            "rounds": child_result["rounds"],
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_mlflow(model: keras.Model) -> dict:
    heading("6. MLFLOW log_model COST (temporary sqlite store)")
    import mlflow
    import mlflow.keras

    from alstudy.tracking.runs import model_requirements, model_signature

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="bench_al_mlflow_"))
    try:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        experiment = mlflow.create_experiment("bench-log-model", artifact_location=(folder / "artifacts").as_uri())
        signature, requirements = model_signature(model), model_requirements()
        # "project" as alstudy.tracking.runs.log_round logs a model
        ways = {
            "project": {"signature": signature, "pip_requirements": requirements},
            "inferred": {"signature": signature},
        }  # MLflow infers requirements
        out = {"requirements": requirements}
        with mlflow.start_run(experiment_id=experiment):
            # The first call in a process pays one-time imports; shown, but not what the target compares.
            start = time.perf_counter()
            mlflow.keras.log_model(model, name="cold", step=0, **ways["project"])
            out["cold_first_call_s"] = time.perf_counter() - start
            print(
                f"  first call in this process (project's way, one-time imports): {out['cold_first_call_s']:.2f} s",
                flush=True,
            )
            step = 1
            for way, kwargs in ways.items():
                times = []
                for i in range(2):
                    start = time.perf_counter()
                    mlflow.keras.log_model(model, name=f"{way}-{i}", step=step, **kwargs)
                    times.append(time.perf_counter() - start)
                    step += 1
                out[f"{way}_s"] = times
                label = (
                    "pinned pip_requirements + signature (project)"
                    if way == "project"
                    else "no pip_requirements (MLflow infers them)"
                )
                print(f"  {label:47s}: {', '.join(f'{t:.2f} s' for t in times)}", flush=True)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
