"""The CNN, its training, and compiled batched inference."""

from __future__ import annotations

import mmap
import os
from typing import Callable

import keras
import numpy as np

from alstudy.data.preprocess import model_input
from alstudy.errors import PipelineError
from alstudy.hardware import BFLOAT16_GPU, cpu_has_bfloat16, visible_gpus
from alstudy.learning import backends
from alstudy.learning.learner import Inference
from alstudy.learning.training import Trainer
from alstudy.params import ModelParams
from alstudy.recipes import augmentations, networks

# Keras' dtype policy per model.precision: the layer's compute dtype, with float32 variables.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def configure(params: ModelParams) -> str:
    """Set up the backend for a run with these model params, before the first op; return the device it
    computes on (`cpu` or `gpu`).

    Each of these stops in one line: a backend that is not installed, Keras already running on another
    one (KERAS_BACKEND in the environment), a GPU asked for and not there, and a bfloat16 run on a CPU
    without bfloat16 units (TensorFlow would emulate the arithmetic, slower than float32 and with other
    numbers).
    """
    if not backends.installed(params.backend):
        raise PipelineError(
            f"model.backend: {params.backend} is not installed; {backends.BACKENDS[params.backend].install}"
        )
    if backends.running() != params.backend:
        raise PipelineError(
            f"model.backend: {params.backend}, but Keras already runs on {backends.running()} in this process "
            f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')} in the environment?); unset "
            "KERAS_BACKEND, or set model.backend to match it"
        )
    device = backends.configure(params.threads, params.device)
    if device == "cpu" and params.precision == "bfloat16" and not cpu_has_bfloat16():
        raise PipelineError(
            "model.precision: bfloat16 needs a CPU with AVX512-BF16 or AMX-BF16 "
            "(this one has neither); set model.precision: float32 (or auto: the best this machine has)"
        )
    old_gpus = [gpu.name for gpu in visible_gpus() if gpu.compute_capability < BFLOAT16_GPU]
    if device == "gpu" and params.precision == "bfloat16" and old_gpus:
        raise PipelineError(
            f"model.precision: bfloat16 needs a GPU from Ampere on ({', '.join(sorted(set(old_gpus)))} has no "
            "bfloat16 units); set model.precision: float32 (or auto: the best this machine has)"
        )
    return device


def configure_tensorflow(threads: int) -> None:
    """TensorFlow as the tests use it in-process: deterministic kernels on `threads` threads."""
    from alstudy.learning.backends import tensorflow

    tensorflow.configure(threads, "cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight init, shuffling) in one go."""
    keras.utils.set_random_seed(int(seed))


def build_cnn(input_shape: tuple[int, ...], n_classes: int, params: ModelParams) -> keras.Model:
    """The network's trunk (model.network: the seed's three Conv2D + max-pooling blocks by default), then
    Flatten, a hidden Dense layer and a softmax Dense output.

    With model.dropout > 0, dropout sits before each Dense layer, where Gal et al. (2017) put it:
    it regularises training and gives BALD its MC passes. With 0 there is no dropout layer at all.
    Every layer but the output computes in model.precision (its own dtype policy; nothing global
    changes); the output layer, and so the softmax and the loss, stays float32.
    """
    policy = POLICIES[params.precision]
    network = networks.get(params.network)
    layers: list = [keras.Input(shape=input_shape)]
    layers += network.trunk(tuple(input_shape), params, params.network_settings(), policy)
    layers.append(keras.layers.Flatten(name="flatten", dtype=policy))
    if params.dropout:
        layers.append(keras.layers.Dropout(params.dropout, name="dropout_features", dtype=policy))
    layers.append(keras.layers.Dense(params.dense_units, activation="relu", name="hidden", dtype=policy))
    if params.dropout:
        layers.append(keras.layers.Dropout(params.dropout, name="dropout_hidden", dtype=policy))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="output", dtype="float32"))
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

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, params: ModelParams, model: keras.Model | None = None
    ):
        self.params = params
        self.model = model if model is not None else build_cnn(input_shape, n_classes, params)
        self._predictor = Predictor(self.model, params.predict_batch_size, params.dropout)
        self._trainer = Trainer(self.model, params.batch_size, augmentations.pipeline(params.augmentation))

    def reinitialize(self, seed: int) -> None:
        """Weights as a model freshly built under `seed` would have, and a fresh optimizer state."""
        set_seed(seed)
        fresh = build_cnn(self.model.input_shape[1:], self.model.output_shape[-1], self.params)
        self.model.set_weights(fresh.get_weights())
        for variable in self.model.optimizer.variables:
            if not variable.path.endswith("learning_rate"):
                variable.assign(np.zeros(variable.shape, variable.dtype))

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int, after_epoch: Callable[[int], None] | None = None) -> int:
        """Train on the labelled set; return the number of epochs run (fewer with early stopping).
        after_epoch(n) is called after epoch n (benchmarks/bench_recipes.py reads test accuracy there)."""
        set_seed(seed)
        seed_dropout(self.model, seed)
        return self._trainer.fit(
            model_input(x),
            y,
            epochs=self.params.epochs,
            seed=seed,
            validation_fraction=self.params.validation_fraction,
            patience=self.params.early_stopping_patience,
            after_epoch=after_epoch,
        )

    def infer(
        self,
        images: np.ndarray,
        rows: np.ndarray | None = None,
        *,
        embeddings: bool = False,
        mc_passes: int = 0,
        mc_seed: int = 0,
    ) -> Inference:
        return self._predictor.infer(images, rows, embeddings=embeddings, mc_passes=mc_passes, mc_seed=mc_seed)

    def last_layer(self) -> tuple[np.ndarray, np.ndarray]:
        weights, bias = self.model.layers[-1].get_weights()  # the softmax Dense layer, float32
        return np.asarray(weights, np.float64), np.asarray(bias, np.float64)

    def predict_proba(self, images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return self.infer(images, rows).proba


def seed_dropout(model: keras.Model, seed: int) -> None:
    """Set each dropout layer's random state from `seed`.

    Keras keeps that state outside the weights, so neither set_weights nor a saved
    checkpoint resets it; seeding it per round makes training masks depend only on
    (seed, round), also after a resume or with a warm-started model.
    """
    for i, layer in enumerate(model.layers):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            generator.state.assign(np.array([(seed + i) % 2**31, 0], dtype=generator.state.dtype))


def release_mapped_pages(array: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident set.

    They stay in the OS page cache, so the next read costs no disk I/O; without
    this, scoring a 600 MB pool would count all of it as this process's memory.
    Safe because the splits are mapped read-only (np.load(mmap_mode="r")).
    """
    mapping = getattr(array, "_mmap", None)  # numpy keeps the mmap object of a memmap here
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


# What the activations of one inference batch may take. A batch of 2,048 Fashion-MNIST or CIFAR-10
# images stays under it (unchanged); larger images get smaller batches, so that 64 x 64 images do
# not hold over a gigabyte of convolution outputs at once.
ACTIVATION_BUDGET_BYTES = 512 * 2**20


def _conv_layers(model: keras.Model) -> list:
    """The model's Conv2D layers, those inside a nested trunk (a ResNet, an application) included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found += _conv_layers(layer)
    return found


def inference_batch(model: keras.Model, batch_size: int) -> int:
    """model.predict_batch_size, lowered where one batch's convolution outputs would pass the budget."""
    per_image = sum(4 * int(np.prod(layer.output.shape[1:])) for layer in _conv_layers(model))
    return max(1, min(batch_size, ACTIVATION_BUDGET_BYTES // max(1, per_image)))


class Predictor:
    """Model outputs for rows of a (possibly memory-mapped) image array, in one pass per batch.

    The convolutional trunk runs once per image; probabilities, penultimate
    embeddings and the MC-dropout passes all come from that one result. MC passes
    re-run only the dense head (where the dropout is), T at a time as one batched
    matmul. Each pass uses one dropout mask for every image (one sampled network
    per pass, as in BALD's definition), drawn with NumPy from `mc_seed`, so the
    passes are the same whatever the batch size. Rows are gathered a batch at a
    time, so a large pool is never copied whole. One traced function per kind of
    request serves every call.

    In bfloat16 the masks are cast to bfloat16 and multiply the bfloat16
    activations, as Keras' dropout does in training (it scales by 1 / keep in
    the activations' dtype); every output comes back float32. The function is
    compiled per backend (alstudy/learning/backends/); where it is compiled for
    one batch shape, the last batch is padded to the batch size.
    """

    def __init__(self, model: keras.Model, batch_size: int, dropout: float = 0.0):
        self.batch_size = inference_batch(model, batch_size)
        self.dropout = dropout
        self.model = model
        flatten = [layer.name for layer in model.layers].index("flatten")
        self._trunk = model.layers[: flatten + 1]
        self._hidden, self._output = model.get_layer("hidden"), model.get_layer("output")
        self._n_features = int(np.prod(model.get_layer("flatten").output.shape[1:]))
        self._backend = backends.current()
        self._functions: dict[tuple[bool, bool], Callable] = {}

    def _function(self, embeddings: bool, mc: bool):
        key = (embeddings, mc)
        if key not in self._functions:
            ops = keras.ops

            def forward(x, feature_masks, hidden_masks):
                features = x
                for layer in self._trunk:
                    features = layer(features)
                hidden = self._hidden(features)
                out = {"proba": self._output(hidden)}
                if embeddings:
                    out["embeddings"] = ops.cast(hidden, "float32")
                if mc:  # T x B x F: every pass's mask on every image, then the head as one batched matmul
                    dropped = self._hidden(features[None] * ops.cast(feature_masks, features.dtype)[:, None, :])
                    passes = self._output(dropped * ops.cast(hidden_masks, dropped.dtype)[:, None, :])
                    out["mc_proba"] = ops.transpose(passes, [1, 2, 0])  # B x C x T, Baal's order
                return out

            self._functions[key] = self._backend.compile_forward(self.model, forward)
        return self._functions[key]

    def _masks(self, passes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Inverted-dropout masks for the features and the hidden layer, one row per pass."""
        if passes == 0:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        rng = np.random.default_rng(seed)
        keep = 1.0 - self.dropout
        return tuple(
            (rng.random((passes, n)) < keep).astype(np.float32) / np.float32(keep)
            for n in (self._n_features, self._hidden.units)
        )

    def infer(
        self,
        images: np.ndarray,
        rows: np.ndarray | None = None,
        *,
        embeddings: bool = False,
        mc_passes: int = 0,
        mc_seed: int = 0,
    ) -> Inference:
        if mc_passes and not self.dropout:
            raise ValueError("MC-dropout passes need a model with dropout (model.dropout > 0)")
        forward = self._function(embeddings, mc_passes > 0)
        feature_masks, hidden_masks = self._masks(mc_passes, mc_seed)
        n = len(images) if rows is None else len(rows)
        out: dict[str, np.ndarray] = {}
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            batch = model_input(images[start:stop] if rows is None else images[rows[start:stop]])
            if self._backend.FIXED_SHAPES:  # few compiled shapes: a power of two up to the batch size
                padded = min(self.batch_size, 1 << (len(batch) - 1).bit_length())
                batch = np.concatenate([batch, np.zeros((padded - len(batch), *batch.shape[1:]), batch.dtype)])
            result = forward(batch, feature_masks, hidden_masks)
            release_mapped_pages(images)
            for name, value in result.items():
                value = value[: stop - start]
                if name not in out:
                    out[name] = np.empty((n, *value.shape[1:]), dtype=np.float32)
                out[name][start:stop] = value
        if n == 0:
            return Inference(np.empty((0, self._output.units), np.float32))
        return Inference(out["proba"], out.get("embeddings"), out.get("mc_proba"))
