"""Round checkpoints, so a killed run resumes from its last completed round.

They live under checkpoints/, which is not a DVC output (DVC deletes outputs
before a stage runs). A checkpoint is only used when its fingerprint, built
from the params, the data and the code that shape the run, still matches.
state.json is written last and atomically: it is the commit point of a round.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras

from alstudy.fileio import atomic_path, save_json
from alstudy.learning.loop import LoopState

log = logging.getLogger("checkpoint")
STATE = "state.json"
MODEL = "model.keras"


@dataclass
class Checkpoint:
    state: LoopState
    model: keras.Model
    run_id: str | None


def fingerprint(config: dict, data_files: list[Path], code_files: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in data_files:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for path in code_files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def save(folder: Path, state: LoopState, model: keras.Model, run_id: str | None, fp: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    save_json(folder / STATE, {"fingerprint": fp, "run_id": run_id, **state.to_dict()})


def load(folder: Path, fp: str) -> Checkpoint | None:
    """The checkpoint in `folder` if it matches `fp`; a stale or broken one is discarded."""
    state_file = folder / STATE
    if not state_file.exists():
        return None
    try:
        data = json.loads(state_file.read_text())
        if data.get("fingerprint") != fp:
            log.info("%s: params, data or code changed since it was written; starting over", folder)
            discard(folder)
            return None
        model = keras.models.load_model(folder / MODEL)
        return Checkpoint(LoopState.from_dict(data), model, data.get("run_id"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.info("%s: unreadable (%s); starting over", folder, error)
        discard(folder)
        return None


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
