"""Each augmentation does what it says to every image, seeded; a recipe's list applies in order; and training
with augmentation is reproducible and leaves the order of batches as without it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from alstudy.errors import PipelineError
from alstudy.params import ModelParams, parse_params
from alstudy.recipes import augmentations
from alstudy.recipes.augmentations.cutout import CutoutOptions
from alstudy.recipes.augmentations.shift import ShiftOptions


def images(n: int = 64, size: int = 12, channels: int = 1) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 1.0, size=(n, size, size, channels)).astype(np.float32)


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved down dy and right dx, zeros where nothing moved in."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_shift_moves_each_image_by_at_most_pixels_with_black_borders():
    x = images()
    out = augmentations.get("shift").apply(x, np.random.default_rng(1), ShiftOptions(pixels=2))
    assert out.shape == x.shape and out.dtype == np.float32
    offsets = []
    for original, moved in zip(x, out):
        matches = [
            (dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if np.array_equal(moved, shifted(original, dy, dx))
        ]
        assert len(matches) == 1, matches
        offsets.append(matches[0])
    assert len(set(offsets)) > 10  # drawn per image, all 25 offsets possible
    again = augmentations.get("shift").apply(x, np.random.default_rng(1), ShiftOptions(pixels=2))
    assert np.array_equal(out, again)


def test_flip_mirrors_about_half_the_images_and_leaves_the_rest():
    x = images(400)
    out = augmentations.get("flip").apply(x, np.random.default_rng(2), augmentations.NoOptions())
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 150 < sum(flipped) < 250
    assert np.array_equal(x, images(400))  # the input is not changed in place


def test_cutout_zeroes_one_square_per_image_clipped_by_the_border():
    x = images(200, size=16, channels=3)
    out = augmentations.get("cutout").apply(x, np.random.default_rng(3), CutoutOptions(size=6))
    for original, cut in zip(x, out):
        zeroed = np.all(cut == 0, axis=-1)
        rows, cols = np.nonzero(zeroed)
        assert rows.size > 0
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height <= 6 and width <= 6 and zeroed.sum() == height * width  # one rectangle
        assert np.array_equal(cut[~zeroed], original[~zeroed])
    sizes = {int(np.all(c == 0, axis=-1).sum()) for c in out}
    assert 36 in sizes and min(sizes) < 36  # whole squares inside, clipped ones at the border


def test_a_recipes_list_applies_in_order_and_an_empty_one_is_none():
    assert augmentations.pipeline({}) is None
    x = images()
    both = augmentations.pipeline({"flip": {}, "cutout": {"size": 4}})(x, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    by_hand = augmentations.get("cutout").apply(
        augmentations.get("flip").apply(x, rng, augmentations.NoOptions()), rng, CutoutOptions(size=4)
    )
    assert np.array_equal(both, by_hand)


@pytest.mark.parametrize(
    "augmentation, message",
    [
        ({"rotate": {}}, "model.augmentation: unknown augmentation 'rotate'; allowed: cutout, flip, shift"),
        ({"shift": {"pixels": 0}}, "model.augmentation: shift.pixels: Input should be greater than or equal to 1"),
        ({"cutout": {"side": 4}}, "model.augmentation: cutout.side: unknown key"),
    ],
)
def test_a_wrong_augmentation_stops_in_one_line(project, augmentation, message):
    import yaml

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["model"]["augmentation"] = augmentation
    with pytest.raises(PipelineError, match="^params.yaml: " + re.escape(message)):
        parse_params(raw)


def test_augmented_training_is_seeded_and_draws_the_batch_order_as_without_it(monkeypatch):
    from alstudy.learning.model import CNN
    from helpers.runs import learnable_split

    train, test = learnable_split(120, 0), learnable_split(60, 1)
    plain = ModelParams(filters=[4, 4, 4], dense_units=8, epochs=2, batch_size=16, precision="float32")
    augmented = plain.model_copy(update={"augmentation": {"flip": {}, "cutout": {"size": 6}}})

    orders: dict[str, list] = {}

    def fitted(params: ModelParams, seed: int, name: str) -> np.ndarray:
        cnn = CNN((28, 28, 1), 10, params)
        epochs = cnn._trainer._epochs
        original = epochs.epoch
        seen = orders.setdefault(name, [])

        def recording(x, y, order):
            seen.append(np.asarray(order).copy())
            return original(x, y, order)

        monkeypatch.setattr(epochs, "epoch", recording)
        cnn.reinitialize(seed)
        cnn.fit(train.x, train.y, seed=seed)
        return cnn.predict_proba(test.x)

    first, again = fitted(augmented, 0, "augmented"), fitted(augmented, 0, "again")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, fitted(plain, 0, "plain"))
    assert all(np.array_equal(a, p) for a, p in zip(orders["augmented"], orders["plain"]))
