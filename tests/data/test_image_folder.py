"""Image-folder datasets: real PNG and JPEG files written with Pillow, read into prepared splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from alstudy.data.image_folder import load_image, prepare_folder, scan
from alstudy.data.preprocess import load_splits
from alstudy.errors import PipelineError
from alstudy.params import parse_params
from helpers.images import FOLDER_CLASSES, make_image_folder, truncate_file

REPO = Path(__file__).resolve().parents[2]


def prepare(root: Path, out: Path, **kw):
    args = {"name": "parts", "image_size": (16, 12), "color_mode": "rgb", "test_fraction": 0.5, "seed": 0, **kw}
    return prepare_folder(
        root, out, args["name"], args["image_size"], args["color_mode"], args["test_fraction"], args["seed"]
    )


def test_mixed_formats_modes_and_sizes_become_scaled_one_hot_splits(tmp_path):
    root = make_image_folder(tmp_path / "parts", per_class=6)
    out = tmp_path / "prepared"
    split = prepare(root, out)
    assert split.class_names == FOLDER_CLASSES and not split.from_folders
    train, test = load_splits(out)
    assert train.x.shape == (9, 16, 12, 3) and test.x.shape == (9, 16, 12, 3)
    assert train.x.dtype == np.float32 and 0 <= train.x.min() and train.x.max() <= 1
    assert train.y.shape == (9, 3) and set(train.y.sum(axis=1)) == {1.0}
    assert np.bincount(train.labels).tolist() == [3, 3, 3]  # stratified
    meta = json.loads((out / "meta.json").read_text())
    assert meta["class_names"] == list(FOLDER_CLASSES) and meta["image_shape"] == [16, 12, 3]
    # Each class's band is brighter than the rest of the image, after resizing too.
    for x, label in zip(train.x, train.labels):
        rows = x.mean(axis=(1, 2))
        assert rows[label * 16 // 3 + 1 : (label + 1) * 16 // 3 - 1].mean() > rows.mean()


def test_grayscale_and_seeded_split(tmp_path):
    root = make_image_folder(tmp_path / "parts", per_class=5)
    first = prepare(root, tmp_path / "a", color_mode="grayscale", test_fraction=0.4)
    again = prepare(root, tmp_path / "b", color_mode="grayscale", test_fraction=0.4)
    other = prepare(root, tmp_path / "c", color_mode="grayscale", test_fraction=0.4, seed=1)
    assert first.test == again.test and first.test != other.test
    train, test = load_splits(tmp_path / "a")
    assert train.x.shape[1:] == (16, 12, 1) and len(test.x) == 6


def test_train_and_test_folders_give_the_split(tmp_path):
    make_image_folder(tmp_path / "parts" / "train", per_class=4)
    make_image_folder(tmp_path / "parts" / "test", per_class=2, seed=1)
    split = prepare(tmp_path / "parts", tmp_path / "out")
    assert split.from_folders and len(split.train) == 12 and len(split.test) == 6


@pytest.mark.parametrize(
    "damage, names",
    [
        ("truncated_jpeg", "img_002.jpg"),
        ("jpeg_cut_in_scan_data", "cut.jpg"),
        ("text_as_png", "notes.png"),
        ("empty_class", "empty class folder"),
        ("single_class", "at least 2"),
        ("too_few_images", "cannot be split"),
        ("missing_path", "no such folder"),
    ],
)
def test_bad_input_stops_in_one_line_and_writes_nothing(tmp_path, damage, names):
    root = make_image_folder(tmp_path / "parts", per_class=6)
    out = tmp_path / "prepared"
    if damage == "truncated_jpeg":
        truncate_file(root / "gear" / "img_002.jpg", 0.3)
    elif damage == "jpeg_cut_in_scan_data":  # a whole header, half the entropy-coded data: Pillow can
        cut_inside_scan_data(root / "gear" / "cut.jpg")  # decode it only with LOAD_TRUNCATED_IMAGES
    elif damage == "text_as_png":
        (root / "nut" / "notes.png").write_text("not an image at all\n")
    elif damage == "empty_class":
        (root / "washer").mkdir()
    elif damage == "single_class":
        for name in FOLDER_CLASSES[1:]:
            for f in (root / name).iterdir():
                f.unlink()
            (root / name).rmdir()
    elif damage == "too_few_images":
        for f in sorted((root / "bolt").iterdir())[1:]:
            f.unlink()
    elif damage == "missing_path":
        root = tmp_path / "nowhere"
    with pytest.raises(PipelineError) as caught:
        prepare(root, out)
    message = str(caught.value)
    assert names in message and "\n" not in message
    assert not out.exists() and not (tmp_path / "prepared.partial").exists()


def cut_inside_scan_data(path: Path) -> None:
    """A noisy JPEG whose bytes stop halfway through its scan data (after the SOS marker)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, quality=95)
    data = path.read_bytes()
    scan = data.index(b"\xff\xda")
    path.write_bytes(data[: scan + (len(data) - scan) // 2])


def test_a_jpeg_cut_inside_its_scan_data_is_what_pillow_would_pad_if_told_to(tmp_path):
    """The damage above is the kind LOAD_TRUNCATED_IMAGES hides: the test cannot pass by the header alone."""
    from PIL import Image, ImageFile

    path = tmp_path / "cut.jpg"
    cut_inside_scan_data(path)
    with Image.open(path) as image:  # the header is whole
        assert image.size == (96, 96)
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        with Image.open(path) as image:
            image.load()  # padded in silence
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    with pytest.raises(PipelineError, match="cut.jpg"):
        load_image(path, (32, 32), "rgb")


def test_a_failed_preparation_keeps_what_was_prepared_before(tmp_path):
    root = make_image_folder(tmp_path / "parts", per_class=6)
    out = tmp_path / "prepared"
    prepare(root, out)
    before = (out / "x_train.npy").read_bytes()
    (root / "nut" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(PipelineError, match="broken.png"):
        prepare(root, out)
    assert (out / "x_train.npy").read_bytes() == before


def test_folder_params_are_validated(tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["folders"] = {"parts": {"path": "data/raw/parts", "image_size": [64, 64]}}
    raw["data"]["datasets"] = ["fashion_mnist", "parts"]
    params = parse_params(raw)
    assert params.data.folders["parts"].color_mode == "rgb" and params.data.folders["parts"].image_size == (64, 64)
    for change, expected in (
        (("folders", {"cifar10": {"path": "x", "image_size": [32, 32]}}), "clashes with the built-in"),
        (("folders", {"parts": {"path": "x", "image_size": [4, 64]}}), "two integers >= 8"),
        (("datasets", ["fashion_mnist", "bolts"]), "unknown dataset 'bolts'"),
    ):
        bad = yaml.safe_load((REPO / "params.yaml").read_text())
        bad["data"]["folders"] = raw["data"]["folders"]
        bad["data"][change[0]] = change[1]
        with pytest.raises(PipelineError, match=expected):
            parse_params(bad)


def test_scan_lists_classes_in_folder_name_order(tmp_path):
    root = make_image_folder(tmp_path / "parts", per_class=4, classes=("zeta", "alpha", "mid"))
    assert scan(root, "parts", 0.25, 0).class_names == ("alpha", "mid", "zeta")


def test_export_writes_a_built_in_dataset_as_png_class_folders_with_its_own_pixels(tmp_path, monkeypatch):
    from PIL import Image

    from alstudy.console import export_images
    from helpers.formats import fashion_mnist_arrays, make_fashion_mnist_dir

    make_fashion_mnist_dir(tmp_path / "data/raw/fashion_mnist", n_train=40, n_test=20)
    monkeypatch.chdir(tmp_path)
    export_images.main(["--out", "pngs", "--train", "30", "--test", "10"])
    arrays = fashion_mnist_arrays(40, 20, 0)
    files = sorted((tmp_path / "pngs/train").rglob("*.png"))
    assert len(files) == 30 and len(list((tmp_path / "pngs/test").rglob("*.png"))) == 10
    assert (tmp_path / "pngs/train/T-shirt_top").is_dir() and (tmp_path / "pngs/train/Ankle_boot").is_dir()
    first = tmp_path / "pngs/train" / export_images.folder_name("T-shirt/top") / "000000.png"
    assert np.array_equal(np.asarray(Image.open(first)), arrays["x_train"][0])  # class 0 is image 0's label
    with pytest.raises(PipelineError, match="not empty"):
        export_images.main(["--out", "pngs"])
    # The export is a valid image folder: 10 classes, the dataset's own test split.
    split = prepare(tmp_path / "pngs", tmp_path / "prepared", image_size=(28, 28), color_mode="grayscale")
    assert len(split.class_names) == 10 and split.from_folders and len(split.test) == 10


def test_a_start_set_and_the_unlabelled_folder_exported_after_it_are_disjoint(tmp_path, monkeypatch, caplog):
    from PIL import Image

    from alstudy.console import export_images
    from helpers.formats import fashion_mnist_arrays, make_fashion_mnist_dir

    make_fashion_mnist_dir(tmp_path / "data/raw/fashion_mnist", n_train=40, n_test=20)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO", logger="export"):
        export_images.main(["--out", "start", "--train", "15", "--test", "0"])
    assert "training images 0 to 14 (15) written to start; an export with --skip 15 is disjoint from it" in caplog.text
    export_images.main(["--out", "unlabelled", "--unlabelled", "--train", "100", "--skip", "15"])  # 25 are left
    start = {p.name for p in (tmp_path / "start").rglob("*.png")}
    rest = sorted((tmp_path / "unlabelled").glob("*.png"))
    assert len(start) == 15 and len(rest) == 25 and not start & {p.name for p in rest}
    arrays = fashion_mnist_arrays(40, 20, 0)
    assert np.array_equal(np.asarray(Image.open(rest[0])), arrays["x_train"][15])  # named by its own index
    assert rest[0].name == "000015.png"


def test_the_cnn_follows_the_data_and_large_images_get_smaller_inference_batches():
    from alstudy.learning.model import CNN, inference_batch
    from alstudy.params import ModelParams

    cnn = CNN((64, 48, 3), 3, ModelParams(filters=[4, 4, 4], dense_units=8))
    assert cnn.model.input_shape == (None, 64, 48, 3) and cnn.model.output_shape == (None, 3)
    x = np.random.default_rng(0).random((5, 64, 48, 3), dtype=np.float32)
    assert cnn.predict_proba(x).shape == (5, 3)
    default = ModelParams()  # 2,048 as configured for the built-in sizes; fewer for 64 x 64 x 3
    assert inference_batch(CNN((28, 28, 1), 10, default).model, 2048) == 2048
    assert inference_batch(CNN((32, 32, 3), 10, default).model, 2048) == 2048
    assert inference_batch(CNN((64, 64, 3), 10, default).model, 2048) < 1024
