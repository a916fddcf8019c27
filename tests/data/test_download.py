"""Download stage and file verification, over HTTP from 127.0.0.1, file:// URLs and local folders."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from alstudy.data.datasets import CIFAR10, FASHION_MNIST, NOT_NEEDED_NOTE, RawFile
from alstudy.data.download import VerificationError, fetch_file, verify_file
from alstudy.errors import PipelineError
from alstudy.params import load_params
from helpers.formats import (
    CIFAR_ARCHIVE,
    CIFAR_BATCH_DIR,
    DEBIAN_FASHION_MNIST,
    FASHION_FILES,
    gzip_bytes,
    make_cifar10_archive,
    make_fashion_mnist_dir,
    requires_debian_fashion_mnist,
    sha256_of,
)
from helpers.repo import read_params, write_params
from stages import download

RAW_FASHION = Path("data/raw/fashion_mnist")
RAW_CIFAR = Path("data/raw/cifar10")


def configure(project, dataset: str, sources: list[str], checksums: dict[str, str] | None = None) -> None:
    write_params(
        project,
        download={"sources": {dataset: [str(s) for s in sources]}, "checksums": checksums or {}, "timeout_s": 5},
    )


def leftovers(folder: Path) -> list[str]:
    """Temporary files (atomic_path's ".<name>.<random>.part") in a folder."""
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name) if folder.exists() else []


@pytest.fixture
def fashion_source(tmp_path):
    folder = tmp_path / "fashion_source"
    return folder, make_fashion_mnist_dir(folder)


@pytest.fixture
def cifar_source(tmp_path):
    folder = tmp_path / "cifar_source"
    return folder, make_cifar10_archive(folder)


# --------------------------------------------------------------------------- happy paths


def test_fashion_mnist_over_http(project, http_server, fashion_source):
    folder, checksums = fashion_source
    url = http_server(folder)
    configure(project, "fashion_mnist", [url], checksums)

    download.main(["--dataset", "fashion_mnist"])

    assert sorted(p.name for p in RAW_FASHION.iterdir()) == sorted(FASHION_FILES)
    for name in FASHION_FILES:
        assert (RAW_FASHION / name).read_bytes() == (folder / name).read_bytes()
    assert sorted(url.requests) == sorted(f"/{name}" for name in FASHION_FILES)


def test_cifar10_over_http_is_fetched_verified_and_extracted(project, http_server, cifar_source):
    folder, checksums = cifar_source
    url = http_server(folder)
    configure(project, "cifar10", [url], checksums)

    download.main(["--dataset", "cifar10"])

    archive = RAW_CIFAR / CIFAR_ARCHIVE
    assert archive.read_bytes() == (folder / CIFAR_ARCHIVE).read_bytes()
    batch_dir = RAW_CIFAR / CIFAR_BATCH_DIR
    assert sorted(p.name for p in batch_dir.glob("*.bin")) == sorted(
        [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    )
    assert (batch_dir / ".extracted").read_text().strip() == sha256_of(archive)
    assert url.requests == [f"/{CIFAR_ARCHIVE}"]


def test_dataset_not_in_data_datasets_is_not_downloaded(project, http_server, cifar_source):
    folder, checksums = cifar_source
    url = http_server(folder)
    configure(project, "cifar10", [url], checksums)
    write_params(project, data={"datasets": ["fashion_mnist"]})

    download.main(["--dataset", "cifar10"])

    # The DVC output exists, with only the note that says why (so DVC does not warn that it is empty).
    assert RAW_CIFAR.is_dir() and [p.name for p in RAW_CIFAR.iterdir()] == [NOT_NEEDED_NOTE]
    assert url.requests == []


def test_file_url_source(project, fashion_source):
    folder, checksums = fashion_source
    configure(project, "fashion_mnist", [folder.as_uri() + "/"], checksums)
    download.main(["--dataset", "fashion_mnist"])
    for name in FASHION_FILES:
        assert (RAW_FASHION / name).read_bytes() == (folder / name).read_bytes()


def test_local_folder_source(project, cifar_source):
    folder, checksums = cifar_source
    configure(project, "cifar10", [str(folder)], checksums)
    download.main(["--dataset", "cifar10"])
    assert (RAW_CIFAR / CIFAR_ARCHIVE).read_bytes() == (folder / CIFAR_ARCHIVE).read_bytes()
    assert (RAW_CIFAR / CIFAR_BATCH_DIR / "test_batch.bin").is_file()


# --------------------------------------------------------------------------- fallback


def test_fallback_from_dead_url_and_404_to_a_working_source(project, http_server, dead_url, fashion_source, tmp_path):
    folder, checksums = fashion_source
    empty = tmp_path / "empty"
    empty.mkdir()
    url_404, good = http_server(empty), http_server(folder)
    configure(project, "fashion_mnist", [dead_url, url_404, good], checksums)

    download.main(["--dataset", "fashion_mnist"])

    for name in FASHION_FILES:
        assert (RAW_FASHION / name).read_bytes() == (folder / name).read_bytes()
    assert sorted(url_404.requests) == sorted(f"/{name}" for name in FASHION_FILES)  # each was tried there first
    assert leftovers(RAW_FASHION) == []


def test_corrupt_file_is_skipped_for_the_next_source(project, http_server, fashion_source, tmp_path):
    folder, checksums = fashion_source
    bad = tmp_path / "bad"
    make_fashion_mnist_dir(bad, n_train=70, n_test=30, seed=1)  # valid gzip/IDX, other content: all 4 mismatch
    bad_url, good_url = http_server(bad), http_server(folder)
    configure(project, "fashion_mnist", [bad_url, good_url], checksums)

    download.main(["--dataset", "fashion_mnist"])

    for name in FASHION_FILES:
        assert (RAW_FASHION / name).read_bytes() == (folder / name).read_bytes()
    assert len(bad_url.requests) == 4 and len(good_url.requests) == 4
    assert leftovers(RAW_FASHION) == []


def test_truncated_then_good_source(project, http_server, cifar_source):
    folder, checksums = cifar_source
    short, good = http_server(folder, truncate=True), http_server(folder)
    configure(project, "cifar10", [short, good], checksums)
    download.main(["--dataset", "cifar10"])
    assert (RAW_CIFAR / CIFAR_ARCHIVE).read_bytes() == (folder / CIFAR_ARCHIVE).read_bytes()
    assert short.requests == [f"/{CIFAR_ARCHIVE}"] and good.requests == [f"/{CIFAR_ARCHIVE}"]


# --------------------------------------------------------------------------- no re-download, repair


def test_verified_files_are_not_fetched_again(project, http_server, fashion_source):
    folder, checksums = fashion_source
    url = http_server(folder)
    configure(project, "fashion_mnist", [url], checksums)
    download.main(["--dataset", "fashion_mnist"])
    assert len(url.requests) == 4
    before = {name: os.stat(RAW_FASHION / name) for name in FASHION_FILES}

    download.main(["--dataset", "fashion_mnist"])

    assert len(url.requests) == 4  # no second request
    for name in FASHION_FILES:
        after = os.stat(RAW_FASHION / name)
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)


def test_cifar_rerun_neither_fetches_nor_reextracts(project, http_server, cifar_source):
    folder, checksums = cifar_source
    url = http_server(folder)
    configure(project, "cifar10", [url], checksums)
    download.main(["--dataset", "cifar10"])
    batch = RAW_CIFAR / CIFAR_BATCH_DIR / "data_batch_1.bin"
    stat = os.stat(batch)

    download.main(["--dataset", "cifar10"])

    assert url.requests == [f"/{CIFAR_ARCHIVE}"]
    assert os.stat(batch).st_mtime_ns == stat.st_mtime_ns and os.stat(batch).st_ino == stat.st_ino


def test_existing_file_that_fails_verification_is_replaced(project, http_server, fashion_source):
    folder, checksums = fashion_source
    url = http_server(folder)
    configure(project, "fashion_mnist", [url], checksums)
    RAW_FASHION.mkdir(parents=True)
    shutil.copy(folder / "train-labels-idx1-ubyte.gz", RAW_FASHION / "train-images-idx3-ubyte.gz")  # wrong file

    download.main(["--dataset", "fashion_mnist"])

    assert (RAW_FASHION / "train-images-idx3-ubyte.gz").read_bytes() == (
        folder / "train-images-idx3-ubyte.gz"
    ).read_bytes()
    assert "/train-images-idx3-ubyte.gz" in url.requests


# --------------------------------------------------------------------------- failures


def test_truncated_download_is_rejected_and_leaves_nothing(project, http_server, cifar_source):
    folder, checksums = cifar_source
    short = http_server(folder, truncate=True)
    configure(project, "cifar10", [short], checksums)

    with pytest.raises(PipelineError) as caught:
        download.main(["--dataset", "cifar10"])

    message = str(caught.value)
    assert "truncated" in message and CIFAR_ARCHIVE in message
    assert list(RAW_CIFAR.iterdir()) == []  # no archive, no .part file, nothing extracted


def test_no_reachable_source_names_the_file_and_key_and_keeps_verified_files(
    project, http_server, dead_url, fashion_source, tmp_path
):
    folder, checksums = fashion_source
    partial_dir = tmp_path / "partial"
    partial_dir.mkdir()
    for name in FASHION_FILES[:2]:  # train images and labels only
        shutil.copy(folder / name, partial_dir / name)
    configure(project, "fashion_mnist", [dead_url, http_server(partial_dir)], checksums)

    with pytest.raises(PipelineError) as caught:
        download.main(["--dataset", "fashion_mnist"])

    message = str(caught.value)
    assert "\n" not in message
    assert "t10k-images-idx3-ubyte.gz" in message
    assert "download.sources.fashion_mnist" in message
    assert "unreachable" in message and "HTTP 404" in message
    for name in FASHION_FILES[:2]:
        assert (RAW_FASHION / name).read_bytes() == (folder / name).read_bytes()
    assert sorted(p.name for p in RAW_FASHION.iterdir()) == sorted(FASHION_FILES[:2])


def test_no_sources_listed(project):
    raw = read_params(project)
    raw["download"]["sources"] = {"fashion_mnist": []}  # no cifar10 entry at all
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(PipelineError, match=r"no sources listed.*download\.sources\.cifar10"):
        download.main(["--dataset", "cifar10"])


def test_tiny_cifar_archive_fails_the_published_checksum(project, cifar_source):
    folder, _ = cifar_source
    configure(project, "cifar10", [str(folder)])  # no override: the published md5 and size apply
    with pytest.raises(PipelineError, match=r"expected 170052171 \(truncated download\?\)"):
        download.main(["--dataset", "cifar10"])
    assert list(RAW_CIFAR.iterdir()) == []


def test_wrong_override_rejects_the_file(project, fashion_source):
    folder, checksums = fashion_source
    checksums = {**checksums, "train-labels-idx1-ubyte.gz": "sha256:" + "0" * 64}
    configure(project, "fashion_mnist", [str(folder)], checksums)
    with pytest.raises(PipelineError, match=r"train-labels-idx1-ubyte\.gz.*checksum mismatch"):
        download.main(["--dataset", "fashion_mnist"])
    assert sorted(p.name for p in RAW_FASHION.iterdir()) == ["train-images-idx3-ubyte.gz"]


@requires_debian_fashion_mnist
def test_debian_copy_verifies_against_published_checksums(project):
    configure(project, "fashion_mnist", [str(DEBIAN_FASHION_MNIST)])  # no override
    download.main(["--dataset", "fashion_mnist"])
    for name in FASHION_FILES:
        assert (RAW_FASHION / name).stat().st_size == (DEBIAN_FASHION_MNIST / name).stat().st_size


# --------------------------------------------------------------------------- verify_file


def test_published_md5_passes(tmp_path):
    path = tmp_path / "file.tar.gz"
    path.write_bytes(b"some archive bytes")
    raw = RawFile("file.tar.gz", hashlib.md5(b"some archive bytes").hexdigest(), size=18)
    verify_file(path, raw)
    with pytest.raises(VerificationError, match="checksum mismatch: md5"):
        verify_file(path, RawFile("file.tar.gz", "0" * 32, size=18))


def test_published_md5_passes_for_gzip(tmp_path):
    data = gzip_bytes(b"labels")
    path = tmp_path / "x.gz"
    path.write_bytes(data)
    verify_file(path, RawFile("x.gz", hashlib.md5(data).hexdigest(), content_sha256="0" * 64))


def test_recompressed_gzip_passes_by_content_sha256(tmp_path):
    content = b"IDX payload " * 1000
    original, recompressed = gzip_bytes(content, level=9), gzip_bytes(content, level=1)
    assert original != recompressed
    raw = RawFile("t.gz", hashlib.md5(original).hexdigest(), hashlib.sha256(content).hexdigest())
    path = tmp_path / "t.gz"
    path.write_bytes(recompressed)
    verify_file(path, raw)
    path.write_bytes(gzip_bytes(content + b"!", level=1))
    with pytest.raises(VerificationError, match="checksum mismatch"):
        verify_file(path, raw)


@requires_debian_fashion_mnist
def test_recompressed_debian_file_passes_published_content_checksum(tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    raw = next(f for f in FASHION_MNIST.files if f.name == name)
    content = gzip.decompress((DEBIAN_FASHION_MNIST / name).read_bytes())
    recompressed = gzip_bytes(content, level=1)
    assert hashlib.md5(recompressed).hexdigest() != raw.md5
    path = tmp_path / name
    path.write_bytes(recompressed)
    verify_file(path, raw)


@requires_debian_fashion_mnist
@pytest.mark.parametrize("name", FASHION_FILES)
def test_debian_files_verify_with_published_values(name):
    raw = next(f for f in FASHION_MNIST.files if f.name == name)
    verify_file(DEBIAN_FASHION_MNIST / name, raw)


def test_truncated_gzip_fails(tmp_path):
    content = os.urandom(20000)
    data = gzip_bytes(content)
    raw = RawFile("t.gz", hashlib.md5(data).hexdigest(), hashlib.sha256(content).hexdigest())
    path = tmp_path / "t.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VerificationError, match="truncated or corrupt"):
        verify_file(path, raw)
    with pytest.raises(VerificationError, match="truncated or corrupt"):  # even with an override
        verify_file(path, raw, "sha256:" + hashlib.sha256(data[: len(data) // 2]).hexdigest())


def test_non_gzip_bytes_under_a_gz_name_fail(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(VerificationError, match="truncated or corrupt"):
        verify_file(path, FASHION_MNIST.files[0])


def test_truncated_cifar_archive_reports_its_size(tmp_path):
    path = tmp_path / CIFAR_ARCHIVE
    path.write_bytes(b"\x1f\x8b" + b"\0" * 100)
    with pytest.raises(VerificationError, match="is 102 bytes, expected 170052171"):
        verify_file(path, CIFAR10.files[0])


@pytest.mark.parametrize("algo", ["md5", "sha256"])
def test_override_of_either_algorithm(tmp_path, algo):
    data = gzip_bytes(b"abc")
    path = tmp_path / "x.gz"
    path.write_bytes(data)
    raw = RawFile("x.gz", "0" * 32)
    verify_file(path, raw, f"{algo}:{hashlib.new(algo, data).hexdigest().upper()}")
    verify_file(path, raw, f"{algo}:{hashlib.new(algo, b'abc').hexdigest()}")  # content digest also accepted
    with pytest.raises(VerificationError, match=f"checksum mismatch: {algo}"):
        verify_file(path, raw, f"{algo}:{'0' * 8}")


def test_fetch_file_leaves_no_part_files_after_failures(tmp_path, http_server, dead_url):
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.gz").write_bytes(gzip_bytes(b"wrong"))
    dest = tmp_path / "dest"
    dest.mkdir()
    raw = RawFile("x.gz", "0" * 32)
    with pytest.raises(PipelineError) as caught:
        fetch_file(
            raw, [dead_url, http_server(src), http_server(src, truncate=True), str(src)], dest, "demo", timeout=5
        )
    assert caught.value.args[0].count("checksum mismatch") == 2
    assert "truncated" in str(caught.value)
    assert list(dest.iterdir()) == []


def test_an_unreachable_dataset_offers_both_fixes_in_one_line(project, dead_url):
    # As on a machine without internet: CIFAR-10's only source does not answer.
    configure(project, "cifar10", [dead_url])
    with pytest.raises(PipelineError) as caught:
        download.main(["--dataset", "cifar10"])
    message = str(caught.value)
    assert "\n" not in message
    assert "list that folder first under download.sources.cifar10" in message  # a local copy
    assert message.endswith(
        "or run the grid without it: dvc exp run -S 'data.datasets=[fashion_mnist,fashion_mnist_imbalanced]'"
    )
    # Without Fashion-MNIST the imbalanced variant goes too.
    data = load_params().data
    assert data.datasets == ["fashion_mnist", "fashion_mnist_imbalanced", "cifar10"]
    assert (
        download.without_it("fashion_mnist", data)
        == "; or run the grid without it: dvc exp run -S 'data.datasets=[cifar10]'"
    )
    assert download.without_it("cifar10", data.model_copy(update={"datasets": ["cifar10"]})) == ""
