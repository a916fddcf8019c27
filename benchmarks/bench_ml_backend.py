"""Prediction latency of the live Label Studio backend (`alstudy label serve`) on a large project. Run by hand.

Writes --images unlabelled 64 x 64 RGB PNGs from Fashion-MNIST (benchmarks/bench_label.py's folders,
kept between runs), then serves the project as the backend does, on 127.0.0.1, without Label Studio
(publishing the scores to it is left out: tests/labelling/test_label_studio.py times that on a
small project). Round 1 trains on the 200-image labelled folder and ranks every image (decoding
them all into the cache the first time); then --retrain-every labels are added as the backend adds
Label Studio's annotations, and round 2 runs in its child process as it would. All along, a client
sends one-task /predict requests, one after another, as Label Studio does when a person opens a
task; their latencies are printed for the backend idle and for the backend while round 2 trains.
Target (issue 34): under 200 ms for one task with 100,000 images, retraining or not.

    python -m benchmarks.bench_ml_backend --images 100000 --work /tmp/label-bench
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import requests

from alstudy.labelling.live import record_annotations
from alstudy.labelling.ml_backend import LiveLoop, serve
from alstudy.params import load_params
from alstudy.runner import run_stage
from benchmarks.bench_label import write_images, write_project

TARGET_MS = 200


class Offline:
    """No Label Studio: the backend serves predictions and runs rounds, and publishes nowhere."""

    url = "http://127.0.0.1:9"

    def find_project(self, title):
        return None


def hammer(url: str, images: list[str], stop: threading.Event, latencies: list[tuple[float, float]]) -> None:
    """One-task /predict requests back to back: (when, milliseconds) of each."""
    session, rng = requests.Session(), np.random.default_rng(0)
    while not stop.is_set():
        task = {"id": 1, "data": {"path": images[int(rng.integers(len(images)))]}}
        start = time.perf_counter()
        answer = session.post(f"{url}/predict", json={"tasks": [task], "project": "1.1"}, timeout=30)
        answer.raise_for_status()
        latencies.append((time.monotonic(), (time.perf_counter() - start) * 1000))
        time.sleep(0.01)


def summary(values: list[float]) -> str:
    if not values:
        return "no requests"
    p50, p99 = np.percentile(values, [50, 99])
    return f"{len(values)} requests, median {p50:.1f} ms, p99 {p99:.1f} ms, max {max(values):.1f} ms"


def wait_round(loop: LiveLoop, number: int) -> float:
    start = time.monotonic()
    while loop.ranking is None or loop.ranking.round < number:
        time.sleep(0.2)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000, help="unlabelled images (default 100000)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/alstudy-label-bench"), help="where the images go")
    parser.add_argument("--retrain-every", type=int, default=20, help="labels between rounds (default 20)")
    parser.add_argument("--labelled", type=int, default=200, help="labelled images to start from (at most 700)")
    parser.add_argument("--min-steps", type=int, default=500, help="the suggestion model's (default 500)")
    parser.add_argument("--idle-seconds", type=float, default=10, help="requests timed with no round running")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    print(f"images: {args.images} unlabelled 64x64 RGB PNGs under {args.work}", flush=True)
    truth = write_images(args.work, args.images, n_labelled=args.labelled)
    project_dir = args.work / "project"
    write_project(project_dir, batch_size=100, min_steps=args.min_steps)
    os.chdir(project_dir)
    project = load_params().label.projects["bench"].model_copy(update={"retrain_every": args.retrain_every})
    loop = LiveLoop("bench", project, Offline())
    server = serve(loop, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    latencies: list[tuple[float, float]] = []
    stop = threading.Event()
    client = threading.Thread(target=hammer, args=(url, list(truth), stop, latencies), daemon=True)
    client.start()

    loop.maybe_train(force=True)
    first = wait_round(loop, 1)
    print(f"round 1 (decodes every image, trains on the labelled folder, ranks all): {first:.1f} s", flush=True)
    idle_from = time.monotonic()
    time.sleep(args.idle_seconds)
    idle = [ms for when, ms in latencies if when >= idle_from]

    ranked = sorted(loop.ranking.images, key=lambda path: -loop.ranking.images[path][2])[: args.retrain_every]
    tasks = [
        {
            "id": i,
            "data": {"path": path},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": [truth[path]]}}]}],
        }
        for i, path in enumerate(ranked)
    ]
    record_annotations("bench", project, tasks)
    training_from = time.monotonic()
    loop.maybe_train()
    second = wait_round(loop, 2)
    busy = [ms for when, ms in latencies if when >= training_from and when <= training_from + second]
    stop.set()
    client.join()
    server.shutdown()

    figures = {
        "images": args.images,
        "ranked": len(loop.ranking.images),
        "round_1_seconds": round(first, 1),
        "round_2_seconds": round(second, 1),
        "predict_idle_ms": {
            k: round(float(v), 2) for k, v in zip(("p50", "p99", "max"), (*np.percentile(idle, [50, 99]), max(idle)))
        },
        "predict_while_training_ms": {
            k: round(float(v), 2) for k, v in zip(("p50", "p99", "max"), (*np.percentile(busy, [50, 99]), max(busy)))
        },
    }
    print(f"round 2 ({args.retrain_every} new labels to new scores, without Label Studio): {second:.1f} s")
    print(f"/predict, one task, backend idle:     {summary(idle)}")
    print(f"/predict, one task, round 2 training: {summary(busy)}")
    worst = max(max(idle), max(busy))
    print(f"slowest {worst:.1f} ms: {'within' if worst < TARGET_MS else 'OVER'} the {TARGET_MS} ms target")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main)
