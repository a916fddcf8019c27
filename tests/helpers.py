"""What several test files share: files in the exact upstream formats, tiny projects, params edits.

Test files import these as ``from helpers import ...`` (pyproject.toml puts tests/ on the path);
fixtures live in conftest.py. Everything here is tiny and offline.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy import strategies
from alstudy.data.datasets import FASHION_MNIST
from alstudy.data.preprocess import Split, one_hot, write_splits
from alstudy.learning.learner import Inference
from alstudy.params import ALParams
from alstudy.study.summary import Curves

REPO_ROOT = Path(__file__).resolve().parent.parent


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_BATCH_DIR = "cifar-10-batches-bin"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch.bin"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def copy_repo(dest: Path) -> None:
    """The files git tracks, committed into a fresh repository (DVC needs one)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "copy"], cwd=dest, check=True)


def dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # the venv: `python` in dvc.yaml must be this one
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store at the project root is under test
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(Path(bin_dir) / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def debian_fashion_mnist_installed() -> bool:
    return all((DEBIAN_FASHION_MNIST / name).is_file() for name in FASHION_FILES)


requires_debian_fashion_mnist = pytest.mark.skipif(
    not debian_fashion_mnist_installed(),
    reason=f"Debian's dataset-fashion-mnist is not installed at {DEBIAN_FASHION_MNIST}",
)


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gzip_bytes(data: bytes, level: int = 9) -> bytes:
    """Deterministic gzip (mtime 0, no file name in the header): same data, same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level, mtime=0, filename="") as stream:
        stream.write(data)
    return buf.getvalue()


# --------------------------------------------------------------------------- IDX / Fashion-MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """The uncompressed IDX encoding of a uint8 array: magic, big-endian uint32 dims, data."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"IDX test files hold uint8, got {array.dtype}")
    magic = (0x08 << 8) | array.ndim  # 0x00000803 for images, 0x00000801 for labels
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx_gz(path, array) -> Path:
    """Write a uint8 array in the upstream IDX format, gzip-compressed.

    Big-endian magic 0x00000803 for 3-D images or 0x00000801 for 1-D labels
    (in general 0x0000080<ndim>), then each dimension as a big-endian uint32,
    then the raw bytes in C order. The gzip stream is deterministic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip_bytes(idx_bytes(array)))
    return path


def fashion_mnist_arrays(n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays make_fashion_mnist_dir writes: random 28x28 uint8 images, labels i % 10."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": ((np.arange(n_test) + 3) % 10).astype(np.uint8),
    }


def make_fashion_mnist_dir(folder, n_train=60, n_test=20, seed=0) -> dict[str, str]:
    """Write the four upstream Fashion-MNIST file names into `folder` with tiny random data.

    Images are random 28x28 uint8; labels cycle through 0-9, so every class is
    present (exactly n/10 per class when n is a multiple of 10). The expected
    arrays are ``fashion_mnist_arrays(n_train, n_test, seed)``.
    Returns {file name: "sha256:<hex of the .gz bytes>"} for params ``download.checksums``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fashion_mnist_arrays(n_train, n_test, seed)
    contents = dict(zip(FASHION_FILES, (arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])))
    checksums = {}
    for name, array in contents.items():
        path = write_idx_gz(folder / name, array)
        checksums[name] = "sha256:" + sha256_of(path)
    return checksums


# --------------------------------------------------------------------------- CIFAR-10


def cifar10_arrays(n_per_batch: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """The decoded arrays make_cifar10_archive's archive must give (NHWC uint8, labels uint8).

    Pixels are random, except the first training image, which has a known
    pattern: R = 255 everywhere, G = 0 everywhere, B[row, col] = row * 8 + col % 8
    (rows differ from columns, so a swapped H/W or a wrong channel order shows).
    Labels cycle through 0-9 over the whole train split, so every class is present.
    """
    rng = np.random.default_rng(seed)
    n_train = 5 * n_per_batch
    x_train = rng.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_per_batch, 32, 32, 3), dtype=np.uint8)
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    x_train[0, :, :, 0] = 255
    x_train[0, :, :, 1] = 0
    x_train[0, :, :, 2] = (rows * 8 + cols % 8).astype(np.uint8)
    return {
        "x_train": x_train,
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": x_test,
        "y_test": ((np.arange(n_per_batch) + 7) % 10).astype(np.uint8),
    }


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Upstream binary records: 1 label byte, then 1024 R, 1024 G, 1024 B bytes (row-major 32x32)."""
    planes = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), 3072)
    records = np.concatenate([labels.reshape(-1, 1).astype(np.uint8), planes], axis=1)
    return records.tobytes()


def cifar10_members(n_per_batch: int = 10, seed: int = 0) -> dict[str, bytes]:
    """{member name: bytes} of the upstream archive layout (regular files only)."""
    arrays = cifar10_arrays(n_per_batch, seed)
    members = {}
    for i, name in enumerate(CIFAR_TRAIN_BATCHES):
        part = slice(i * n_per_batch, (i + 1) * n_per_batch)
        members[f"{CIFAR_BATCH_DIR}/{name}"] = cifar_batch_bytes(arrays["x_train"][part], arrays["y_train"][part])
    members[f"{CIFAR_BATCH_DIR}/{CIFAR_TEST_BATCH}"] = cifar_batch_bytes(arrays["x_test"], arrays["y_test"])
    members[f"{CIFAR_BATCH_DIR}/batches.meta.txt"] = ("\n".join(CIFAR_CLASSES) + "\n").encode()
    members[f"{CIFAR_BATCH_DIR}/readme.html"] = b"<html><body>CIFAR-10 test copy</body></html>\n"
    return members


def write_tar_gz(
    path, members: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None, directory: str | None = CIFAR_BATCH_DIR
) -> Path:
    """A deterministic tar.gz of `members` ({name: bytes}), with optional raw TarInfo entries (links...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        if directory:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    path.write_bytes(gzip_bytes(tar_buf.getvalue()))
    return path


def make_cifar10_archive(folder, n_per_batch=10, seed=0) -> dict[str, str]:
    """Write `folder/cifar-10-binary.tar.gz` in the upstream layout with tiny data.

    Members: cifar-10-batches-bin/ (directory), data_batch_1.bin .. data_batch_5.bin,
    test_batch.bin (each n_per_batch records of 1 label byte + 3072 pixel bytes:
    1024 R, 1024 G, 1024 B, row-major 32x32), batches.meta.txt (the 10 class
    names, one per line) and readme.html. The expected decoded arrays are
    ``cifar10_arrays(n_per_batch, seed)``.
    Returns {"cifar-10-binary.tar.gz": "sha256:<hex>"} for params ``download.checksums``.
    """
    path = write_tar_gz(Path(folder) / CIFAR_ARCHIVE, cifar10_members(n_per_batch, seed))
    return {CIFAR_ARCHIVE: "sha256:" + sha256_of(path)}


# --------------------------------------------------------------------------- params / project


def _deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and value:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_params(folder) -> dict:
    return yaml.safe_load((Path(folder) / "params.yaml").read_text())


def write_params(folder, **overrides) -> dict:
    """Rewrite `folder/params.yaml`, deep-merging one mapping per section.

    ``write_params(tmp, al={"query_size": 0}, download={"sources": {"cifar10": [url]}})``
    changes just those keys; a non-dict value (or an empty dict) replaces the key
    outright. Returns the full mapping written.
    """
    params = _deep_merge(read_params(folder), overrides)
    (Path(folder) / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


# --------------------------------------------------------------------------- image folders

FOLDER_CLASSES = ("bolt", "gear", "nut")


def make_image_folder(root: Path, per_class: int = 6, seed: int = 0, classes: tuple[str, ...] = FOLDER_CLASSES) -> Path:
    """`root/<class>/<image>` with Pillow: PNG and JPEG, RGB, RGBA and greyscale, mixed sizes.

    Each class brightens its own horizontal band, so a model can tell them apart."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    kinds = [("RGB", "png"), ("L", "png"), ("RGB", "jpg"), ("L", "jpeg"), ("RGBA", "png")]
    sizes = [(20, 30), (40, 40), (33, 17), (64, 48)]
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            mode, ext = kinds[i % len(kinds)]
            w, h = sizes[(i + c) % len(sizes)]
            pixels = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
            band = slice(c * h // len(classes), (c + 1) * h // len(classes))
            pixels[band] += 180
            image = Image.fromarray(pixels, "RGB").convert(mode)
            image.save(folder / f"img_{i:03d}.{ext}")
    return root


def truncate_file(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --------------------------------------------------------------------------- a tiny learnable project

REPO = REPO_ROOT


def machine_precision() -> str:
    """params.yaml's precision (bfloat16) where this CPU has bfloat16 units, else float32: the tests run
    the default wherever they can, and run at all on a CPU that would stop a bfloat16 run at start."""
    from alstudy.learning.model import cpu_has_bfloat16

    return "bfloat16" if cpu_has_bfloat16() else "float32"


TINY = {
    "model": {
        "precision": machine_precision(),
        "filters": [4, 8, 8],
        "dense_units": 16,
        "epochs": 3,
        "batch_size": 16,
        "predict_batch_size": 64,
    },
    "al": {
        "strategies": list(strategies.STRATEGIES),
        "seeds": [0],
        "initial_size": 20,
        "query_size": 10,
        "rounds": 3,
        "log_models": "every",
    },
}


def learnable_split(n: int, seed: int) -> Split:
    """28x28 images whose class sets the brightness of one of ten horizontal bands, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    x = rng.uniform(0, 0.3, size=(n, 28, 28, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        x[i, 2 * c + 4 : 2 * c + 6, :, 0] += 0.7
    return Split(np.clip(x, 0, 1), one_hot(labels, 10))


def make_project(
    root: Path, overrides: dict | None = None, dataset: str = "fashion_mnist", copy_code: bool = False
) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["datasets"] = [dataset]
    for section, values in {**TINY, **(overrides or {})}.items():
        params[section].update(values)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    if copy_code:  # a copy the test may edit (stages run from the project import it, not the installed one)
        shutil.copytree(REPO / "alstudy", root / "alstudy", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        (root / "alstudy").symlink_to(REPO / "alstudy")  # checkpoint fingerprints read the code
    (root / "stages").symlink_to(REPO / "stages")  # `python -m stages.al` from the project, as DVC runs it
    write_splits(
        root / "data" / "prepared" / dataset,
        learnable_split(120, 0),
        learnable_split(40, 1),
        {"dataset": dataset, "class_names": list(FASHION_MNIST.class_names)},
    )
    return root


# --------------------------------------------------------------------------- a fake learner for the loop

N_POOL, N_TEST, N_CLASSES, HIDDEN, PASSES = 60, 10, 3, 4, 5


class FakeLearner:
    """Hand-made outputs per image, no training. Each image's first pixel holds its id."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = N_POOL + N_TEST
        self.proba = rng.dirichlet(np.ones(N_CLASSES), size=n).astype(np.float32)
        self.embeddings = rng.normal(size=(n, HIDDEN)).astype(np.float32)
        self.mc_proba = rng.dirichlet(np.ones(N_CLASSES), size=(n, PASSES)).transpose(0, 2, 1).astype(np.float32)
        self.weights, self.bias = rng.normal(size=(HIDDEN, N_CLASSES)), rng.normal(size=N_CLASSES)
        self.calls: list[dict] = []

    def last_layer(self) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append({"call": "last_layer"})
        return self.weights, self.bias

    def reinitialize(self, seed: int) -> None:
        self.calls.append({"call": "reinitialize", "seed": seed})

    def fit(self, x, y, seed: int) -> int:
        self.calls.append({"call": "fit", "n": len(x), "seed": seed})
        return 1

    def infer(self, images, rows=None, *, embeddings=False, mc_passes=0, mc_seed=0) -> Inference:
        batch = images if rows is None else images[rows]
        ids = np.asarray(batch)[:, 0, 0, 0].astype(int)
        self.calls.append(
            {"call": "infer", "ids": ids.tolist(), "embeddings": embeddings, "mc_passes": mc_passes, "mc_seed": mc_seed}
        )
        mc = self.mc_proba[ids][:, :, :mc_passes] if mc_passes else None
        return Inference(self.proba[ids], self.embeddings[ids] if embeddings else None, mc)


def fake_split(first_id: int, n: int) -> Split:
    x = np.zeros((n, 2, 2, 1), np.float32)
    x[:, 0, 0, 0] = np.arange(first_id, first_id + n)
    return Split(x, one_hot(np.arange(n) % N_CLASSES, N_CLASSES))


POOL, TEST = fake_split(0, N_POOL), fake_split(N_POOL, N_TEST)


def al_params(name: str, **overrides) -> ALParams:
    values = {
        "strategies": [name],
        "strategy_options": {name: {}},
        "initial_size": 12,
        "query_size": 6,
        "rounds": 2,
        **overrides,
    }
    return ALParams(**values)


# --------------------------------------------------------------------------- learning curves by hand


def curves(accuracy, n_labeled=(100, 200, 300, 400), f1=None) -> Curves:
    accuracy = np.asarray(accuracy, dtype=float)
    f1 = accuracy if f1 is None else np.asarray(f1, dtype=float)
    seeds, rounds = accuracy.shape
    return Curves(
        seeds=list(range(seeds)),
        n_labeled=np.asarray(n_labeled),
        accuracy=accuracy,
        balanced_accuracy=accuracy - 0.01,
        f1_macro=f1,
        f1_per_class=np.zeros((seeds, rounds, 3)),
        queried_classes=np.ones((seeds, 3)),
    )


# Running the al stage in a test project, and crashing it on purpose (tests/learning).


def run_al(project: Path, monkeypatch, strategy: str = "entropy", seed: int = 0, dataset: str = "fashion_mnist"):
    from stages import al

    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    al.main(["--dataset", dataset, "--strategy", strategy, "--seed", str(seed)])
    return project / "results" / dataset / strategy / f"s{seed}"


def runs_of(project: Path, kind: str) -> list:
    """The project's MLflow runs of one kind: "cell" (one per dataset x strategy x seed) or "summary"
    (a study's parent)."""
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(
        experiment_names=["deep-active-learning"], output_format="list", filter_string=f"tags.kind = '{kind}'"
    )


def read_csv(path: Path) -> list[dict]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


def comparable(out: Path) -> tuple:
    rounds = json.loads((out / "rounds.json").read_text())
    drop = {"train_seconds", "score_seconds", "eval_seconds"}
    return read_csv(out / "queries.csv"), [{k: v for k, v in r.items() if k not in drop} for r in rounds]


def crash_and_resume(project: Path, monkeypatch, strategy: str = "entropy") -> Path:
    """Run the cell, stop it (KeyboardInterrupt) right after round 1's checkpoint, before MLflow sees
    round 1, then run it again: it resumes."""
    from alstudy.learning import checkpoint

    real_save = checkpoint.save

    def save_then_die(folder, state, *args, **kwargs):
        real_save(folder, state, *args, **kwargs)
        if state.next_round == 2:  # rounds 0 and 1 are checkpointed; MLflow has not seen round 1
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_al(project, monkeypatch, strategy=strategy)
    monkeypatch.setattr(checkpoint, "save", real_save)
    return run_al(project, monkeypatch, strategy=strategy)


def assert_one_finished_run(project: Path, rounds: int) -> None:
    """One MLflow run for the cell, FINISHED, no step logged twice, still under its study's parent."""
    (run,) = runs_of(project, "cell")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "accuracy")]
    assert steps == list(range(rounds + 1))
    (parent,) = runs_of(project, "summary")
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


def crash_after_round_zero(project: Path, monkeypatch, strategy: str = "entropy") -> None:
    from alstudy.learning import checkpoint

    real_save = checkpoint.save

    def save_then_die(folder, state, *args, **kwargs):
        real_save(folder, state, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_al(project, monkeypatch, strategy=strategy)
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert (project / "checkpoints" / "fashion_mnist" / strategy / "s0" / "state.json").exists()


def edit_params(project: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def runs_after_rerun(project: Path, monkeypatch, strategy: str = "entropy") -> list:
    run_al(project, monkeypatch, strategy=strategy)
    return runs_of(project, "cell")


# A labelling project on real image files (tests/labelling).

LABEL_CLASSES = list(FOLDER_CLASSES)


def make_label_project(root: Path, per_class: int = 14, batch_size: int = 6) -> tuple[Path, dict[str, str]]:
    """An unlabelled flat folder (the truth kept aside), a labelled test folder, params.yaml."""
    source = make_image_folder(root / "source", per_class=per_class, classes=tuple(LABEL_CLASSES))
    unlabelled = root / "project/data/unlabelled"
    unlabelled.mkdir(parents=True)
    truth = {}
    for i, path in enumerate(sorted(source.rglob("*.*"))):
        name = f"{i:04d}{path.suffix}"
        shutil.copy(path, unlabelled / name)
        truth[name] = path.parent.name
    make_image_folder(root / "project/data/test", per_class=4, seed=7, classes=tuple(LABEL_CLASSES))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["model"].update(precision=machine_precision())
    params["model"].update(filters=[4, 8, 8], dense_units=16, epochs=3, batch_size=8, predict_batch_size=64)
    params["label"] = {
        "projects": {
            "parts": {
                "unlabelled": "data/unlabelled",
                "classes": LABEL_CLASSES,
                "strategy": "margin",
                "batch_size": batch_size,
                "image_size": [16, 16],
                "color_mode": "rgb",
                "test": "data/test",
            }
        }
    }
    (root / "project/params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root / "project", truth


def label(project: Path, monkeypatch, *args: str) -> None:
    from stages import label as stage

    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    stage.main(list(args))
