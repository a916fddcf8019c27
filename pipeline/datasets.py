"""The downloadable datasets: their files and published checksums."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawFile:
    name: str
    # Published MD5 of the file as upstream serves it.
    md5: str
    # SHA-256 of the decompressed bytes, for gzip files: a recompressed copy
    # (Debian's dataset-fashion-mnist) has other archive bytes but this content.
    content_sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple[RawFile, ...]
    class_names: tuple[str, ...]


FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    files=(
        RawFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        RawFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        RawFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        RawFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    # The binary version: fixed-size records, so nothing is ever unpickled.
    files=(RawFile("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", size=170_052_171),),
    class_names=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
)

SPECS = {spec.name: spec for spec in (FASHION_MNIST, CIFAR10)}
CLASS_NAMES = {**{name: spec.class_names for name, spec in SPECS.items()},
               "fashion_mnist_imbalanced": FASHION_MNIST.class_names}
