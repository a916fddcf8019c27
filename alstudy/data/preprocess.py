"""Scale pixels to [0, 1], one-hot encode labels, and store splits as .npy files.

The active-learning stage memory-maps these files instead of loading them whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alstudy.errors import PipelineError
from alstudy.fileio import save_json, save_npy

SPLIT_FILES = ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # N x H x W x C float32 in [0, 1]
    y: np.ndarray  # N x classes float32 one-hot

    @property
    def labels(self) -> np.ndarray:
        return self.y.argmax(axis=1)


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 N x H x W (x C) -> float32 N x H x W x C in [0, 1]."""
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images.astype(np.float32) / np.float32(255)


def model_input(images: np.ndarray) -> np.ndarray:
    """Pixels as the model takes them: float32 in [0, 1]. Prepared splits already are; uint8 pixels
    (a labelling project's decoded-image cache) are scaled here, a batch at a time."""
    if images.dtype == np.uint8:
        return scale_images(images)
    return np.asarray(images, dtype=np.float32)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    encoded = np.zeros((labels.size, n_classes), dtype=np.float32)
    encoded[np.arange(labels.size), labels] = 1.0
    return encoded


def class_counts(labels: np.ndarray, n_classes: int) -> list[int]:
    return np.bincount(labels, minlength=n_classes).tolist()


def write_splits(out_dir: Path, train: Split, test: Split, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, array in zip(SPLIT_FILES, (train.x, train.y, test.x, test.y)):
        save_npy(out_dir / name, array)
    meta = {
        **meta,
        "train_size": len(train.x),
        "test_size": len(test.x),
        "image_shape": list(train.x.shape[1:]),
        "train_class_counts": class_counts(train.labels, train.y.shape[1]),
        "test_class_counts": class_counts(test.labels, test.y.shape[1]),
    }
    save_json(out_dir / "meta.json", meta)


def load_splits(data_dir: Path, mmap: bool = True) -> tuple[Split, Split]:
    """(train, test) from a prepared folder, memory-mapped by default."""
    missing = [name for name in SPLIT_FILES if not (data_dir / name).is_file()]
    if missing:
        raise PipelineError(f"{data_dir}: missing {missing[0]}; run `dvc repro` so the data stages produce it")
    mode = "r" if mmap else None
    x_train, y_train, x_test, y_test = (np.load(data_dir / name, mmap_mode=mode) for name in SPLIT_FILES)
    return Split(x_train, y_train), Split(x_test, y_test)


def prepare(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, n_classes: int
) -> tuple[Split, Split]:
    return (
        Split(scale_images(x_train), one_hot(y_train, n_classes)),
        Split(scale_images(x_test), one_hot(y_test, n_classes)),
    )
