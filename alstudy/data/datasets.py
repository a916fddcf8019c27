"""The dataset registry: the built-in datasets, their files, checksums, readers and class names.

Stages look datasets up here and have no special case for any name. A new
built-in dataset is one entry (and, if its format is new, one reader); the user's
own image folders (`data.folders` in params.yaml) join the built-ins by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from alstudy.data import cifar, idx
from alstudy.fileio import hash_file


@dataclass(frozen=True)
class RawFile:
    name: str
    # Published MD5 of the file as upstream serves it.
    md5: str
    # SHA-256 of the decompressed bytes, for gzip files: a recompressed copy
    # (Debian's dataset-fashion-mnist) has other archive bytes but this content.
    content_sha256: str | None = None
    size: int | None = None


# A reader turns a dataset's raw folder into (x_train, y_train, x_test, y_test): uint8 images, int labels.
RawReader = Callable[[Path], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: what `download@<name>` fetches and how `preprocess@<name>` reads it.
    Imbalanced variants of any dataset are declared in params.yaml (`data.imbalanced`)."""

    name: str
    class_names: tuple[str, ...]
    files: tuple[RawFile, ...] = ()
    read: RawReader | None = None
    # After a verified download: turn the files into what `read` expects (CIFAR-10's archive).
    unpack: Callable[[list[Path], Path], None] | None = None

    @property
    def downloaded(self) -> bool:
        return bool(self.files)


def _extract_cifar10(archive: Path, dest: Path) -> None:
    cifar.extract(archive, dest, archive_digest=hash_file(archive)["sha256"])


FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    files=(
        RawFile(
            "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        RawFile(
            "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        RawFile(
            "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        RawFile(
            "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    read=idx.read_fashion_mnist,
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    # The binary version: fixed-size records, so nothing is ever unpickled.
    files=(RawFile("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", size=170_052_171),),
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    read=lambda folder: cifar.read_cifar10(folder / cifar.BATCH_DIR),
    unpack=lambda paths, dest: _extract_cifar10(paths[0], dest),
)

BUILT_IN = {spec.name: spec for spec in (FASHION_MNIST, CIFAR10)}
DOWNLOADED = tuple(sorted(name for name, spec in BUILT_IN.items() if spec.downloaded))


def get(name: str) -> DatasetSpec:
    return BUILT_IN[name]


def downloads_needed(datasets: list[str]) -> list[str]:
    """The downloaded datasets among `datasets` (names already resolved to what they are made from:
    `DataParams.downloads_needed` does that for imbalanced variants)."""
    return [name for name in DOWNLOADED if name in set(datasets)]


NOT_NEEDED_NOTE = "NOT-NEEDED.txt"


def mark_not_needed(folder: Path, dataset: str) -> None:
    """Say in a stage's output folder why it is empty: `dataset` is not in data.datasets. The download
    and preprocess stages run for every built-in dataset; without this DVC warned at each repro that
    the folder is empty. The stage that fills the folder removes the note first."""
    (folder / NOT_NEEDED_NOTE).write_text(
        f"{dataset} is not in data.datasets in params.yaml: nothing is downloaded or prepared for it here.\n"
    )
