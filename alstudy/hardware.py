"""What this machine offers the arithmetic: bfloat16 units on the CPU (the kernel's flags) and NVIDIA GPUs
(`nvidia-smi`).

Light on purpose (no TensorFlow, no JAX): params.py resolves `model.precision: auto` with it, and the grid
packs cells onto the GPUs it lists.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
BFLOAT16_GPU = (8, 0)  # Ampere: the first NVIDIA GPUs with bfloat16 tensor cores
# JAX's CUDA runtime comes as a plugin package (the jax-gpu extra)
JAX_CUDA_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_mib: int


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has bfloat16 units (AVX512-BF16 or AMX-BF16), from the kernel's flags.

    False where /proc/cpuinfo cannot be read (not Linux): bfloat16 is then refused, not emulated.
    """
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return False
    flags = {flag for line in lines if line.startswith("flags") for flag in line.partition(":")[2].split()}
    return any(flag in flags for flag in BFLOAT16_FLAGS)


def parse_gpus(csv: str) -> list[Gpu]:
    """`nvidia-smi --query-gpu=index,name,compute_cap,memory.total --format=csv,noheader,nounits` read."""
    found = []
    for line in csv.strip().splitlines():
        index, name, capability, memory = (part.strip() for part in line.split(","))
        major, _, minor = capability.partition(".")
        found.append(Gpu(int(index), name, (int(major), int(minor or 0)), int(float(memory))))
    return found


@functools.lru_cache(maxsize=1)
def _all_gpus() -> tuple[Gpu, ...]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    query = "--query-gpu=index,name,compute_cap,memory.total"
    try:
        done = subprocess.run([smi, query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
        return tuple(parse_gpus(done.stdout)) if done.returncode == 0 else ()
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()  # a driver that does not answer, or a format we do not know: no GPU to plan with


def visible_gpus() -> list[Gpu]:
    """The NVIDIA GPUs this process may use: nvidia-smi's list, narrowed by CUDA_VISIBLE_DEVICES where set
    (by index; a UUID or an empty value hides them all, as it does from CUDA)."""
    gpus = list(_all_gpus())
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return gpus
    wanted = [part.strip() for part in mask.split(",") if part.strip()]
    if not all(part.isdigit() for part in wanted):
        return []
    by_index = {gpu.index: gpu for gpu in gpus}
    return [by_index[int(part)] for part in wanted if int(part) in by_index]


def gpu_runtime_installed(backend: str) -> bool:
    """Whether this install of the backend can compute on an NVIDIA GPU, without importing it
    (tensorflow-cpu never can)."""
    if backend == "jax":
        return any(importlib.util.find_spec(package) for package in JAX_CUDA_PLUGINS)
    if backend == "torch":
        try:
            return "+cpu" not in importlib.metadata.version("torch")  # PyTorch's CPU wheels say so
        except importlib.metadata.PackageNotFoundError:
            return False
    return False


def computes_on_gpu(backend: str, device: str) -> bool:
    """Whether a run with this backend and model.device will compute on a GPU here."""
    return device != "cpu" and gpu_runtime_installed(backend) and bool(visible_gpus())


def best_precision(backend: str = "tensorflow", device: str = "auto") -> str:
    """`model.precision: auto` here: bfloat16 where the run's device has bfloat16 units (a GPU from Ampere on;
    a CPU with AVX512-BF16 or AMX-BF16), float32 elsewhere."""
    if computes_on_gpu(backend, device):
        return "bfloat16" if all(g.compute_capability >= BFLOAT16_GPU for g in visible_gpus()) else "float32"
    return "bfloat16" if cpu_has_bfloat16() else "float32"
