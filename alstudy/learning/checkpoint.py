"""Round checkpoints, so a killed run resumes from its last completed round.

They live under checkpoints/, which is not a DVC output (DVC deletes outputs
before a stage runs). A checkpoint is only used when its fingerprint, built
from the params, the data and the code that shape the run, still matches.

Each round writes its model to a file of its own (model-r<round>.keras), then
state.json, atomically: state.json is the commit point of a round, and names the
model file it goes with. It carries a SHA-256 of its own content and of that
model file, so an edited state (still valid JSON) or a truncated model is found
before anything resumes from it; the cell then starts over, and the MLflow run the
checkpoint named is not reused. The checksum guards against accidents (an editor, a
full disk, a copy cut short), not against someone who recomputes it.
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
MODEL_GLOB = "model-r*.keras"


@dataclass
class Checkpoint:
    state: LoopState
    model: keras.Model
    run_id: str | None


class Mismatch(ValueError):
    """A checkpoint file that is not what its round wrote."""


def fingerprint(config: dict, data_files: list[Path], code_files: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in data_files:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for path in code_files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _content_sha256(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save(folder: Path, state: LoopState, model: keras.Model, run_id: str | None, fp: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model_file = f"model-r{state.next_round - 1:03d}.keras"
    with atomic_path(folder / model_file, suffix=".keras") as tmp:
        model.save(tmp)
    data = {
        "fingerprint": fp,
        "run_id": run_id,
        "model_file": model_file,
        "model_sha256": _file_sha256(folder / model_file),
        **state.to_dict(),
    }
    data = json.loads(json.dumps(data))  # hashed as it will be read back (JSON keys are strings)
    save_json(folder / STATE, {**data, "checksum": _content_sha256(data)})
    for earlier in folder.glob(MODEL_GLOB):  # the rounds before: state.json no longer names them
        if earlier.name != model_file:
            earlier.unlink(missing_ok=True)


def _verified(folder: Path, data: dict) -> Path:
    """The model file of a checkpoint whose state and model match their checksums; else Mismatch."""
    checksum = data.pop("checksum", None)
    if checksum != _content_sha256(data):
        raise Mismatch(f"{STATE} does not match its checksum (edited, or written by another version)")
    model_file = folder / data["model_file"]
    if not model_file.exists():
        raise Mismatch(f"{model_file.name} is missing")
    if _file_sha256(model_file) != data["model_sha256"]:
        raise Mismatch(f"{model_file.name} does not match its checksum (truncated or changed)")
    return model_file


def load(folder: Path, fp: str, what: str = "") -> Checkpoint | None:
    """The checkpoint in `folder` if it matches `fp` and its checksums; a stale or broken one is discarded.

    `what` names the cell in the log line."""
    what = what or str(folder)
    state_file = folder / STATE
    if not state_file.exists():
        return None
    try:
        data = json.loads(state_file.read_text())
        if not isinstance(data, dict):
            raise Mismatch(f"{STATE} is not a checkpoint")
        model_file = _verified(folder, data)
        if data.get("fingerprint") != fp:
            log.info("%s: params, data or code changed since its checkpoint was written; starting over", what)
            discard(folder)
            return None
        model = keras.models.load_model(model_file)
        return Checkpoint(LoopState.from_dict(data), model, data.get("run_id"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning(
            "%s: its checkpoint in %s does not match its checksum or cannot be read (%s); starting the cell over "
            "in a new MLflow run",
            what,
            folder,
            error,
        )
        discard(folder)
        return None


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
