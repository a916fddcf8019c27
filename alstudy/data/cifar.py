"""CIFAR-10, binary version: safe extraction and a reader for its fixed-size records.

Each record is one label byte then 3072 pixel bytes: 1024 red, 1024 green,
1024 blue, each a 32 x 32 image in row-major order. No pickle is involved.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from alstudy.errors import PipelineError

ARCHIVE = "cifar-10-binary.tar.gz"
BATCH_DIR = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
RECORD = 1 + 3 * 32 * 32
# Written after a complete extraction; names the archive digest it came from.
EXTRACTED_STAMP = ".extracted"


def _upstream_members_only(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    # The "data" filter refuses "..", links out of `dest` and device files, but
    # silently strips a leading "/"; upstream has no absolute names, so refuse them too.
    if os.path.isabs(member.name):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)


def extract(archive: Path, dest: Path, archive_digest: str) -> Path:
    """Extract `archive` into `dest` unless already done for this archive; return the batch folder."""
    batch_dir = dest / BATCH_DIR
    stamp = batch_dir / EXTRACTED_STAMP
    batches = (*TRAIN_BATCHES, TEST_BATCH)
    if (
        stamp.exists()
        and stamp.read_text().strip() == archive_digest
        and all((batch_dir / name).is_file() for name in batches)
    ):
        return batch_dir
    stamp.unlink(missing_ok=True)  # a crash mid-extraction must not leave a valid-looking stamp
    fix = f"delete {archive} and rerun the download stage"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter=_upstream_members_only)
    except tarfile.FilterError as error:
        raise PipelineError(
            f"{archive}: refused to extract {error.tarinfo.name!r}, which would land outside "
            f"{dest}; the archive is not the upstream one, {fix}"
        ) from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise PipelineError(f"{archive}: truncated or corrupt archive ({error}); {fix}") from None
    missing = [name for name in batches if not (batch_dir / name).is_file()]
    if missing:
        raise PipelineError(f"{archive}: has no {BATCH_DIR}/{missing[0]}; it is not the CIFAR-10 binary version, {fix}")
    stamp.write_text(archive_digest + "\n")
    return batch_dir


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3 uint8, labels N uint8) from one .bin batch."""
    if not path.is_file():
        raise PipelineError(f"{path}: missing; delete data/raw/cifar10 and rerun the download stage")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % RECORD:
        raise PipelineError(
            f"{path}: {data.size} bytes is not a whole number of {RECORD}-byte records; "
            "delete data/raw/cifar10 and rerun the download stage"
        )
    records = data.reshape(-1, RECORD)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise PipelineError(
            f"{path}: label {labels.max()} is outside 0-9; delete data/raw/cifar10 and rerun the download stage"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar10(batch_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): the five training batches in order, then the test batch."""
    train = [read_batch(batch_dir / name) for name in TRAIN_BATCHES]
    x_test, y_test = read_batch(batch_dir / TEST_BATCH)
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test)
