"""Fetch a dataset's files from an ordered list of sources and verify each one.

A source is an http(s):// or file:// base URL, or a local folder; the file name
is appended to it. Each file is written to a temporary name, verified, then
renamed, so a crash or a bad source never leaves a half-written or unverified
file under its real name, and files verified earlier are kept.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Iterable

from alstudy.data.datasets import DatasetSpec, RawFile
from alstudy.errors import PipelineError
from alstudy.fileio import atomic_path, hash_file, hash_stream

log = logging.getLogger("download")

CHUNK = 1 << 20


class VerificationError(Exception):
    """A file's bytes are not the published ones (the message says how)."""


class SourceError(Exception):
    """One source could not deliver a file (the message says why)."""


def _is_plain_gzip(name: str) -> bool:
    return name.endswith(".gz") and not name.endswith(".tar.gz")


def verify_file(path: Path, raw: RawFile, override: str | None = None) -> None:
    """Raise VerificationError unless `path` holds the published bytes of `raw`.

    Plain .gz files are also checked by their decompressed content, so a copy
    recompressed by a packager passes while a truncated one fails.
    `override` ("sha256:<hex>" or "md5:<hex>") replaces the published values.
    """
    archive = hash_file(path)
    content = None
    if _is_plain_gzip(raw.name):
        try:
            with gzip.open(path, "rb") as stream:
                content = hash_stream(stream)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise VerificationError(f"truncated or corrupt gzip data ({error})") from None

    if override:
        algo, _, digest = override.partition(":")
        digest = digest.lower()
        if archive[algo] == digest or (content and content[algo] == digest):
            return
        raise VerificationError(f"checksum mismatch: {algo} is {archive[algo]}, params expect {digest}")

    if archive["md5"] == raw.md5:
        return
    if raw.content_sha256 and content and content["sha256"] == raw.content_sha256:
        return
    size = path.stat().st_size
    if raw.size and size != raw.size:
        raise VerificationError(f"is {size} bytes, expected {raw.size} (truncated download?)")
    raise VerificationError(f"checksum mismatch: md5 is {archive['md5']}, published {raw.md5}")


def _human(n_bytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes} B"


class _Progress:
    """Logs bytes received at most once a second, and once at the end."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total, self.done = label, total, 0
        self._last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self._last >= 1.0:
            self._last = time.monotonic()
            self._report()

    def _report(self) -> None:
        if self.total:
            log.info(
                "%s: %s / %s (%d%%)", self.label, _human(self.done), _human(self.total), 100 * self.done // self.total
            )
        else:
            log.info("%s: %s", self.label, _human(self.done))

    def finish(self) -> None:
        self._report()


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "file://"))


def _copy_from_source(source: str, name: str, target: Path, timeout: float, label: str) -> None:
    """Copy `name` from `source` into `target`, raising SourceError on any failure."""
    if _is_url(source):
        url = source.rstrip("/") + "/" + name
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise SourceError(f"HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SourceError(f"unreachable ({reason})") from None
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    else:
        path = Path(source).expanduser() / name
        if not path.is_file():
            raise SourceError("no such file")
        response, total = open(path, "rb"), path.stat().st_size

    progress = _Progress(label, total)
    try:
        with response, open(target, "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                progress.update(len(chunk))
    except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as error:
        raise SourceError(f"transfer broke after {progress.done} bytes ({error.__class__.__name__})") from None
    progress.finish()
    if total is not None and progress.done != total:
        raise SourceError(f"truncated: got {progress.done} of {total} bytes")


def fetch_file(
    raw: RawFile,
    sources: Iterable[str],
    dest_dir: Path,
    dataset: str,
    override: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Make `dest_dir/raw.name` a verified copy, trying `sources` in order."""
    target = dest_dir / raw.name
    if target.exists():
        try:
            verify_file(target, raw, override)
            log.info("%s: %s already present and verified", dataset, raw.name)
            return target
        except VerificationError as error:
            log.info("%s: existing %s failed verification (%s); fetching it again", dataset, raw.name, error)

    failures = []
    for source in sources:
        label = f"{dataset}: {raw.name} from {source}"
        try:
            with atomic_path(target) as tmp:
                _copy_from_source(source, raw.name, tmp, timeout, label)
                try:
                    verify_file(tmp, raw, override)
                except VerificationError as error:
                    raise SourceError(str(error)) from None
        except SourceError as error:
            log.info("%s: %s", label, error)
            failures.append(f"{source}: {error}")
            continue
        log.info("%s: %s verified", dataset, raw.name)
        return target

    tried = "; ".join(failures) if failures else "no sources listed"
    raise PipelineError(
        f"{dataset}: no source gave a verified {raw.name} ({tried}); put a verified copy in a folder "
        f"and list that folder first under download.sources.{dataset} in params.yaml"
    )


def fetch_dataset(
    spec: DatasetSpec, sources: list[str], dest_dir: Path, checksums: dict[str, str], timeout: float
) -> list[Path]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    return [fetch_file(raw, sources, dest_dir, spec.name, checksums.get(raw.name), timeout) for raw in spec.files]
