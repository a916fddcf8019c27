"""Image folders written with Pillow, and files cut short."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
