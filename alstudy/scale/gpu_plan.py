"""Packing the grid's cells onto this machine's GPUs: several cells share each GPU.

One cell of the default protocol keeps a modern GPU busy a fraction of the time (small batches,
a small CNN, the host doing the rest), so cells run N to a GPU, each its own process that sees
only its GPU (CUDA_VISIBLE_DEVICES) and takes memory as it needs it rather than all of it at
start (cell_task.SHARED_GPU_ENV), so N of them fit on one device.
"""

from __future__ import annotations

import logging

from alstudy import hardware
from alstudy.errors import PipelineError

log = logging.getLogger("grid")


def default_cells_per_gpu(n_gpus: int, cores: int, threads: int) -> int:
    """As many cells per GPU as the CPU cores can feed, each with its model.threads threads."""
    return max(1, cores // max(1, threads) // max(1, n_gpus))


def gpu_slots(cells_per_gpu: int | None, *, backend: str, device: str, threads: int, cores: int) -> list[str] | None:
    """One GPU index per cell slot, spread over the GPUs (cells_per_gpu to each); None to run on the CPU
    cores. `cells_per_gpu` None: a GPU run packs as many as the cores feed; a number where no GPU can be
    used stops in one line."""
    asked = f"--cells-per-gpu {cells_per_gpu}"
    if cells_per_gpu is not None and cells_per_gpu < 1:
        raise PipelineError(f"{asked}: give 1 or more cells per GPU (or leave it out)")
    if device == "cpu":
        if cells_per_gpu is not None:
            raise PipelineError(f"{asked}, but params.yaml says model.device: cpu; set model.device: auto or gpu")
        return None
    gpus = hardware.visible_gpus()
    if not gpus:
        if cells_per_gpu is not None:
            raise PipelineError(
                f"{asked}: no NVIDIA GPU here (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES hides them); "
                "leave it out to run the cells on the CPU cores"
            )
        return None
    if not hardware.gpu_runtime_installed(backend):
        if cells_per_gpu is not None or device == "gpu":
            raise PipelineError(
                f"model.backend: {backend} cannot use this machine's GPUs in this install; set model.backend: jax "
                "and pip install -e '.[jax-gpu]'"
            )
        log.info("GPUs here, but model.backend %s computes on the CPU in this install", backend)
        return None
    per_gpu = cells_per_gpu or default_cells_per_gpu(len(gpus), cores, threads)
    log.info(
        "%d cells per GPU on %d GPU%s (%s), GPU memory taken as needed",
        per_gpu,
        len(gpus),
        "s" * (len(gpus) > 1),
        ", ".join(sorted({gpu.name for gpu in gpus})),
    )
    # Round-robin, so that with fewer cells than slots every GPU still gets its share.
    return [str(gpu.index) for _ in range(per_gpu) for gpu in gpus]
