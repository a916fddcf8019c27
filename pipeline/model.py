"""The CNN, its training, and compiled batched inference."""
from __future__ import annotations

import mmap

import keras
import numpy as np
import tensorflow as tf

from pipeline.params import ModelParams

# Same seed, same result on CPU: deterministic kernels everywhere.
tf.config.experimental.enable_op_determinism()


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight init, shuffling) in one go."""
    keras.utils.set_random_seed(int(seed))


def build_cnn(input_shape: tuple[int, ...], n_classes: int, params: ModelParams) -> keras.Model:
    """Three Conv2D + max-pooling blocks, Flatten, a hidden Dense layer, a softmax Dense output."""
    layers: list = [keras.Input(shape=input_shape)]
    for filters in params.filters:
        layers += [keras.layers.Conv2D(filters, params.kernel_size, padding="same", activation="relu"),
                   keras.layers.MaxPooling2D(2)]
    layers += [keras.layers.Flatten(),
               keras.layers.Dense(params.dense_units, activation="relu"),
               keras.layers.Dense(n_classes, activation="softmax")]
    model = keras.Sequential(layers, name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="categorical_crossentropy")
    return model


class CNN:
    """One compiled CNN for a whole run, re-initialised in place between rounds.

    Rebuilding the model each round would make Keras trace its train step again
    (about 0.8 s a round on 2 cores); copying seeded fresh weights into the same
    model and zeroing Adam's state gives the same numbers without the retrace.
    The inference function is traced once too, and reads the current weights.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, params: ModelParams,
                 model: keras.Model | None = None):
        self.params = params
        self.model = model if model is not None else build_cnn(input_shape, n_classes, params)
        self._predictor = Predictor(self.model, params.predict_batch_size)

    def reinitialize(self, seed: int) -> None:
        """Weights as a model freshly built under `seed` would have, and a fresh optimizer state."""
        set_seed(seed)
        fresh = build_cnn(self.model.input_shape[1:], self.model.output_shape[-1], self.params)
        self.model.set_weights(fresh.get_weights())
        for variable in self.model.optimizer.variables:
            if not variable.path.endswith("learning_rate"):
                variable.assign(tf.zeros_like(variable))

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> int:
        return train(self.model, x, y, self.params, seed)

    def predict_proba(self, images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return self._predictor.predict_proba(images, rows)


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, params: ModelParams, seed: int) -> int:
    """Fit on the labelled set; return the number of epochs run.

    With validation_fraction > 0, a seeded slice of the labelled set is held out
    and training stops once its loss has not improved for `early_stopping_patience`
    epochs, keeping the best weights.
    """
    set_seed(seed)
    callbacks, validation = [], None
    n_val = int(len(x) * params.validation_fraction)
    if n_val > 0:
        order = np.random.default_rng(seed).permutation(len(x))
        val, fit = order[:n_val], order[n_val:]
        validation, x, y = (x[val], y[val]), x[fit], y[fit]
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True))
    history = model.fit(x, y, epochs=params.epochs, batch_size=params.batch_size, shuffle=True,
                        validation_data=validation, callbacks=callbacks, verbose=0)
    return len(history.epoch)


def release_mapped_pages(array: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident set.

    They stay in the OS page cache, so the next read costs no disk I/O; without
    this, scoring a 600 MB pool would count all of it as this process's memory.
    Safe because the splits are mapped read-only (np.load(mmap_mode="r")).
    """
    mapping = getattr(array, "_mmap", None)  # numpy keeps the mmap object of a memmap here
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


class Predictor:
    """Class probabilities for rows of a (possibly memory-mapped) image array.

    One traced tf.function with a dynamic batch dimension serves every call, and
    rows are gathered a batch at a time, so a large pool is never copied whole.
    """

    def __init__(self, model: keras.Model, batch_size: int):
        self.batch_size = batch_size
        spec = tf.TensorSpec(shape=(None, *model.input_shape[1:]), dtype=tf.float32)
        self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def predict_proba(self, images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        n = len(images) if rows is None else len(rows)
        out = None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            batch = images[start:stop] if rows is None else images[rows[start:stop]]
            proba = self._forward(np.asarray(batch, dtype=np.float32)).numpy()
            release_mapped_pages(images)
            if out is None:
                out = np.empty((n, proba.shape[1]), dtype=np.float32)
            out[start:stop] = proba
        return out if out is not None else np.empty((0, 0), dtype=np.float32)
