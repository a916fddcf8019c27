"""JAX: one jitted training step and one jitted inference pass per kind of request, on CPU or GPU.

Keras 3 on JAX keeps weights in Keras variables, but a jitted function must take them as
arguments (JAX traces pure functions): the step runs the model with `stateless_call` and
the optimizer with `stateless_apply`, and the epoch writes the new values back once at
its end. Every call has the same shapes, so each function is compiled once per run: a
step takes `batch_size` rows (the last batch of an epoch is padded with rows of weight 0,
its loss the mean over its real rows, as TensorFlow's smaller last batch has), and
inference pads its last batch (FIXED_SHAPES).

Determinism: XLA on CPU is deterministic; on a GPU, importing alstudy.learning sets
`--xla_gpu_deterministic_ops` and float32 matmuls (JAX_DEFAULT_MATMUL_PRECISION), as
Ampere and later GPUs would otherwise multiply float32 in TF32.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np

from alstudy.errors import PipelineError

FIXED_SHAPES = True


def gpus() -> list:
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib, or no device
        return []


def configure(threads: int, device: str) -> str:
    """The device this run computes on: the GPU where there is one and `device` allows it."""
    found = gpus()
    if device == "gpu" and not found:
        raise PipelineError(
            "model.device: gpu, but JAX sees no GPU here (jax.devices('gpu') finds none); install the GPU "
            "extra on a machine with an NVIDIA GPU (pip install -e '.[jax-gpu]'), or set model.device: cpu (or auto)"
        )
    if found and device != "cpu":
        jax.config.update("jax_default_device", found[0])
        return "gpu"
    jax.config.update("jax_default_device", jax.devices("cpu")[0])
    return "cpu"


def _values(variables) -> list:
    return [variable.value for variable in variables]


class Epochs:
    """The jitted step of one model; an epoch is a loop of steps over fixed-size batches."""

    def __init__(self, model: keras.Model, loss: keras.losses.Loss, batch_size: int):
        self.model, self.batch_size = model, batch_size
        self._step = self._val_loss = None

    def _compile(self) -> None:
        model, optimizer = self.model, self.model.optimizer
        optimizer.build(model.trainable_variables)

        def step(state, x, y, weights):
            trainable, non_trainable, slots = state

            def loss_of(trainable):
                predicted, updated = model.stateless_call(trainable, non_trainable, x, training=True)
                per_image = keras.losses.categorical_crossentropy(y, predicted)
                return jnp.sum(per_image * weights) / jnp.sum(weights), updated

            (loss, non_trainable), gradients = jax.value_and_grad(loss_of, has_aux=True)(trainable)
            trainable, slots = optimizer.stateless_apply(slots, gradients, trainable)
            return (trainable, non_trainable, slots), loss

        def val_loss(trainable, non_trainable, x, y):
            predicted, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return jnp.mean(keras.losses.categorical_crossentropy(y, predicted))

        self._step, self._val_loss = jax.jit(step), jax.jit(val_loss)

    def held(self, array: np.ndarray) -> np.ndarray:
        """Kept in host memory: each step gathers its batch there, so every step has the same shapes."""
        return np.asarray(array, np.float32)

    def epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray) -> float:
        if self._step is None:
            self._compile()
        model, size = self.model, self.batch_size
        state = (
            _values(model.trainable_variables),
            _values(model.non_trainable_variables),
            _values(model.optimizer.variables),
        )
        losses = []  # read at the end: a float() per step would wait for each step to finish
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            weights = np.ones(size, np.float32)
            if len(rows) < size:
                weights[len(rows) :] = 0
                rows = np.concatenate([rows, np.full(size - len(rows), rows[0], rows.dtype)])
            state, loss = self._step(state, x[rows], y[rows], weights)
            losses.append((loss, len(rows) if start + size <= len(order) else len(order) - start))
        for variables, values in zip(
            (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables), state
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)
        return sum(float(loss) * n for loss, n in losses) / len(order)

    def val_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        if self._val_loss is None:
            self._compile()
        model = self.model
        return float(self._val_loss(_values(model.trainable_variables), _values(model.non_trainable_variables), x, y))


def compile_forward(model: keras.Model, forward: Callable) -> Callable[..., dict[str, np.ndarray]]:
    """forward(x, feature_masks, hidden_masks) jitted, the model's current weights passed in at each call."""
    variables = list(model.variables)

    @jax.jit
    def run_with(values, x, feature_masks, hidden_masks):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return forward(x, feature_masks, hidden_masks)

    def run(x: np.ndarray, feature_masks: np.ndarray, hidden_masks: np.ndarray) -> dict[str, np.ndarray]:
        out = run_with(_values(variables), x, feature_masks, hidden_masks)
        return {name: np.asarray(value) for name, value in out.items()}

    return run
