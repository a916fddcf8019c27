"""Cells packed onto GPUs: each cell process sees one GPU, never more than N share one, and none takes
the GPU's memory at start. The machine's GPUs come from an `nvidia-smi` on PATH that answers the query
as the real one does (this machine has none); the cells are real processes."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
import yaml

from alstudy import hardware
from alstudy.errors import PipelineError
from alstudy.params import parse_params
from alstudy.scale import gpu_plan
from alstudy.scale.cell_task import Cell
from alstudy.scale.grid import local_launcher
from helpers.repo import REPO

# `nvidia-smi --query-gpu=index,name,compute_cap,memory.total --format=csv,noheader,nounits` on two machines
H200_PAIR = "0, NVIDIA H200, 9.0, 143771\n1, NVIDIA H200, 9.0, 143771\n"
T4 = "0, Tesla T4, 7.5, 15360\n"


def repo_params(**model):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"].update(model)
    return parse_params(raw)


@pytest.fixture
def machine_gpus(tmp_path, monkeypatch):
    """Make this machine list the given GPUs, with JAX's CUDA plugin counted as installed."""

    def install(listing: str) -> None:
        smi = tmp_path / "bin" / "nvidia-smi"
        smi.parent.mkdir(exist_ok=True)
        smi.write_text(f"#!/bin/sh\ncat <<'END'\n{listing}END\n")
        smi.chmod(0o755)
        monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        monkeypatch.setattr(hardware, "gpu_runtime_installed", lambda backend: backend == "jax")
        hardware._all_gpus.cache_clear()

    yield install
    hardware._all_gpus.cache_clear()


def test_gpus_are_read_from_nvidia_smi_and_narrowed_by_cuda_visible_devices(machine_gpus, monkeypatch):
    machine_gpus(H200_PAIR)
    assert [(g.index, g.name, g.compute_capability) for g in hardware.visible_gpus()] == [
        (0, "NVIDIA H200", (9, 0)),
        (1, "NVIDIA H200", (9, 0)),
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [g.index for g in hardware.visible_gpus()] == [1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert hardware.visible_gpus() == []


@pytest.mark.parametrize(
    "listing, backend, device, expected",
    [
        (H200_PAIR, "jax", "auto", "bfloat16"),  # Hopper has bfloat16 tensor cores
        (T4, "jax", "auto", "float32"),  # Turing has none
        (H200_PAIR, "jax", "cpu", "cpu"),  # the run stays on the CPU: the CPU decides
        (H200_PAIR, "tensorflow", "auto", "cpu"),  # tensorflow-cpu cannot use the GPU
    ],
)
def test_auto_precision_follows_the_device_the_run_computes_on(
    machine_gpus, monkeypatch, listing, backend, device, expected
):
    machine_gpus(listing)
    monkeypatch.setattr(hardware, "cpu_has_bfloat16", lambda: False)
    precision = repo_params(backend=backend, device=device).model.precision
    assert precision == ("float32" if expected == "cpu" else expected)


def test_slots_spread_cells_over_the_gpus(machine_gpus):
    machine_gpus(H200_PAIR)
    assert gpu_plan.gpu_slots(3, backend="jax", device="auto", threads=1, cores=16) == ["0", "1"] * 3
    # Left out: as many cells as the cores feed, shared between the GPUs.
    assert len(gpu_plan.gpu_slots(None, backend="jax", device="auto", threads=2, cores=16)) == 8


def test_cells_per_gpu_where_no_gpu_can_be_used_is_one_line(machine_gpus, monkeypatch):
    machine_gpus("")
    with pytest.raises(PipelineError, match=r"--cells-per-gpu 4: no NVIDIA GPU here .*leave it out"):
        gpu_plan.gpu_slots(4, backend="jax", device="auto", threads=1, cores=2)
    assert gpu_plan.gpu_slots(None, backend="jax", device="auto", threads=1, cores=2) is None  # the CPU cores
    machine_gpus(T4)
    with pytest.raises(PipelineError, match=r"model.backend: tensorflow cannot use this machine's GPUs.*jax-gpu"):
        gpu_plan.gpu_slots(2, backend="tensorflow", device="auto", threads=1, cores=2)
    with pytest.raises(PipelineError, match=r"model.device: cpu; set model.device: auto or gpu"):
        gpu_plan.gpu_slots(2, backend="jax", device="cpu", threads=1, cores=2)


CELL = textwrap.dedent(
    """
    import json, os, sys, time
    start = time.time()
    time.sleep(0.6)
    seen = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE",
                                           "TF_FORCE_GPU_ALLOW_GROWTH")}
    with open(sys.argv[1], "w") as out:
        json.dump({**seen, "start": start, "end": time.time()}, out)
    """
)


def test_the_local_grid_runs_n_cells_per_gpu_each_seeing_only_its_gpu(machine_gpus, tmp_path):
    machine_gpus(H200_PAIR)
    slots = gpu_plan.gpu_slots(2, backend="jax", device="gpu", threads=1, cores=16)
    (tmp_path / "cell.py").write_text(CELL)
    cells = [Cell(f"al@c{i}", f"{sys.executable} cell.py c{i}.json", (f"c{i}.json",), ()) for i in range(10)]
    finished = [(cell.stage, error) for cell, error in local_launcher(len(slots), slots)(tmp_path, cells)]
    assert sorted(stage for stage, _ in finished) == sorted(cell.stage for cell in cells)
    assert all(error is None for _, error in finished)
    seen = [json.loads((tmp_path / f"c{i}.json").read_text()) for i in range(10)]
    assert {s["CUDA_VISIBLE_DEVICES"] for s in seen} == {"0", "1"}
    assert all(s["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and s["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for s in seen)

    def most_at_once(gpu: str | None) -> int:
        spans = [(s["start"], s["end"]) for s in seen if gpu is None or s["CUDA_VISIBLE_DEVICES"] == gpu]
        return max(sum(start <= t < end for start, end in spans) for t, _ in spans)

    assert most_at_once("0") == 2 and most_at_once("1") == 2  # N to a GPU, never more
    assert most_at_once(None) == 4  # every slot used
