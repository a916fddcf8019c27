"""The seed's CNN: three Conv2D layers ("same" padding, ReLU), each followed by 2x2 max-pooling.

Its filters and kernel size are `model.filters` and `model.kernel_size`, as before networks were a choice.
"""

from __future__ import annotations

from alstudy.recipes.networks._base import register


@register("cnn", summary="the seed's CNN: three Conv2D + 2x2 max-pooling blocks (model.filters, model.kernel_size)")
def trunk(input_shape, params, options, policy) -> list:
    import keras

    layers = []
    for filters in params.filters:
        layers += [
            keras.layers.Conv2D(filters, params.kernel_size, padding="same", activation="relu", dtype=policy),
            keras.layers.MaxPooling2D(2, dtype=policy),
        ]
    return layers
