"""Time and peak memory of `alstudy label next` on a large folder of real images. Run by hand.

Writes --images unlabelled 64 x 64 RGB PNGs (Fashion-MNIST from Debian, upscaled and tinted so
every file differs), a 200-image labelled folder and a 500-image test folder, once, under
--work; then, in a project there, runs `next` (decodes every image into the cache, trains,
scores every unlabelled image), imports that batch as a person would, and runs `next` again
(decodes nothing). Each `next` is its own process; its wall time and peak resident memory
(ru_maxrss of that process, from wait4) are printed. Target (issue 23): under 2 GB peak at
100,000 images, and a second `next` that decodes nothing.

    python -m benchmarks.bench_label --images 100000 --work /tmp/label-bench
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from alstudy.data.idx import read_fashion_mnist
from alstudy.learning.model import cpu_has_bfloat16
from alstudy.runner import run_stage

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
SIZE = 64
PER_FOLDER = 1000  # images per sub-folder, as cameras and exports lay them out
MEMORY_TARGET_MB = 2048


def rgb(image: np.ndarray, index: int) -> Image.Image:
    """A 28 x 28 grey image as a 64 x 64 RGB one, tinted by its index (so no two files are equal)."""
    tint = np.array([1.0, 0.6 + 0.4 * ((index * 7) % 11) / 10, 0.6 + 0.4 * ((index * 3) % 13) / 12])
    pixels = (image[..., None].astype(np.float32) * tint).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def write_images(work: Path, n_images: int, n_labelled: int = 200, n_test: int = 500) -> dict[str, str]:
    """The three folders (kept between runs when the counts match); the unlabelled images' truth."""
    truth_file, counts = work / "truth.json", work / "counts.json"
    wanted = {"unlabelled": n_images, "labelled": n_labelled, "test": n_test}
    if truth_file.is_file() and counts.is_file() and json.loads(counts.read_text()) == wanted:
        return json.loads(truth_file.read_text())
    shutil.rmtree(work, ignore_errors=True)
    x_train, y_train, x_test, y_test = read_fashion_mnist(FASHION)
    truth, start = {}, time.perf_counter()
    for i in range(n_images):
        j = (i + 700) % len(x_train)  # the first 700 images go to the labelled and test folders
        path = Path(f"part-{i // PER_FOLDER:03d}") / f"img-{i:06d}.png"
        (work / "project/data/unlabelled" / path.parent).mkdir(parents=True, exist_ok=True)
        rgb(x_train[j], i).save(work / "project/data/unlabelled" / path)
        truth[str(path)] = CLASSES[int(y_train[j])]
        if (i + 1) % 10000 == 0:
            print(f"  wrote {i + 1} / {n_images} images ({time.perf_counter() - start:.0f} s)", flush=True)
    for folder, images, labels, count in (("labelled", x_train, y_train, n_labelled), ("test", x_test, y_test, n_test)):
        for i in range(count):
            target = work / "project/data" / folder / CLASSES[int(labels[i])] / f"{folder}-{i:04d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            rgb(images[i], i).save(target)
    truth_file.write_text(json.dumps(truth))
    counts.write_text(json.dumps(wanted))
    return truth


def write_project(project: Path, batch_size: int, min_steps: int) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["label"] = {
        "projects": {
            "bench": {
                "unlabelled": "data/unlabelled",
                "labelled": "data/labelled",
                "test": "data/test",
                "classes": CLASSES,
                "strategy": "margin",
                "batch_size": batch_size,
                "image_size": [SIZE, SIZE],
                "color_mode": "rgb",
                "min_steps": min_steps,
            }
        }
    }
    if params["model"].get("precision") == "bfloat16" and not cpu_has_bfloat16():
        print("bench: this CPU has no bfloat16 units: `label next` trains in float32 here", file=sys.stderr)
        params["model"]["precision"] = "float32"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stale in ("labels", "labelling", ".cache", "mlflow.db"):
        target = project / stale
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


def timed(project: Path, *args: str) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and stderr of one `alstudy label` process."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    command = [str(Path(sys.executable).parent / "alstudy"), "label", *args]
    start = time.perf_counter()
    with open(project / "bench.log", "a+") as log:
        offset = log.tell()
        process = subprocess.Popen(command, cwd=project, env=env, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        log.seek(offset)
        text = log.read()
    if process.returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` failed:\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def fill_batch(project: Path, number: int, truth: dict[str, str]) -> Path:
    manifest = project / f"labelling/bench/batch-{number:03d}/manifest.csv"
    with open(manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    filled = project / f"filled-{number}.csv"
    with open(filled, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "label": truth[row["path"]]} for row in rows)
    return filled


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000, help="unlabelled images (default 100000)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/alstudy-label-bench"), help="where the images go")
    parser.add_argument("--labelled", type=int, default=200, help="labelled images to start from (at most 700)")
    parser.add_argument("--test", type=int, default=500, help="labelled test images (at most 10000)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--min-steps", type=int, default=500, help="the suggestion model's (default 500)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    print(f"images: {args.images} unlabelled {SIZE}x{SIZE} RGB PNGs under {args.work}", flush=True)
    truth = write_images(args.work, args.images, args.labelled, args.test)
    project = args.work / "project"
    write_project(project, args.batch_size, args.min_steps)
    (project / "bench.log").unlink(missing_ok=True)
    first = timed(project, "next")
    decoded_first = first[2].count("new or changed images")
    timed(project, "import", str(fill_batch(project, 1, truth)))
    second = timed(project, "next")
    decoded_again = "new or changed images" in second[2]
    figures = {
        "images": args.images,
        "first_next_seconds": round(first[0], 1),
        "first_next_peak_mb": round(first[1]),
        "second_next_seconds": round(second[0], 1),
        "second_next_peak_mb": round(second[1]),
        "second_next_decoded_images": decoded_again,
        "cache_mb": round(sum(f.stat().st_size for f in (project / ".cache").rglob("*") if f.is_file()) / 2**20),
    }
    print(
        f"first next:  {first[0]:7.1f} s, peak {first[1]:6.0f} MB (decodes every image; progress lines: "
        f"{decoded_first})"
    )
    print(f"second next: {second[0]:7.1f} s, peak {second[1]:6.0f} MB (decoded again: {decoded_again})")
    peak = max(first[1], second[1])
    verdict = "within" if peak < MEMORY_TARGET_MB else "OVER"
    print(f"peak {peak:.0f} MB: {verdict} the {MEMORY_TARGET_MB} MB target; cache {figures['cache_mb']} MB on disk")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main)
