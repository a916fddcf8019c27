"""A small CIFAR-style residual network (He et al. 2016, section 4.2), sized for a CPU study.

A 3x3 stem, then three stages of basic blocks (two 3x3 convolutions with batch normalisation and an
identity shortcut; the first block of stages 2 and 3 halves the resolution, its shortcut a strided
1x1 convolution), then global average pooling. One block per stage is ResNet-8; three is ResNet-20.
"""

from __future__ import annotations

from pydantic import Field

from alstudy.recipes.networks._base import NoOptions, register

# Keras' default (0.99) leaves the moving statistics near their initial values after the few hundred steps a
# round of a few hundred labels trains for, and evaluation then sees the wrong scale; 0.9 is PyTorch's default.
BN_MOMENTUM = 0.9


class ResNetOptions(NoOptions):
    widths: list[int] = Field([16, 32, 64], min_length=1, description="each stage's filters")
    blocks_per_stage: int = Field(1, ge=1, description="basic blocks per stage: 1 is ResNet-8, 3 is ResNet-20")


@register("resnet", options=ResNetOptions, summary="a CIFAR-style ResNet (ResNet-8 by default), batch norm, GAP")
def trunk(input_shape, params, options: ResNetOptions, policy) -> list:
    import keras
    from keras import layers

    def conv(filters: int, stride: int = 1, size: int = 3):
        return layers.Conv2D(filters, size, strides=stride, padding="same", use_bias=False, dtype=policy)

    def block(x, filters: int, stride: int):
        shortcut = x
        y = layers.ReLU(dtype=policy)(
            layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy)(conv(filters, stride)(x))
        )
        y = layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy)(conv(filters)(y))
        if stride != 1 or x.shape[-1] != filters:
            shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy)(conv(filters, stride, size=1)(x))
        return layers.ReLU(dtype=policy)(layers.Add(dtype=policy)([y, shortcut]))

    inputs = keras.Input(shape=input_shape)
    x = layers.ReLU(dtype=policy)(
        layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy)(conv(options.widths[0])(inputs))
    )
    for stage, filters in enumerate(options.widths):
        for i in range(options.blocks_per_stage):
            x = block(x, filters, 2 if stage > 0 and i == 0 else 1)
    x = layers.GlobalAveragePooling2D(dtype=policy)(x)
    depth = 2 + 2 * options.blocks_per_stage * len(options.widths)
    return [keras.Model(inputs, x, name=f"resnet{depth}")]
