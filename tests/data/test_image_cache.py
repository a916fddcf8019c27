"""The decoded-image cache on real PNG and JPEG files: decoded once, new and changed files only,
a crash or an unreadable file loses nothing decoded, stale rows compacted away."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alstudy.data import image_cache
from alstudy.data.image_cache import ImageCache
from alstudy.data.image_folder import list_images, load_image
from alstudy.errors import PipelineError
from helpers.images import make_image_folder, truncate_file

SIZE = (16, 12)


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The paths the cache decodes, in order, as it calls load_image."""
    seen: list[str] = []

    def counting(path, size, color_mode):
        seen.append(str(path))
        return load_image(path, size, color_mode)

    monkeypatch.setattr(image_cache, "load_image", counting)
    return seen


def folder_files(tmp_path: Path, per_class: int = 6) -> list[Path]:
    return list_images(make_image_folder(tmp_path / "images", per_class=per_class))


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_rows_hold_what_load_image_gives(tmp_path, decodes, color_mode):
    files = folder_files(tmp_path)
    pixels, rows = ImageCache(SIZE, color_mode, tmp_path / "cache").rows(files)
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (*SIZE, 3 if color_mode == "rgb" else 1)
    for path, row in zip(files, rows):
        np.testing.assert_array_equal(pixels[row], load_image(path, SIZE, color_mode))
    assert len(decodes) == len(files)


def test_a_second_read_decodes_nothing_and_new_files_only_themselves(tmp_path, decodes):
    files = folder_files(tmp_path)
    cache = ImageCache(SIZE, "rgb", tmp_path / "cache")
    _, first = cache.rows(files)
    decodes.clear()
    pixels, again = ImageCache(SIZE, "rgb", tmp_path / "cache").rows(list(reversed(files)))  # a new process
    assert decodes == [] and list(again) == list(reversed(first))
    new = tmp_path / "images" / "gear" / "new.png"
    Image.fromarray(np.full((10, 10, 3), 200, np.uint8)).save(new)
    pixels, rows = cache.rows(files + [new])
    assert decodes == [str(new.resolve())]
    assert list(rows[:-1]) == list(first) and (pixels[rows[-1]] == 200).all()


def test_a_changed_file_is_decoded_again(tmp_path, decodes):
    files = folder_files(tmp_path)
    cache = ImageCache(SIZE, "rgb", tmp_path / "cache")
    cache.rows(files)
    decodes.clear()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(files[0], format="PNG")
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # as a later save would
    pixels, rows = cache.rows(files)
    assert decodes == [str(files[0].resolve())]
    assert (pixels[rows[0]] == 0).all()


def test_an_unreadable_file_stops_in_one_line_and_keeps_what_was_decoded(tmp_path, decodes, monkeypatch):
    files = folder_files(tmp_path, per_class=120)  # more than one decoding chunk
    monkeypatch.setattr(image_cache, "DECODE_CHUNK", 64)
    bad = files[200]
    truncate_file(bad, keep=0.3)
    cache = ImageCache(SIZE, "rgb", tmp_path / "cache")
    with pytest.raises(PipelineError, match=f"^{bad}: not a readable image"):
        cache.rows(files)
    decodes.clear()
    make_image_folder(tmp_path / "fixed", per_class=1)
    (tmp_path / "fixed" / "bolt" / "img_000.png").replace(bad)
    pixels, rows = cache.rows(files)
    # The chunks before the bad file's were kept: only its chunk and the ones after decode again.
    assert str(files[0].resolve()) not in decodes and str(bad.resolve()) in decodes
    assert len(decodes) == len(files) - 192
    for path, row in zip(files, rows):
        np.testing.assert_array_equal(pixels[row], load_image(path, SIZE, "rgb"))


def test_bytes_a_crash_left_past_the_index_are_cut(tmp_path, decodes):
    files = folder_files(tmp_path)
    cache = ImageCache(SIZE, "rgb", tmp_path / "cache")
    cache.rows(files[:5])
    with open(cache.pixels_file, "ab") as out:  # a crash after appending pixels, before the index
        out.write(b"\x07" * (3 * cache.row_bytes + 11))
    pixels, rows = cache.rows(files)
    assert pixels.shape[0] == len(files)
    for path, row in zip(files, rows):
        np.testing.assert_array_equal(pixels[row], load_image(path, SIZE, "rgb"))


def test_stale_rows_are_compacted_away(tmp_path, decodes):
    files = folder_files(tmp_path, per_class=2)
    cache = ImageCache(SIZE, "rgb", tmp_path / "cache")
    for round_ in range(4):  # every file changes each time: 3 stale rows per live one at the end
        for i, path in enumerate(files):
            Image.fromarray(np.full((8, 8, 3), 10 * round_ + i, np.uint8)).save(path, format="PNG")
            os.utime(path, ns=(0, 10**9 * (round_ + 1)))
        pixels, rows = cache.rows(files)
        assert [int(pixels[r][0, 0, 0]) for r in rows] == [10 * round_ + i for i in range(len(files))]
    assert pixels.shape[0] <= 2 * len(files)
