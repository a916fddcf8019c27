"""Frozen features of a Keras application pretrained on ImageNet, under the trained head: for people's own
RGB (or grayscale) images, where a few hundred labels cannot train a network from scratch.

Images are resized to the application's input size, grayscale repeated to three channels and rescaled
from [0, 1] to what the application was trained on; its global-average-pooled features feed the head,
and only the head trains. `weights: imagenet` takes Keras' own download (cached under $KERAS_HOME/models,
~/.keras/models by default); offline, the run stops in one line naming the file to fetch and where to put
it. `weights` may also be the path of that file, or `random` (no download: for tests and timings). The
application computes in float32 whatever model.precision is: Keras builds it under the process-wide dtype
policy, which a run leaves alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from alstudy.errors import PipelineError
from alstudy.recipes.networks._base import NoOptions, register

# Application -> how [0, 1] pixels map to its inputs (scale, offset) and the input sizes its ImageNet weights have.
APPLICATIONS = {
    "MobileNetV2": ((2.0, -1.0), (96, 128, 160, 192, 224)),  # inputs in [-1, 1]
    "EfficientNetB0": ((255.0, 0.0), None),  # inputs in [0, 255] (it normalises them itself); any size >= 32
}


class PretrainedOptions(NoOptions):
    application: Literal["MobileNetV2", "EfficientNetB0"] = Field(
        "MobileNetV2", description="the Keras application whose ImageNet features the head trains on"
    )
    weights: str = Field(
        "imagenet",
        description="`imagenet` (Keras' download, cached), the path of that weights file, or `random` (no download)",
    )
    input_size: int = Field(96, ge=32, description="images are resized to input_size x input_size")

    @field_validator("input_size")
    @classmethod
    def _sizes_with_weights(cls, size: int, info) -> int:
        application = info.data.get("application", "MobileNetV2")
        sizes = APPLICATIONS[application][1]
        if sizes and size not in sizes:
            raise ValueError(f"{application}'s ImageNet weights exist for {', '.join(map(str, sizes))} pixels")
        return size


def keras_cache() -> Path:
    """Where Keras keeps downloaded weights (its own rule: $KERAS_HOME, else ~/.keras)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def _application(options: PretrainedOptions, weights):
    import keras

    build = getattr(keras.applications, options.application)
    return build(
        include_top=False,
        weights=weights,
        input_shape=(options.input_size, options.input_size, 3),
        pooling="avg",
    )


def load_application(options: PretrainedOptions):
    """The application with its weights; a missing download or file stops in one line."""
    weights = options.weights
    if weights == "random":
        return _application(options, None)
    if weights != "imagenet":
        if not Path(weights).is_file():
            raise PipelineError(
                f"network_options.weights: {weights} is not a file; give the path of the {options.application} "
                "ImageNet weights file (no top), or `imagenet` to download it"
            )
        return _application(options, weights)
    try:
        return _application(options, "imagenet")
    except Exception as error:  # Keras raises a bare Exception when its download fails
        found = re.search(r"https?://\S+?\.h5", str(error))
        if not found:
            raise
        url = found.group(0)
        raise PipelineError(
            f"network_options.weights: imagenet: {options.application}'s weights could not be downloaded from {url} "
            f"(offline?); download that file to {keras_cache() / url.rsplit('/', 1)[-1]} (or give its path as "
            "network_options.weights) and rerun"
        ) from None


@register(
    "pretrained",
    options=PretrainedOptions,
    summary="frozen global-average-pooled features of an ImageNet Keras application (MobileNetV2), head trained",
)
def trunk(input_shape, params, options: PretrainedOptions, policy) -> list:
    import keras
    from keras import layers

    application = load_application(options)
    application.trainable = False  # frozen features: only the head trains (and batch norm stays in inference mode)
    scale, offset = APPLICATIONS[options.application][0]
    inputs = keras.Input(shape=input_shape)
    x = layers.Resizing(options.input_size, options.input_size)(inputs)
    if input_shape[-1] == 1:
        x = layers.Concatenate()([x, x, x])
    x = layers.Rescaling(scale, offset)(x)
    features = application(x, training=False)
    return [keras.Model(inputs, features, name=f"pretrained_{options.application.lower()}")]
