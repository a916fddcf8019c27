"""The user's own images: one sub-folder per class, read with Pillow into prepared splits.

The layout is that of Keras' `image_dataset_from_directory`: `<path>/<class>/<image>`.
A `train/` and a `test/` folder with the same class folders inside give the split;
otherwise a seeded split stratified by class holds out `test_fraction` of each class.
Any file Pillow reads counts (PNG, JPEG, ...), in any size and mode: each image is
converted to RGB or greyscale and resized (bilinear) to `image_size`. The arrays are
written through memory maps a batch at a time, so a folder larger than RAM is fine.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from alstudy.data.preprocess import class_counts, one_hot
from alstudy.errors import PipelineError
from alstudy.fileio import save_json

log = logging.getLogger("folder")
PROGRESS_EVERY = 2000


@dataclass(frozen=True)
class FolderSplit:
    class_names: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]  # (image file, class index)
    test: tuple[tuple[Path, int], ...]
    from_folders: bool  # True: train/ and test/ given; False: a seeded split


def list_images(folder: Path) -> list[Path]:
    """Every file under `folder`, at any depth, sorted; hidden files (.DS_Store, ...) left out."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))


def _class_files(root: Path, name: str) -> dict[str, list[Path]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c.name: list_images(c) for c in classes}
    if len(files) < 2:
        found = f"only {next(iter(files))!r}" if files else "none"
        raise PipelineError(
            f"{root}: needs one sub-folder per class, at least 2 ({found}); "
            f"see data.folders.{name} in docs/reference/params.md"
        )
    for class_name, images in files.items():
        if not images:
            raise PipelineError(f"{root / class_name}: empty class folder; add images or remove the folder")
    return files


def scan(root: Path, name: str, test_fraction: float, seed: int) -> FolderSplit:
    """Which files go to train and to test, with their class indices (classes in folder-name order)."""
    if not root.is_dir():
        raise PipelineError(
            f"{root}: no such folder (data.folders.{name}.path); put the images there, "
            "one sub-folder per class, or fix the path"
        )
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = _class_files(root / "train", name), _class_files(root / "test", name)
        if sorted(train) != sorted(test):
            raise PipelineError(
                f"{root}: train/ and test/ have different class folders "
                f"({', '.join(sorted(set(train) ^ set(test)))}); give both the same classes"
            )
        names = tuple(sorted(train))
        return FolderSplit(
            names,
            tuple((f, i) for i, c in enumerate(names) for f in train[c]),
            tuple((f, i) for i, c in enumerate(names) for f in test[c]),
            True,
        )
    files = _class_files(root, name)
    names = tuple(sorted(files))
    rng = np.random.default_rng(seed)
    train, test = [], []
    for index, class_name in enumerate(names):
        images = files[class_name]
        n_test = int(round(len(images) * test_fraction))
        if n_test < 1 or n_test >= len(images):
            raise PipelineError(
                f"{root / class_name}: {len(images)} image(s) cannot be split {1 - test_fraction:.0%}/"
                f"{test_fraction:.0%} with at least one on each side; add images or change "
                f"data.folders.{name}.test_fraction"
            )
        order = rng.permutation(len(images))
        test += [(images[i], index) for i in sorted(order[:n_test])]
        train += [(images[i], index) for i in sorted(order[n_test:])]
    return FolderSplit(names, tuple(train), tuple(test), False)


def load_image(path: Path, size: tuple[int, int], color_mode: str) -> np.ndarray:
    """One image as uint8 H x W x C, converted and resized; an unreadable file stops with one line."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if color_mode == "rgb" else "L")
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise PipelineError(
            f"{path}: not a readable image ({str(error).splitlines()[0][:120]}); replace or remove it"
        ) from None
    return pixels if pixels.ndim == 3 else pixels[..., np.newaxis]


def _write_split(
    out: Path,
    split: str,
    items: tuple[tuple[Path, int], ...],
    size: tuple[int, int],
    color_mode: str,
    n_classes: int,
    dataset: str,
) -> None:
    channels = 3 if color_mode == "rgb" else 1
    x = np.lib.format.open_memmap(
        out / f"x_{split}.npy", mode="w+", dtype=np.float32, shape=(len(items), *size, channels)
    )
    for i, (path, _) in enumerate(items):
        x[i] = load_image(path, size, color_mode).astype(np.float32) / np.float32(255)
        if (i + 1) % PROGRESS_EVERY == 0:
            log.info("%s: %s: %d / %d images", dataset, split, i + 1, len(items))
    x.flush()
    del x
    np.save(out / f"y_{split}.npy", one_hot(np.array([label for _, label in items], dtype=np.int64), n_classes))


def prepare_folder(
    root: Path, out_dir: Path, name: str, image_size: tuple[int, int], color_mode: str, test_fraction: float, seed: int
) -> FolderSplit:
    """Write the folder's prepared splits to `out_dir`, all or nothing (built beside it, then renamed)."""
    split = scan(root, name, test_fraction, seed)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        n_classes = len(split.class_names)
        for name_, items in (("train", split.train), ("test", split.test)):
            _write_split(partial, name_, items, image_size, color_mode, n_classes, name)
        labels = {
            s: np.array([label for _, label in items]) for s, items in (("train", split.train), ("test", split.test))
        }
        save_json(
            partial / "meta.json",
            {
                "dataset": name,
                "class_names": list(split.class_names),
                "source": str(root),
                "split": "train/ and test/ folders"
                if split.from_folders
                else f"seeded, stratified, test {test_fraction}",
                "train_size": len(split.train),
                "test_size": len(split.test),
                "image_shape": [*image_size, 3 if color_mode == "rgb" else 1],
                "train_class_counts": class_counts(labels["train"], n_classes),
                "test_class_counts": class_counts(labels["test"], n_classes),
            },
        )
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return split
