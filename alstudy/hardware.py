"""What this machine offers the arithmetic: bfloat16 units on the CPU, read from the kernel's flags.

Light on purpose (no TensorFlow): params.py resolves `model.precision: auto` with it.
"""

from __future__ import annotations

from pathlib import Path

BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


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


def best_precision() -> str:
    """`model.precision: auto` on this machine: bfloat16 where the CPU has the units, else float32."""
    return "bfloat16" if cpu_has_bfloat16() else "float32"
