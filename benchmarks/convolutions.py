"""Where bfloat16 gains little: the CNN's convolutions one at a time, float32 against bfloat16.

Each Conv2D of the project's CNN (its filters, kernel, "same" padding, ReLU and dtype policy, as
alstudy.learning.model.build_cnn makes it) runs alone on an input of its real shape at the training batch
size: the forward pass, and a training step's share (the forward pass and the gradients of the
output for the kernel and bias, and for the input except at the first layer, which has no layer
before it). Then the first convolution, which sees one channel on Fashion-MNIST, in the shapes that
could feed AMX better: larger batches, the input's channels zero-padded to 16 or 32 (the same
outputs, more arithmetic), and im2col (the k x k shifted copies of the input side by side, then one
matmul, its inner dimension padded with zeros; twice as fast as tf.image.extract_patches, measured by
hand on this project's 2-core machine).
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from alstudy.learning.model import POLICIES, build_cnn, cpu_has_bfloat16
from alstudy.params import ModelParams
from benchmarks.common import heading

PRECISIONS = ("float32", "bfloat16")


def seconds_per_call(fn, min_seconds: float) -> float:
    """Best of 3 rounds of calls, each round at least `min_seconds` long, after one warm-up call."""
    fn()
    calls, best = 1, np.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed / calls)
        calls = max(calls, int(np.ceil(min_seconds / max(best, 1e-9))))
    return best


def time_conv(
    shape: tuple[int, ...], filters: int, kernel_size: int, precision: str, input_gradient: bool, min_seconds: float
) -> dict:
    """Microseconds per image of one Conv2D (as build_cnn makes it) on a random input of `shape` (B, H, W, C)."""
    rng = np.random.default_rng(0)
    layer = keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu", dtype=POLICIES[precision])
    x = tf.cast(tf.constant(rng.random(shape, dtype=np.float32)), layer.compute_dtype)
    layer.build(x.shape)
    upstream = tf.cast(tf.constant(rng.standard_normal((*shape[:3], filters)).astype(np.float32)), layer.compute_dtype)

    forward = tf.function(lambda x: layer(x))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        sources = [x, *layer.trainable_variables] if input_gradient else layer.trainable_variables
        return tape.gradient(y, sources, output_gradients=upstream)

    batch = shape[0]
    return {
        "forward_us": 1e6 * seconds_per_call(lambda: forward(x), min_seconds) / batch,
        "step_us": 1e6 * seconds_per_call(lambda: step(x), min_seconds) / batch,
    }


def time_im2col(
    shape: tuple[int, ...], filters: int, kernel_size: int, inner: int, precision: str, min_seconds: float
) -> dict:
    """The first convolution as a patches x kernel matmul (+ bias, ReLU), the patch length zero-padded to `inner`."""
    rng = np.random.default_rng(0)
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    batch, height, width, channels = shape
    patch = kernel_size * kernel_size * channels
    x = tf.constant(rng.random(shape, dtype=np.float32))
    kernel = tf.Variable(rng.standard_normal((max(inner, patch), filters)).astype(np.float32) * 0.1)
    bias = tf.Variable(np.zeros(filters, np.float32))
    upstream = tf.cast(tf.constant(rng.standard_normal((batch * height * width, filters)).astype(np.float32)), dtype)

    def layer(x):
        before, after = (kernel_size - 1) // 2, kernel_size // 2  # "same" padding
        padded = tf.pad(tf.cast(x, dtype), [[0, 0], [before, after], [before, after], [0, 0]])
        shifted = [padded[:, i : i + height, j : j + width, :] for i in range(kernel_size) for j in range(kernel_size)]
        patches = tf.reshape(tf.concat(shifted, axis=-1), (-1, patch))
        patches = tf.pad(patches, [[0, 0], [0, max(inner, patch) - patch]])
        return tf.nn.relu(tf.matmul(patches, tf.cast(kernel, dtype)) + tf.cast(bias, dtype))

    forward = tf.function(layer)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x)
        return tape.gradient(y, [kernel, bias], output_gradients=upstream)

    return {
        "forward_us": 1e6 * seconds_per_call(lambda: forward(x), min_seconds) / batch,
        "step_us": 1e6 * seconds_per_call(lambda: step(x), min_seconds) / batch,
    }


def conv_flops(height: int, width: int, kernel_size: int, channels: int, filters: int) -> int:
    """Forward multiply-adds x 2 per image of a "same" convolution."""
    return 2 * height * width * kernel_size * kernel_size * channels * filters


def both(fn) -> dict:
    return {precision: fn(precision) for precision in PRECISIONS}


def describe(label: str, result: dict, flops: int, step_flops: int) -> str:
    f32, bf16 = result["float32"], result["bfloat16"]
    return (
        f"  {label:34s} forward {f32['forward_us']:6.1f} / {bf16['forward_us']:6.1f} us per image "
        f"({f32['forward_us'] / bf16['forward_us']:.2f}x, bfloat16 {flops / bf16['forward_us'] / 1e3:5.1f} "
        f"GFLOP/s) | step {f32['step_us']:6.1f} / {bf16['step_us']:6.1f} ({f32['step_us'] / bf16['step_us']:.2f}x, "
        f"{step_flops / bf16['step_us'] / 1e3:5.1f} GFLOP/s)"
    )


def bench_convolutions(
    model_params: ModelParams,
    input_shape: tuple[int, int, int] = (28, 28, 1),
    batches: tuple[int, ...] = (256, 2048),
    padded_channels: tuple[int, ...] = (16, 32),
    im2col_inner: tuple[int, ...] = (9, 32),
    min_seconds: float = 0.3,
) -> dict:
    heading("7. CONVOLUTIONS, float32 / bfloat16: where AMX is starved")
    if not cpu_has_bfloat16():
        print("  skipped: this CPU has neither AVX512-BF16 nor AMX-BF16", flush=True)
        return {"skipped": "no bfloat16 units"}
    batch, k = model_params.batch_size, model_params.kernel_size
    model = build_cnn(input_shape, 10, model_params)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    print(
        f"  each Conv2D alone at batch {batch}, float32 / bfloat16; GFLOP/s counts the forward pass "
        "(step: forward + gradients, x3, x2 at the first layer)",
        flush=True,
    )
    layers = []
    for i, conv in enumerate(convs):
        _, height, width, channels = conv.input.shape
        shape = (batch, height, width, channels)
        flops = conv_flops(height, width, k, channels, conv.filters)
        result = both(lambda p: time_conv(shape, conv.filters, k, p, input_gradient=i > 0, min_seconds=min_seconds))
        layers.append(
            {
                "name": conv.name,
                "input": [height, width, channels],
                "filters": conv.filters,
                "forward_mflop": flops / 1e6,
                **result,
            }
        )
        print(
            describe(
                f"{conv.name} {height}x{width}x{channels} -> {conv.filters}", result, flops, (3 if i else 2) * flops
            ),
            flush=True,
        )

    first = convs[0]
    height, width, channels = first.input.shape[1:]
    useful = conv_flops(height, width, k, channels, first.filters)  # what the model needs, whatever the variant
    print(
        f"  the first convolution ({height}x{width}x{channels} -> {first.filters}) in other shapes; "
        "GFLOP/s counts only its own arithmetic",
        flush=True,
    )
    variants = []

    def add(label: str, kind: str, result: dict, **shape) -> None:
        variants.append({"variant": label, "kind": kind, **shape, **result})
        print(describe(label, result, useful, 2 * useful), flush=True)

    for size in batches:
        add(
            f"batch {size}",
            "batch",
            both(lambda p: time_conv((size, height, width, channels), first.filters, k, p, False, min_seconds)),
            batch=size,
        )
    for padded in padded_channels:
        add(
            f"channels zero-padded to {padded}",
            "padded",
            both(lambda p: time_conv((batch, height, width, padded), first.filters, k, p, False, min_seconds)),
            batch=batch,
            channels=padded,
        )
    for inner in im2col_inner:
        add(
            f"im2col, patch length {max(inner, k * k * channels)}",
            "im2col",
            both(lambda p: time_im2col((batch, height, width, channels), first.filters, k, inner, p, min_seconds)),
            batch=batch,
            inner=max(inner, k * k * channels),
        )
    return {"batch_size": batch, "layers": layers, "first_conv": variants}
