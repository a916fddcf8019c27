"""Files written atomically (a reader, or a crash, never sees a half-written one), file digests, and
CSV cells that are safe to open in a spreadsheet."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the usual umask-derived mode.
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_npy(target: Path, array: np.ndarray) -> None:
    # np.save appends ".npy" unless the name already ends with it.
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, array)


def save_json(target: Path, data: object) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


HASH_CHUNK = 1 << 20


def hash_stream(stream: BinaryIO) -> dict[str, str]:
    """MD5 and SHA-256 of a stream's bytes, in one pass."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        md5.update(chunk)
        sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def hash_file(path: Path) -> dict[str, str]:
    """MD5 and SHA-256 of a file's bytes, in one pass."""
    with open(path, "rb") as stream:
        return hash_stream(stream)


# OWASP's "CSV injection": a spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def spreadsheet_cell(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows as text: a leading `'` where it would start a formula
    (a file named `=HYPERLINK(...).png`); plain numbers are left as they are."""
    text = str(text)
    if text.startswith(FORMULA_STARTS) and not NUMBER.match(text):
        return "'" + text
    return text


def from_spreadsheet_cell(text: str) -> str:
    """The text `spreadsheet_cell` was given, whether or not a spreadsheet kept the leading `'`."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text
