"""PyTorch: Keras 3 on torch, the epoch a loop of eager steps, inference under `torch.no_grad`.

Keras' torch backend keeps each weight as a `torch.nn.Parameter`, so a step is the usual
PyTorch one: the model's forward on a batch, the loss, `backward()`, and the Keras optimizer
applied to the parameters' gradients. The labelled set is moved to the device once per round
and each batch is an index into it, as on TensorFlow. No `torch.compile`: it would recompile
for the smaller last batch and its kernels are not promised deterministic.

Determinism: `torch.use_deterministic_algorithms(True)` (an op without a deterministic kernel
stops the run rather than vary it), cuDNN's autotuner off, float32 matmuls and convolutions
rather than TF32 on Ampere and later GPUs; cuBLAS needs CUBLAS_WORKSPACE_CONFIG, set when
alstudy.learning is imported (backends.activate).
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import torch

from alstudy.errors import PipelineError

FIXED_SHAPES = False  # eager: any batch size, nothing compiled per shape


def configure(threads: int, device: str) -> str:
    """Deterministic kernels on `threads` CPU threads; the device this run computes on (where Keras put its
    weights: KERAS_TORCH_DEVICE, set from model.device when alstudy.learning was imported)."""
    on_gpu = _device().startswith("cuda")
    if device == "gpu" and not on_gpu:
        raise PipelineError(
            "model.device: gpu, but PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); install "
            "PyTorch's CUDA build on a machine with an NVIDIA GPU, or set model.device: cpu (or auto)"
        )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before the first parallel work (tests run several models in-process)
        pass
    return "gpu" if on_gpu else "cpu"


def _device() -> str:
    return str(keras.src.backend.torch.core.get_device())


def _tensor(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, np.float32), device=_device())


class Epochs:
    """One model's training epoch and validation loss, eager, batch by batch."""

    def __init__(self, model: keras.Model, loss: keras.losses.Loss, batch_size: int):
        self.model, self.loss, self.batch_size = model, loss, batch_size
        self._built = False

    def held(self, array: np.ndarray) -> torch.Tensor:
        """The array on the run's device, once per round."""
        return _tensor(array)

    def epoch(self, x: torch.Tensor, y: torch.Tensor, order: np.ndarray) -> float:
        model, optimizer = self.model, self.model.optimizer
        if not self._built:
            optimizer.build(model.trainable_variables)
            self._built = True
        parameters = [variable.value for variable in model.trainable_variables]
        order_t = torch.as_tensor(order, dtype=torch.long, device=x.device)
        losses = []  # summed at the end: .item() per step would wait for each step (on a GPU)
        for start in range(0, len(order), self.batch_size):
            rows = order_t[start : start + self.batch_size]
            for parameter in parameters:
                parameter.grad = None
            loss = self.loss(y[rows], model(x[rows], training=True))
            loss.backward()
            with torch.no_grad():
                optimizer.apply([p.grad for p in parameters], model.trainable_variables)
            losses.append(loss.detach() * len(rows))
        total = float(torch.stack(losses).sum()) if losses else 0.0
        return total / len(order)

    def val_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self.loss(y, self.model(x, training=False)))


def compile_forward(model: keras.Model, forward: Callable) -> Callable[..., dict[str, np.ndarray]]:
    """forward(x, feature_masks, hidden_masks) under no_grad on the run's device, NumPy out."""

    def run(x: np.ndarray, feature_masks: np.ndarray, hidden_masks: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = forward(_tensor(x), _tensor(feature_masks), _tensor(hidden_masks))
        return {name: value.detach().cpu().numpy() for name, value in out.items()}

    return run
