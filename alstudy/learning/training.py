"""Training the CNN: one compiled TensorFlow call per epoch.

Keras' `fit` goes back to Python for every batch (data adapter, callbacks, logs).
On this project's small CNN that overhead is as large as the arithmetic: measured
on 2 cores, `fit` trains about half as many images per second as the machine's
matmul throughput allows (benchmarks/bench_al.py prints both). Here the labelled
set sits in memory as one tensor, an epoch's batches are slices of a seeded
permutation, and the loop over them runs inside one `tf.function`.

Same protocol as `fit(shuffle=True)`: the model's own loss and optimizer, the
batch size, a fresh order every epoch (the last batch may be smaller), dropout
active, and early stopping on a held-out slice that keeps the best weights.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class Trainer:
    """Trains one model; the compiled epoch is traced once and serves every round."""

    def __init__(self, model: keras.Model, batch_size: int):
        self.model, self.batch_size = model, batch_size
        self.loss = keras.losses.CategoricalCrossentropy()
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

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        seed: int,
        validation_fraction: float = 0.0,
        patience: int = 3,
    ) -> int:
        """Train for `epochs` epochs (fewer with early stopping); return the number run.

        With validation_fraction > 0, a seeded slice of the labelled set is held out and
        training stops once its loss has not improved for `patience` epochs; the weights
        of the best epoch are kept.
        """
        if self._epoch is None:
            self._trace()
        rng = np.random.default_rng(seed)
        n_val = int(len(x) * validation_fraction)
        val = None
        if n_val > 0:
            order = rng.permutation(len(x))
            val = (tf.constant(x[order[:n_val]]), tf.constant(y[order[:n_val]]))
            x, y = x[order[n_val:]], y[order[n_val:]]
        x_t, y_t = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
        best, best_weights, waited = np.inf, None, 0
        for epoch in range(epochs):
            self._epoch(x_t, y_t, tf.constant(rng.permutation(len(x)), tf.int32))
            if val is None:
                continue
            loss = float(self._val_loss(*val))
            if loss < best:
                best, best_weights, waited = loss, self.model.get_weights(), 0
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_weights is not None:
            self.model.set_weights(best_weights)
        return epoch + 1
