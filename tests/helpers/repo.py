"""The repository as a test sees it: its root, a committed copy for `dvc repro`, DVC and params edits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def copy_repo(dest: Path) -> None:
    """The files git tracks, committed into a fresh repository (DVC needs one)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "copy"], cwd=dest, check=True)


def dvc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # the venv: `python` in dvc.yaml must be this one
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store at the project root is under test
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(Path(bin_dir) / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def _deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and value:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_params(folder) -> dict:
    return yaml.safe_load((Path(folder) / "params.yaml").read_text())


def write_params(folder, **overrides) -> dict:
    """Rewrite `folder/params.yaml`, deep-merging one mapping per section.

    ``write_params(tmp, al={"query_size": 0}, download={"sources": {"cifar10": [url]}})``
    changes just those keys; a non-dict value (or an empty dict) replaces the key
    outright. Returns the full mapping written.
    """
    params = _deep_merge(read_params(folder), overrides)
    (Path(folder) / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


REPO = REPO_ROOT


def machine_precision() -> str:
    """What params.yaml's `precision: auto` resolves to here: bfloat16 where this CPU has bfloat16 units,
    else float32 (tests that write their own params pass it, so that they run the default's arithmetic)."""
    from alstudy.hardware import cpu_has_bfloat16

    return "bfloat16" if cpu_has_bfloat16() else "float32"


def edit_params(project: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params))
