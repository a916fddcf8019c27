"""Keras 3's backends: what is compiled per backend, behind one interface.

The CNN is built once from backend-independent Keras layers (alstudy/learning/model.py);
the loop, the strategies, tracking and labelling never see a backend. What differs per
backend lives in one module each, registered here by name:

- ``configure(threads, device)``: deterministic kernels and the thread count, set before the
  first op; returns the device the run uses (``cpu`` or ``gpu``);
- ``Epochs(model, loss, batch_size)``: one compiled training epoch over a seeded order of
  the labelled set, and the validation loss;
- ``compile_forward(model, forward)``: an inference function (images and dropout masks in,
  NumPy arrays out) compiled once per kind of request;
- ``FIXED_SHAPES``: whether a compiled function is traced again for every new batch shape
  (then the last batch is padded to the batch size).

Keras fixes its backend when it is first imported, from ``KERAS_BACKEND``: importing
``alstudy.learning`` sets that from ``model.backend`` in ./params.yaml (an environment
variable already set wins, and a run whose params disagree with it stops in one line).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Backend:
    name: str
    package: str  # what must be importable
    install: str  # how to get it


BACKENDS = {
    "tensorflow": Backend("tensorflow", "tensorflow", "the default install (tensorflow-cpu)"),
    "jax": Backend("jax", "jax", "pip install -e '.[jax]' (CPU; on a GPU machine '.[jax-gpu]')"),
    "torch": Backend(
        "torch",
        "torch",
        "pip install -e '.[torch]' (on a CPU, PyTorch's CPU wheel first: pip install torch --index-url "
        "https://download.pytorch.org/whl/cpu)",
    ),
}
DEFAULT = "tensorflow"
_device: str | None = None  # where this process's runs compute, once configure() has said


def names() -> list[str]:
    return list(BACKENDS)


def installed(name: str) -> bool:
    return importlib.util.find_spec(BACKENDS[name].package) is not None


def activate(name: str, threads: int = 1, device: str = "auto") -> None:
    """Make `name` Keras' backend, if Keras is not imported yet (afterwards it cannot change), and set the
    environment a backend reads once, at its start (JAX: one CPU thread where threads is 1; float32
    matmuls rather than TF32 and deterministic ops on a GPU; PyTorch: the device Keras puts weights on,
    deterministic cuBLAS)."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", name)
    if os.environ.get("KERAS_BACKEND", name) == "torch" and "keras" not in sys.modules:
        if device == "cpu":
            os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")  # else Keras takes a GPU where torch sees one
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what deterministic cuBLAS requires
    if os.environ.get("KERAS_BACKEND", name) == "jax" and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if "xla_gpu_deterministic_ops" not in flags:
            flags += " --xla_gpu_deterministic_ops=true"
        os.environ["XLA_FLAGS"] = flags.strip()
        os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "float32")


def activate_from_params(path: Path = Path("params.yaml")) -> None:
    """`activate` with model.backend and model.threads from params.yaml (the defaults where it cannot be read:
    the run's own params check, later, says what is wrong with it)."""
    try:
        model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        model = {}
    model = model if isinstance(model, dict) else {}
    name, threads, device = model.get("backend", DEFAULT), model.get("threads", 1), model.get("device", "auto")
    activate(
        name if name in BACKENDS else DEFAULT,
        threads if isinstance(threads, int) else 1,
        device if isinstance(device, str) else "auto",
    )


def running() -> str:
    """The backend Keras runs on in this process."""
    import keras

    return keras.backend.backend()


def current():
    """The module of the backend Keras runs on (alstudy.learning.backends.<name>)."""
    return importlib.import_module(f"alstudy.learning.backends.{running()}")


def configure(threads: int, device: str) -> str:
    """The running backend set up for runs (deterministic, `threads` threads); the device it computes on."""
    global _device
    _device = current().configure(threads, device)
    return _device


def compute() -> dict[str, str]:
    """What this process computes with, recorded with each run: the backend and the device."""
    return {"backend": running(), "device": _device or "cpu"}
