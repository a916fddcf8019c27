"""Reader for the IDX format (gzip-compressed) that MNIST and Fashion-MNIST ship in."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from alstudy.errors import PipelineError

UBYTE = 0x08
# Magic numbers: two zero bytes, the element type, the number of dimensions.
IMAGES_MAGIC = (UBYTE << 8) | 3
LABELS_MAGIC = (UBYTE << 8) | 1


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read an IDX .gz file into a uint8 array, checking its magic number and size."""
    fix = f"delete {path} and rerun the download stage"
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise PipelineError(f"{path}: not readable gzip data ({error}); {fix}") from None
    if len(data) < 4:
        raise PipelineError(f"{path}: {len(data)} bytes is too short for an IDX header; {fix}")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise PipelineError(f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}; {fix}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise PipelineError(f"{path}: IDX header says {shape} ({expected} bytes) but the file has {len(data)}; {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


N_CLASSES = 10  # Fashion-MNIST's labels are 0-9


def read_fashion_mnist(raw_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) as uint8, images N x 28 x 28, in upstream order."""
    x_train = read_idx(raw_dir / "train-images-idx3-ubyte.gz", IMAGES_MAGIC)
    y_train = read_idx(raw_dir / "train-labels-idx1-ubyte.gz", LABELS_MAGIC)
    x_test = read_idx(raw_dir / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    y_test = read_idx(raw_dir / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(images) != len(labels):
            raise PipelineError(
                f"{raw_dir}: {split} split has {len(images)} images but {len(labels)} labels; "
                "delete the folder and rerun the download stage"
            )
        if labels.size and labels.max() >= N_CLASSES:
            raise PipelineError(
                f"{raw_dir}: {split} label {labels.max()} is outside 0-{N_CLASSES - 1}; "
                "delete the folder and rerun the download stage"
            )
    return x_train, y_train, x_test, y_test
