"""The preprocess and imbalance stages on tiny data, and the stages' one-line error contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alstudy.data.datasets import FASHION_MNIST, NOT_NEEDED_NOTE
from alstudy.data.imbalance import retention_profile, subsample_indices
from alstudy.errors import PipelineError
from helpers.formats import (
    CIFAR_ARCHIVE,
    CIFAR_BATCH_DIR,
    cifar10_arrays,
    fashion_mnist_arrays,
    make_cifar10_archive,
    make_fashion_mnist_dir,
)
from helpers.images import make_image_folder
from helpers.repo import write_params
from stages import download, folder, imbalance, preprocess

PREPARED = Path("data/prepared")
IMBALANCED = PREPARED / "fashion_mnist_imbalanced"
METRICS = Path("metrics/imbalance/fashion_mnist_imbalanced.json")
FASHION_CLASSES = list(FASHION_MNIST.class_names)


def make_variant(project: Path, name: str = "fashion_mnist_imbalanced", source: str = "fashion_mnist", **settings):
    """Declare the variant (data.imbalanced.<name>) and run its stage."""
    write_params(project, data={"imbalanced": {name: {"source": source, **settings}}})
    imbalance.main(["--dataset", name])


def load_prepared(folder: Path) -> dict[str, np.ndarray]:
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("x_train", "y_train", "x_test", "y_test")}


def prepare_fashion(n_train=60, n_test=20, seed=0) -> dict[str, np.ndarray]:
    """Tiny raw Fashion-MNIST in data/raw/fashion_mnist, then the preprocess stage; returns the source arrays."""
    make_fashion_mnist_dir(Path("data/raw/fashion_mnist"), n_train, n_test, seed)
    preprocess.main(["--dataset", "fashion_mnist"])
    return fashion_mnist_arrays(n_train, n_test, seed)


def check_one_hot(y: np.ndarray, labels: np.ndarray) -> None:
    assert y.dtype == np.float32 and y.shape == (len(labels), 10)
    assert set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(len(labels), dtype=np.float32))
    np.testing.assert_array_equal(y.argmax(axis=1), labels)


# --------------------------------------------------------------------------- preprocess


def test_preprocess_fashion_mnist(project):
    source = prepare_fashion(n_train=60, n_test=20)
    out = load_prepared(PREPARED / "fashion_mnist")

    assert isinstance(out["x_train"], np.memmap)  # mmap_mode="r" works: plain .npy files
    assert out["x_train"].shape == (60, 28, 28, 1) and out["x_test"].shape == (20, 28, 28, 1)
    for split in ("train", "test"):
        x = out[f"x_{split}"]
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
        np.testing.assert_allclose(x[..., 0], source[f"x_{split}"].astype(np.float32) / 255, rtol=0, atol=1e-7)
        check_one_hot(out[f"y_{split}"], source[f"y_{split}"])
    assert out["x_train"].max() == 1.0 and out["x_train"].min() == 0.0  # 255 -> 1, 0 -> 0

    meta = json.loads((PREPARED / "fashion_mnist" / "meta.json").read_text())
    assert meta["train_size"] == 60 and meta["test_size"] == 20
    assert meta["image_shape"] == [28, 28, 1]
    assert meta["train_class_counts"] == [6] * 10 and meta["test_class_counts"] == [2] * 10
    assert meta["class_names"][0] == "T-shirt/top" and meta["class_names"][9] == "Ankle boot"
    assert sorted(p.name for p in (PREPARED / "fashion_mnist").iterdir()) == [
        "meta.json",
        "x_test.npy",
        "x_train.npy",
        "y_test.npy",
        "y_train.npy",
    ]  # no temp files left


def test_preprocess_cifar10_after_download(project, tmp_path):
    checksums = make_cifar10_archive(tmp_path / "src", n_per_batch=6, seed=2)
    write_params(project, download={"sources": {"cifar10": [str(tmp_path / "src")]}, "checksums": checksums})
    download.main(["--dataset", "cifar10"])
    preprocess.main(["--dataset", "cifar10"])

    source = cifar10_arrays(n_per_batch=6, seed=2)
    out = load_prepared(PREPARED / "cifar10")
    assert out["x_train"].shape == (30, 32, 32, 3) and out["x_test"].shape == (6, 32, 32, 3)
    for split in ("train", "test"):
        x = out[f"x_{split}"]
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_allclose(x, source[f"x_{split}"].astype(np.float32) / 255, rtol=0, atol=1e-7)
        check_one_hot(out[f"y_{split}"], source[f"y_{split}"])
    # The known first image: red plane all 1, green all 0.
    assert (out["x_train"][0, :, :, 0] == 1.0).all() and (out["x_train"][0, :, :, 1] == 0.0).all()
    meta = json.loads((PREPARED / "cifar10" / "meta.json").read_text())
    assert meta["image_shape"] == [32, 32, 3] and meta["train_size"] == 30 and meta["class_names"][0] == "airplane"


def test_preprocess_skips_a_dataset_not_in_data_datasets(project):
    write_params(project, data={"datasets": ["cifar10"]})
    make_fashion_mnist_dir(Path("data/raw/fashion_mnist"))
    preprocess.main(["--dataset", "fashion_mnist"])
    # Not empty, so DVC does not warn about an empty output at each repro: a note says why nothing is there.
    assert [p.name for p in (PREPARED / "fashion_mnist").iterdir()] == [NOT_NEEDED_NOTE]
    assert "not in data.datasets" in (PREPARED / "fashion_mnist" / NOT_NEEDED_NOTE).read_text()


def test_a_dataset_taken_into_data_datasets_loses_the_not_needed_note(project, tmp_path):
    checksums = make_cifar10_archive(tmp_path / "src", n_per_batch=2)
    sources = {"sources": {"cifar10": [str(tmp_path / "src")]}, "checksums": checksums}
    write_params(project, data={"datasets": ["fashion_mnist"]}, download=sources)
    download.main(["--dataset", "cifar10"])
    preprocess.main(["--dataset", "cifar10"])
    assert (Path("data/raw/cifar10") / NOT_NEEDED_NOTE).is_file() and (PREPARED / "cifar10" / NOT_NEEDED_NOTE).is_file()

    write_params(project, data={"datasets": ["cifar10"]}, download=sources)
    download.main(["--dataset", "cifar10"])  # DVC keeps the persisted raw folder, note and all
    preprocess.main(["--dataset", "cifar10"])
    assert (
        not (Path("data/raw/cifar10") / NOT_NEEDED_NOTE).exists()
        and (Path("data/raw/cifar10") / CIFAR_BATCH_DIR).is_dir()
    )
    assert NOT_NEEDED_NOTE not in {p.name for p in (PREPARED / "cifar10").iterdir()}


def test_preprocess_fashion_without_raw_data_is_a_pipeline_error(project):
    with pytest.raises(PipelineError, match="train-images-idx3-ubyte.gz.*rerun the download stage"):
        preprocess.main(["--dataset", "fashion_mnist"])


def test_preprocess_cifar_without_raw_data_is_a_pipeline_error(project):
    with pytest.raises(PipelineError, match="data_batch_1.bin"):
        preprocess.main(["--dataset", "cifar10"])


def test_cifar_download_rerun_restores_a_deleted_batch(project, tmp_path):
    checksums = make_cifar10_archive(tmp_path / "src", n_per_batch=2)
    write_params(project, download={"sources": {"cifar10": [str(tmp_path / "src")]}, "checksums": checksums})
    download.main(["--dataset", "cifar10"])
    batch = Path("data/raw/cifar10") / CIFAR_BATCH_DIR / "data_batch_3.bin"
    batch.unlink()
    download.main(["--dataset", "cifar10"])
    assert batch.is_file()


def test_stage_outputs_honour_the_umask(project, tmp_path):
    """atomic_path's temp files start 0600 (mkstemp); the final files must get the umask-derived mode."""
    checksums = make_fashion_mnist_dir(tmp_path / "src")
    write_params(project, download={"sources": {"fashion_mnist": [str(tmp_path / "src")]}, "checksums": checksums})
    old = os.umask(0o022)
    try:
        download.main(["--dataset", "fashion_mnist"])
        preprocess.main(["--dataset", "fashion_mnist"])
    finally:
        os.umask(old)
    for path in (
        Path("data/raw/fashion_mnist/train-images-idx3-ubyte.gz"),
        PREPARED / "fashion_mnist" / "x_train.npy",
        PREPARED / "fashion_mnist" / "meta.json",
    ):
        assert path.stat().st_mode & 0o777 == 0o644, path


# --------------------------------------------------------------------------- imbalance


@pytest.fixture
def fashion_1000(project):
    """Prepared tiny Fashion-MNIST: 100 training and 20 test images per class."""
    return prepare_fashion(n_train=1000, n_test=200, seed=0)


def source_indices(kept_x: np.ndarray, source_x: np.ndarray) -> np.ndarray:
    """Map each kept (scaled) image back to its index in the source (random images are unique)."""
    lookup = {image.tobytes(): i for i, image in enumerate(source_x)}
    restored = np.rint(np.asarray(kept_x)[..., 0] * 255).astype(np.uint8)
    return np.array([lookup[image.tobytes()] for image in restored])


def test_long_tail_ratio_10(project, fashion_1000):
    make_variant(project, ratio=10, fractions=None, imbalance_test=False)

    out = load_prepared(IMBALANCED)
    counts = np.bincount(out["y_train"].argmax(axis=1), minlength=10)
    assert all(a >= b for a, b in zip(counts, counts[1:])), counts
    assert counts[0] == 100
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.1)
    np.testing.assert_array_equal(counts, np.round(100 * 10.0 ** (-np.arange(10) / 9)).astype(int))
    assert counts.tolist() == [100, 77, 60, 46, 36, 28, 22, 17, 13, 10]
    # Rows stay paired: each kept image is a distinct source image, with its own label.
    idx = source_indices(out["x_train"], fashion_1000["x_train"])
    assert len(set(idx.tolist())) == len(idx)
    np.testing.assert_array_equal(out["y_train"].argmax(axis=1), fashion_1000["y_train"][idx])
    # The test split stays balanced and whole.
    np.testing.assert_array_equal(np.bincount(out["y_test"].argmax(axis=1), minlength=10), [20] * 10)
    np.testing.assert_array_equal(out["x_test"], load_prepared(PREPARED / "fashion_mnist")["x_test"])

    metrics = json.loads(METRICS.read_text())
    assert metrics["derived"] is True
    assert metrics["train_class_counts"] == {c: int(n) for c, n in zip(FASHION_CLASSES, counts)}
    assert metrics["test_class_counts"] == {c: 20 for c in FASHION_CLASSES} and metrics["source"] == "fashion_mnist"
    assert metrics["train_total"] == counts.sum() and metrics["test_total"] == 200
    assert metrics["imbalance_ratio_observed"] == pytest.approx(10, rel=0.1)
    meta = json.loads((IMBALANCED / "meta.json").read_text())
    assert meta["derived_from"] == "fashion_mnist" and meta["train_class_counts"] == counts.tolist()


def test_explicit_fractions_are_respected(project, fashion_1000):
    fractions = [0.5, 1.0, 0.2, 0.3, 0.1, 0.9, 0.4, 0.6, 0.7, 0.8]
    make_variant(project, fractions=fractions, ratio=50)
    counts = np.bincount(load_prepared(IMBALANCED)["y_train"].argmax(axis=1), minlength=10)
    assert counts.tolist() == [round(100 * f) for f in fractions]
    assert json.loads(METRICS.read_text())["train_class_counts"]["Coat"] == 10


def test_imbalance_test_true_imbalances_the_test_split(project, fashion_1000):
    make_variant(project, ratio=10, imbalance_test=True)
    out = load_prepared(IMBALANCED)
    test_counts = np.bincount(out["y_test"].argmax(axis=1), minlength=10)
    assert test_counts.tolist() == np.round(20 * 10.0 ** (-np.arange(10) / 9)).astype(int).tolist()
    assert test_counts[0] == 20 and test_counts[-1] == 2
    assert json.loads(METRICS.read_text())["test_class_counts"]["Ankle boot"] == 2


def test_same_seed_same_subset_other_seed_other_subset(project, fashion_1000):
    def run(seed: int) -> np.ndarray:
        write_params(project, base={"seed": seed})
        make_variant(project, ratio=10)
        return source_indices(load_prepared(IMBALANCED)["x_train"], fashion_1000["x_train"])

    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first, again)
    assert np.array_equal(np.sort(first), first)  # kept in source order
    assert len(other) == len(first) and not np.array_equal(first, other)


def test_imbalanced_dataset_not_requested(project, fashion_1000):
    write_params(project, data={"datasets": ["fashion_mnist"]})
    imbalance.main(["--dataset", "fashion_mnist_imbalanced"])
    assert json.loads(METRICS.read_text()) == {"derived": False}
    assert IMBALANCED.is_dir() and list(IMBALANCED.iterdir()) == []


def test_imbalance_without_prepared_data_is_a_pipeline_error(project):
    with pytest.raises(PipelineError, match=r"^data/prepared/fashion_mnist: fashion_mnist is not prepared; run"):
        imbalance.main(["--dataset", "fashion_mnist_imbalanced"])


def test_a_variant_of_an_image_folder(project):
    """A variant of a folder of real PNG and JPEG files (three classes of 10), with explicit fractions."""
    make_image_folder(project / "images", per_class=10)
    write_params(
        project,
        data={
            "datasets": ["parts_longtail"],
            "folders": {"parts": {"path": "images", "image_size": [16, 16], "test_fraction": 0.2}},
            "imbalanced": {"parts_longtail": {"source": "parts", "fractions": [1.0, 0.5, 0.25]}},
        },
    )
    folder.main(["--dataset", "parts"])
    imbalance.main(["--dataset", "parts_longtail"])
    out = load_prepared(PREPARED / "parts_longtail")
    assert np.bincount(out["y_train"].argmax(axis=1), minlength=3).tolist() == [8, 4, 2]
    assert np.bincount(out["y_test"].argmax(axis=1), minlength=3).tolist() == [2, 2, 2]
    assert out["x_train"].shape[1:] == (16, 16, 3)
    metrics = json.loads(Path("metrics/imbalance/parts_longtail.json").read_text())
    assert metrics["train_class_counts"] == {"bolt": 8, "gear": 4, "nut": 2} and metrics["source"] == "parts"
    assert json.loads((PREPARED / "parts_longtail/meta.json").read_text())["class_names"] == ["bolt", "gear", "nut"]


def test_fractions_for_a_folder_of_another_class_count_stop_in_one_line(project):
    make_image_folder(project / "images", per_class=5)
    write_params(
        project,
        data={
            "datasets": ["few"],
            "folders": {"parts": {"path": "images", "image_size": [16, 16]}},
            "imbalanced": {"few": {"source": "parts", "fractions": [1.0, 0.5]}},
        },
    )
    folder.main(["--dataset", "parts"])
    with pytest.raises(PipelineError, match=r"^data.imbalanced.few.fractions: 2 numbers for the 3 classes of parts"):
        imbalance.main(["--dataset", "few"])


def test_retention_profile_and_subsample_indices():
    profile = retention_profile(100, 10)
    assert profile[0] == 1.0 and profile[-1] == pytest.approx(0.01)
    assert np.all(np.diff(profile) < 0)
    assert retention_profile(1, 10).tolist() == [1.0] * 10

    labels = np.repeat(np.arange(10), 7)[np.random.default_rng(0).permutation(70)]
    keep = subsample_indices(labels, np.full(10, 0.01), seed=3)  # rounds to 0: still one per class
    assert sorted(labels[keep].tolist()) == list(range(10))
    keep = subsample_indices(labels, profile, seed=3)
    assert np.all(np.diff(keep) > 0)
    assert np.bincount(labels[keep], minlength=10)[0] == 7


# --------------------------------------------------------------------------- the CLI error contract


def test_stage_error_is_one_line_and_exit_code_2(project, dead_url, tmp_path, subprocess_env):
    empty = tmp_path / "empty"
    empty.mkdir()
    write_params(project, download={"sources": {"cifar10": [dead_url, str(empty)]}, "timeout_s": 5})

    result = subprocess.run(
        [sys.executable, "-m", "stages.download", "--dataset", "cifar10"],
        cwd=project,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stderr
    lines = result.stderr.rstrip("\n").splitlines()
    last = lines[-1]
    assert last.startswith("error: ")
    assert CIFAR_ARCHIVE in last and "download.sources.cifar10" in last
    assert "Traceback" not in result.stderr
    assert sum("error:" in line for line in lines) == 1  # the message is that one line, not a wrapped block
    assert list((project / "data/raw/cifar10").iterdir()) == []


def test_bad_params_stop_a_stage_with_one_line(project, subprocess_env):
    write_params(project, al={"query_size": 0})
    result = subprocess.run(
        [sys.executable, "-m", "stages.preprocess", "--dataset", "fashion_mnist"],
        cwd=project,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: al.query_size: Input should be greater than or equal to 1 (got 0)"
    ]
