"""Shared fixtures and helpers for the data tests (and the end-to-end test).

Helpers are plain functions, importable from test modules with
``from conftest import make_fashion_mnist_dir, ...`` (pytest puts tests/ on
sys.path because it has no __init__.py). Fixtures: ``project``,
``http_server``, ``dead_url``.

Everything here is tiny and offline: files are served from 127.0.0.1 only.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def pytest_configure(config):
    # No pytest config file: markers are registered here. `-m "not browser"` leaves these out.
    config.addinivalue_line("markers", "browser: opens a page in headless Chromium (Debian's chromium) and "
                                       "checks what a person sees there")


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
    return subprocess.run([str(Path(bin_dir) / "dvc"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


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


def write_tar_gz(path, members: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None,
                 directory: str | None = CIFAR_BATCH_DIR) -> Path:
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


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A temp project folder holding a copy of the repo's params.yaml, made the cwd.

    Stages read ./params.yaml and write data/raw, data/prepared and metrics/
    relative to the cwd. Rewrite params with ``write_params(project, ...)``.
    """
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "params.yaml", folder / "params.yaml")
    monkeypatch.chdir(folder)
    return folder


# --------------------------------------------------------------------------- HTTP


class ServedURL(str):
    """A base URL ("http://127.0.0.1:<port>/") that also carries the server's request log."""

    requests: list[str]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; records each requested path; logs nothing."""

    def __init__(self, *args, request_log: list[str], truncate: bool, **kwargs):
        self.request_log, self.truncate = request_log, truncate
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - http.server's name
        pass

    def do_GET(self):
        self.request_log.append(self.path)
        if not self.truncate:
            return super().do_GET()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        body = path.read_bytes()
        # Promise the whole file, send half of it, then close the connection.
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def http_server():
    """Factory: ``http_server(directory, truncate=False) -> url`` serves `directory` on 127.0.0.1.

    Each call starts a ThreadingHTTPServer on a free port in a daemon thread and
    returns its base URL "http://127.0.0.1:<port>/" as a str whose ``.requests``
    lists the paths requested so far. With ``truncate=True`` every file is
    answered with its full Content-Length but only half the body, then the
    connection closes. All servers shut down when the test ends.
    """
    servers = []

    def serve(directory, truncate: bool = False) -> ServedURL:
        log: list[str] = []
        handler = partial(_QuietHandler, directory=str(directory), request_log=log, truncate=truncate)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = ServedURL(f"http://127.0.0.1:{server.server_address[1]}/")
        url.requests = log
        return url

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url() -> str:
    """An http:// base URL on 127.0.0.1 whose port nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for running `python -m stages.<name>` from a temp project."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


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
