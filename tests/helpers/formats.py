"""Data files in the exact upstream formats (IDX gzip, CIFAR-10's binary tar), built here, never downloaded."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

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
