"""Readers for the upstream formats: IDX (Fashion-MNIST) and the CIFAR-10 binary archive."""

from __future__ import annotations

import gzip
import tarfile

import numpy as np
import pytest

from alstudy.data import cifar, idx
from alstudy.errors import PipelineError
from helpers.formats import (
    CIFAR_ARCHIVE,
    CIFAR_BATCH_DIR,
    CIFAR_CLASSES,
    DEBIAN_FASHION_MNIST,
    cifar10_arrays,
    cifar10_members,
    cifar_batch_bytes,
    fashion_mnist_arrays,
    gzip_bytes,
    idx_bytes,
    make_cifar10_archive,
    make_fashion_mnist_dir,
    requires_debian_fashion_mnist,
    write_idx_gz,
    write_tar_gz,
)

# --------------------------------------------------------------------------- IDX


def test_write_idx_gz_matches_the_upstream_header(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    data = gzip.decompress(write_idx_gz(tmp_path / "i.gz", images).read_bytes())
    assert data[:16] == bytes.fromhex("00000803000000020000001c0000001c")
    labels = np.array([3, 1, 4], dtype=np.uint8)
    data = gzip.decompress(write_idx_gz(tmp_path / "l.gz", labels).read_bytes())
    assert data == bytes.fromhex("0000080100000003030104")


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    got_images = idx.read_idx(write_idx_gz(tmp_path / "images.gz", images), idx.IMAGES_MAGIC)
    got_labels = idx.read_idx(write_idx_gz(tmp_path / "labels.gz", labels), idx.LABELS_MAGIC)
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_idx_wrong_magic(tmp_path):
    path = write_idx_gz(tmp_path / "labels.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(PipelineError, match=r"magic number is 0x00000801, expected 0x00000803"):
        idx.read_idx(path, idx.IMAGES_MAGIC)


def test_idx_header_promises_more_bytes_than_present(tmp_path):
    data = idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))
    path = tmp_path / "short.gz"
    path.write_bytes(gzip_bytes(data[: 16 + 3 * 784]))  # header says 5 images, 3 present
    with pytest.raises(PipelineError, match=r"header says \(5, 28, 28\)"):
        idx.read_idx(path, idx.IMAGES_MAGIC)


def test_idx_trailing_bytes_are_refused(tmp_path):
    path = tmp_path / "long.gz"
    path.write_bytes(gzip_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\0"))
    with pytest.raises(PipelineError, match="header says"):
        idx.read_idx(path, idx.LABELS_MAGIC)


@pytest.mark.parametrize("payload", [b"", b"\x00\x00", gzip_bytes(b"\x00\x00")[:-6], b"not gzip at all"])
def test_idx_unreadable_or_too_short(tmp_path, payload):
    path = tmp_path / "bad.gz"
    path.write_bytes(payload)
    with pytest.raises(PipelineError) as caught:
        idx.read_idx(path, idx.LABELS_MAGIC)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_read_fashion_mnist_tiny(tmp_path):
    make_fashion_mnist_dir(tmp_path, n_train=30, n_test=10, seed=3)
    expected = fashion_mnist_arrays(30, 10, seed=3)
    got = idx.read_fashion_mnist(tmp_path)
    for array, key in zip(got, ("x_train", "y_train", "x_test", "y_test")):
        np.testing.assert_array_equal(array, expected[key])


def test_read_fashion_mnist_counts_must_match(tmp_path):
    make_fashion_mnist_dir(tmp_path, n_train=30, n_test=10)
    write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29, dtype=np.uint8))
    with pytest.raises(PipelineError, match="train split has 30 images but 29 labels"):
        idx.read_fashion_mnist(tmp_path)


def test_a_label_equal_to_the_class_count_is_one_line_not_an_index_error(tmp_path):
    from alstudy.data.preprocess import one_hot

    make_fashion_mnist_dir(tmp_path, n_train=30, n_test=10)
    labels = np.zeros(30, dtype=np.uint8)
    labels[7] = 10  # one past the last class
    write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(PipelineError, match=r"train label 10 is outside 0-9; delete the folder"):
        idx.read_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9"):
        one_hot(np.array([0, 9, 10]), 10)
    assert one_hot(np.array([9]), 10)[0, 9] == 1  # the last class itself is fine


def test_cifar_label_equal_to_the_class_count_is_one_line(tmp_path):
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(cifar_batch_bytes(images, np.array([9, 10], dtype=np.uint8)))
    with pytest.raises(PipelineError, match="label 10 is outside 0-9"):
        cifar.read_batch(path)


def test_read_fashion_mnist_missing_file_is_a_pipeline_error(tmp_path):
    make_fashion_mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(PipelineError, match="t10k-images-idx3-ubyte.gz"):
        idx.read_fashion_mnist(tmp_path)


@requires_debian_fashion_mnist
def test_debian_fashion_mnist_reads_with_upstream_shapes():
    x_train, y_train, x_test, y_test = idx.read_fashion_mnist(DEBIAN_FASHION_MNIST)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10)) and set(np.unique(y_test)) == set(range(10))
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
    assert 0 < x_train.mean() < 255  # real images, not a blank array


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar_batch_bytes_follow_the_upstream_record_layout():
    images = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    images[0, 0, 1, 0], images[0, 1, 0, 1], images[0, 31, 31, 2] = 11, 22, 33
    record = cifar_batch_bytes(images, np.array([7], dtype=np.uint8))
    assert len(record) == 3073 and record[0] == 7
    assert record[1 + 1] == 11  # R plane, row 0, col 1
    assert record[1 + 1024 + 32] == 22  # G plane, row 1, col 0
    assert record[1 + 2048 + 1023] == 33  # B plane, last pixel


def test_cifar_extract_and_read_give_exact_nhwc_pixels(tmp_path):
    make_cifar10_archive(tmp_path / "src", n_per_batch=4, seed=5)
    batch_dir = cifar.extract(tmp_path / "src" / CIFAR_ARCHIVE, tmp_path / "out", archive_digest="abc")
    assert batch_dir == tmp_path / "out" / CIFAR_BATCH_DIR
    assert (batch_dir / "batches.meta.txt").read_text().splitlines() == list(CIFAR_CLASSES)
    x_train, y_train, x_test, y_test = cifar.read_cifar10(batch_dir)
    expected = cifar10_arrays(n_per_batch=4, seed=5)
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3)
    assert x_train.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(x_train, expected["x_train"])
    np.testing.assert_array_equal(y_train, expected["y_train"])
    np.testing.assert_array_equal(x_test, expected["x_test"])
    np.testing.assert_array_equal(y_test, expected["y_test"])
    # The known pattern on the first image: channels last, rows before columns.
    assert (x_train[0, :, :, 0] == 255).all() and (x_train[0, :, :, 1] == 0).all()
    assert x_train[0, 1, 0, 2] == 8 and x_train[0, 0, 1, 2] == 1 and x_train[0, 31, 7, 2] == (31 * 8 + 7) % 256


def test_cifar_extract_is_skipped_when_stamped_with_the_same_digest(tmp_path):
    make_cifar10_archive(tmp_path / "src")
    archive = tmp_path / "src" / CIFAR_ARCHIVE
    batch_dir = cifar.extract(archive, tmp_path / "out", archive_digest="d1")
    assert (batch_dir / cifar.EXTRACTED_STAMP).read_text() == "d1\n"
    (batch_dir / "readme.html").unlink()
    cifar.extract(archive, tmp_path / "out", archive_digest="d1")
    assert not (batch_dir / "readme.html").exists()  # not extracted again
    cifar.extract(archive, tmp_path / "out", archive_digest="d2")
    assert (batch_dir / "readme.html").exists()  # another archive: extracted again
    assert (batch_dir / cifar.EXTRACTED_STAMP).read_text() == "d2\n"


def _evil_archive(tmp_path, member: tarfile.TarInfo, data: bytes | None = b"evil"):
    """A complete upstream-layout archive plus one extra member: a file with `data`, or a link (data None)."""
    path = tmp_path / "src" / CIFAR_ARCHIVE
    members = cifar10_members(n_per_batch=2)
    if data is None:
        return write_tar_gz(path, members, extra=[member])
    return write_tar_gz(path, {**members, member.name: data})


def test_cifar_member_with_dotdot_is_refused(tmp_path):
    archive = _evil_archive(tmp_path, tarfile.TarInfo("../evil.bin"))
    dest = tmp_path / "deep" / "out"
    with pytest.raises(PipelineError, match="outside") as caught:
        cifar.extract(archive, dest, archive_digest="x")
    assert "refused to extract '../evil.bin'" in str(caught.value)
    assert "corrupt" not in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "deep" / "evil.bin").exists()
    assert not (dest / CIFAR_BATCH_DIR / cifar.EXTRACTED_STAMP).exists()


def test_cifar_symlink_out_of_the_destination_is_refused(tmp_path):
    link = tarfile.TarInfo(f"{CIFAR_BATCH_DIR}/escape")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    archive = _evil_archive(tmp_path, link, data=None)
    with pytest.raises(PipelineError, match=r"refused to extract 'cifar-10-batches-bin/escape'.*outside"):
        cifar.extract(archive, tmp_path / "out", archive_digest="x")
    assert not (tmp_path / "out" / CIFAR_BATCH_DIR / "escape").is_symlink()


def test_cifar_absolute_member_never_lands_at_its_absolute_path(tmp_path):
    target = tmp_path / "absolute_target" / "evil.bin"
    archive = _evil_archive(tmp_path, tarfile.TarInfo(str(target)))
    try:
        cifar.extract(archive, tmp_path / "out", archive_digest="x")
    except PipelineError:
        pass
    assert not target.exists()


def test_cifar_absolute_member_is_refused(tmp_path):
    archive = _evil_archive(tmp_path, tarfile.TarInfo(str(tmp_path / "absolute_target" / "evil.bin")))
    with pytest.raises(PipelineError, match=r"refused to extract '/.*evil\.bin'.*outside"):
        cifar.extract(archive, tmp_path / "out", archive_digest="x")


def test_cifar_truncated_archive(tmp_path):
    make_cifar10_archive(tmp_path / "src")
    archive = tmp_path / "src" / CIFAR_ARCHIVE
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineError, match="truncated or corrupt archive") as caught:
        cifar.extract(archive, tmp_path / "out", archive_digest="x")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / CIFAR_BATCH_DIR / cifar.EXTRACTED_STAMP).exists()


def test_cifar_archive_without_the_batches(tmp_path):
    members = {k: v for k, v in cifar10_members(2).items() if not k.endswith("test_batch.bin")}
    archive = write_tar_gz(tmp_path / "src" / CIFAR_ARCHIVE, members)
    with pytest.raises(PipelineError, match="has no cifar-10-batches-bin/test_batch.bin"):
        cifar.extract(archive, tmp_path / "out", archive_digest="x")


@pytest.mark.parametrize("size", [3072, 3073 * 2 + 1, 0])
def test_cifar_batch_size_not_a_multiple_of_the_record(tmp_path, size):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(size))
    with pytest.raises(PipelineError, match="3073-byte records"):
        cifar.read_batch(path)


def test_cifar_label_out_of_range(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes([10]) + bytes(3072))
    with pytest.raises(PipelineError, match="label 10 is outside 0-9"):
        cifar.read_batch(path)
