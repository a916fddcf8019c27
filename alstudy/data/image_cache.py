"""Images decoded once: a memory-mapped uint8 store of every image a labelling project has read.

`next` reads the same folders at every batch. Decoding 100,000 PNGs takes a minute or more, and
holding them as float32 takes gigabytes; the cache decodes each image once, into one row of a
raw uint8 file (H x W x C, as `load_image` returns it), and maps that file read-only, so the
model streams over it a batch at a time and the pages stay in the OS page cache rather than in
the process.

An image is known by its absolute path, file size and modification time (`index.json`): a new
image is decoded and appended, a changed one (other size or mtime) decoded again into a new row,
an unchanged one never read. Rows no longer pointed at are dropped by a compaction once they are
more than half of the file. Pixels are appended and flushed before the index that points at them
replaces the old one, so a crash leaves the old index and some unused bytes at the end, cut at
the next update. One cache per image size and colour mode, under `.cache/images/` (a file lock
keeps two processes from updating it at once).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from alstudy.data.image_folder import load_image
from alstudy.fileio import atomic_path

log = logging.getLogger("images")
CACHE_ROOT = Path(".cache") / "images"
PROGRESS_EVERY = 5000
DECODE_CHUNK = 256  # images decoded per thread task: large enough to amortise, small enough to show progress


def _stamp(path: Path) -> list[int]:
    """What says an image file is unchanged: its size and modification time (ns)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


class ImageCache:
    """The decoded pixels of any images of one size and colour mode, by absolute path."""

    def __init__(self, size: tuple[int, int], color_mode: str, root: Path = CACHE_ROOT):
        self.size, self.color_mode = (int(size[0]), int(size[1])), color_mode
        self.shape = (*self.size, 3 if color_mode == "rgb" else 1)
        self.row_bytes = int(np.prod(self.shape))
        self.folder = Path(root) / f"{self.size[0]}x{self.size[1]}-{color_mode}"
        self.pixels_file, self.index_file = self.folder / "pixels.u8", self.folder / "index.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_index(self) -> dict[str, list[int]]:
        """path -> [row, size, mtime_ns]; an unreadable index counts as empty (everything decodes again)."""
        try:
            index = json.loads(self.index_file.read_text())
            return index["images"] if index.get("shape") == list(self.shape) else {}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _write_index(self, images: dict[str, list[int]]) -> None:
        with atomic_path(self.index_file) as tmp:
            tmp.write_text(json.dumps({"shape": list(self.shape), "images": images}))

    def rows(self, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        """The cache's pixels (N x H x W x C uint8, mapped read-only) and the row of each of `files`,
        decoding first the files the cache does not hold as they are now."""
        paths = [str(Path(f).resolve()) for f in files]
        with self._locked():
            index = self._read_index()
            stale = {}
            for path in paths:
                stamp = _stamp(Path(path))
                if index.get(path, [None])[1:] != stamp:
                    stale[path] = stamp
            if stale:
                index = self._add(index, list(stale), list(stale.values()))
            # Mapped under the lock: a compaction by another process replaces the file (a new inode),
            # and this mapping keeps the rows the index read here points at.
            n_rows = self._rows_on_disk(index)
            pixels = np.memmap(self.pixels_file, dtype=np.uint8, mode="r", shape=(n_rows, *self.shape))
        return pixels, np.array([index[p][0] for p in paths], dtype=np.int64)

    def _rows_on_disk(self, index: dict[str, list[int]]) -> int:
        return 1 + max((row for row, _, _ in index.values()), default=-1)

    def _add(self, index: dict[str, list[int]], paths: list[str], stamps: list[list[int]]) -> dict:
        """Decode `paths` into new rows at the end of the pixels file, then point the index at them."""
        live = len(index) - sum(1 for p in paths if p in index)
        if index and self._rows_on_disk(index) > 2 * max(live, 1):
            index = self._compact(index)
        first = self._rows_on_disk(index)
        index, decoded = dict(index), 0
        try:
            with open(self.pixels_file, "ab") as out:  # appends land at the end, after the truncate
                out.truncate(first * self.row_bytes)  # bytes a crashed update left past the last indexed row
                with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                    chunks = [paths[i : i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
                    for chunk, pixels in zip(chunks, pool.map(self._decode, chunks)):
                        out.write(pixels.tobytes())
                        decoded += len(chunk)
                        if decoded % PROGRESS_EVERY < DECODE_CHUNK or decoded == len(paths):
                            log.info("decoded %d / %d new or changed images", decoded, len(paths))
                out.flush()
                os.fsync(out.fileno())
        finally:  # an unreadable image stops the update: what was decoded before it is kept
            for offset, (path, (size, mtime)) in enumerate(zip(paths[:decoded], stamps)):
                index[path] = [first + offset, size, mtime]
            if decoded:
                self._write_index(index)
        return index

    def _decode(self, paths: list[str]) -> np.ndarray:
        return np.stack([load_image(Path(p), self.size, self.color_mode) for p in paths])

    def _compact(self, index: dict[str, list[int]]) -> dict[str, list[int]]:
        """Rewrite the pixels file with only the rows the index points at, in their order."""
        # Images gone from disk are dropped too: the cache serves every project, so only here is it
        # known that nobody will ask for them.
        kept = sorted(((p, entry) for p, entry in index.items() if os.path.exists(p)), key=lambda item: item[1][0])
        old = np.memmap(self.pixels_file, dtype=np.uint8, mode="r", shape=(self._rows_on_disk(index), self.row_bytes))
        with atomic_path(self.pixels_file) as tmp:
            with open(tmp, "wb") as out:
                for _, (row, _, _) in kept:
                    out.write(old[row].tobytes())
                out.flush()
                os.fsync(out.fileno())
            compacted = {path: [new_row, size, mtime] for new_row, (path, (_, size, mtime)) in enumerate(kept)}
            self._write_index({})  # between the two renames, an empty index is the only safe one
        self._write_index(compacted)
        del old
        log.info("image cache compacted to %d images", len(compacted))
        return compacted
