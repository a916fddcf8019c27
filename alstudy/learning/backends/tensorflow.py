"""TensorFlow (the default): one `tf.function` per training epoch and per kind of inference request.

Keras' `fit` goes back to Python for every batch (data adapter, callbacks, logs). On this
project's small CNN that overhead is as large as the arithmetic: measured on 2 cores, `fit`
trains about half as many images per second as the machine's matmul throughput allows
(benchmarks/bench_al.py prints both). Here the labelled set sits in memory as one tensor,
an epoch's batches are slices of a seeded permutation, and the loop over them runs inside
one `tf.function`.
"""

from __future__ import annotations

import logging
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from alstudy.errors import PipelineError

FIXED_SHAPES = False  # the functions take any batch size (input signatures with None)


def configure(threads: int, device: str) -> str:
    """Deterministic kernels (same seed, same numbers) on `threads` threads; the CPU (tensorflow-cpu has no
    GPU kernels)."""
    if device == "gpu":
        raise PipelineError(
            "model.device: gpu, but this install's TensorFlow (tensorflow-cpu) has no GPU kernels; set "
            "model.backend: jax with its GPU extra (pip install -e '.[jax-gpu]'), or model.device: cpu"
        )
    tf.config.experimental.enable_op_determinism()
    configure_threads(threads)
    return "cpu"


def configure_threads(threads: int) -> None:
    """Run TensorFlow's kernels on `threads` threads (only possible before its first op)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already running in this process (tests call stages in-process)
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            logging.getLogger("model").warning(
                "TensorFlow already runs with %s intra-op threads here; model.threads=%d applies to new processes",
                current or "default",
                threads,
            )


class Epochs:
    """The compiled epoch and validation loss of one model, traced on first use."""

    def __init__(self, model: keras.Model, loss: keras.losses.Loss, batch_size: int):
        self.model, self.loss, self.batch_size = model, loss, batch_size
        self._epoch = self._val_loss = None

    def _trace(self) -> None:
        model, optimizer, loss_fn, batch_size = self.model, self.model.optimizer, self.loss, self.batch_size
        optimizer.build(model.trainable_variables)  # its slots must exist before the graph is traced
        images = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        labels = tf.TensorSpec((None, model.output_shape[-1]), tf.float32)

        @tf.function(input_signature=[images, labels, tf.TensorSpec((None,), tf.int32)])
        def epoch(x, y, order):
            n = tf.shape(order)[0]
            total = tf.constant(0.0)
            for start in tf.range(0, n, batch_size):
                rows = order[start : start + batch_size]
                with tf.GradientTape() as tape:
                    loss = loss_fn(tf.gather(y, rows), model(tf.gather(x, rows), training=True))
                gradients = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(gradients, model.trainable_variables))
                total += loss * tf.cast(tf.shape(rows)[0], tf.float32)
            return total / tf.cast(n, tf.float32)

        @tf.function(input_signature=[images, labels])
        def val_loss(x, y):
            return loss_fn(y, model(x, training=False))

        self._epoch, self._val_loss = epoch, val_loss

    def held(self, array: np.ndarray):
        """The array as the epochs read it: one tensor, made once per fit."""
        return tf.constant(array, tf.float32)

    def epoch(self, x, y, order: np.ndarray) -> float:
        """One pass over x[order] in batches (x, y from `held`), updating the model; the mean training loss."""
        if self._epoch is None:
            self._trace()
        return float(self._epoch(x, y, tf.constant(order, tf.int32)))

    def val_loss(self, x, y) -> float:
        if self._val_loss is None:
            self._trace()
        return float(self._val_loss(x, y))


def compile_forward(model: keras.Model, forward: Callable) -> Callable[..., dict[str, np.ndarray]]:
    """forward(x, feature_masks, hidden_masks) -> dict of tensors, as one traced function."""
    images = tf.TensorSpec(shape=(None, *model.input_shape[1:]), dtype=tf.float32)
    masks = tf.TensorSpec(shape=(None, None), dtype=tf.float32)
    traced = tf.function(forward, input_signature=[images, masks, masks])

    def run(x: np.ndarray, feature_masks: np.ndarray, hidden_masks: np.ndarray) -> dict[str, np.ndarray]:
        return {name: value.numpy() for name, value in traced(x, feature_masks, hidden_masks).items()}

    return run
