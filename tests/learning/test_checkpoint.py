"""Round checkpoints carry their own checksum: an edited state or a truncated model is found, named in
one line, and discarded, and the run it named is not resumed into."""

from __future__ import annotations

import json
import logging
import time

import keras
import pytest

from alstudy.learning import checkpoint
from alstudy.learning.loop import LoopState, RoundResult
from helpers.images import truncate_file

FP = "f" * 64


def state(rounds: int) -> LoopState:
    history = [
        RoundResult(r, 20 + 10 * r, 0.5 + r / 10, 0.5, 0.5, [0.5, 0.5], [5, 5], 3, 0.1, 0.1, 0.1) for r in range(rounds)
    ]
    return LoopState(labeled=list(range(20 + 10 * (rounds - 1))), history=history)


@pytest.fixture
def saved(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    folder = tmp_path / "s0"
    checkpoint.save(folder, state(1), model, "run-a", FP)
    checkpoint.save(folder, state(2), model, "run-a", FP)
    return folder


def test_a_checkpoint_resumes_as_saved(saved):
    loaded = checkpoint.load(saved, FP, "toy-margin-s0")
    assert loaded.run_id == "run-a" and loaded.state == state(2)
    # One model file: the round the state names; earlier rounds' files are gone.
    assert [p.name for p in saved.glob("*.keras")] == ["model-r001.keras"]


def test_an_edited_state_that_is_still_valid_json_is_found_and_discarded(saved, caplog):
    data = json.loads((saved / "state.json").read_text())
    data["labeled"][3] = 999  # one labelled index changed
    (saved / "state.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(saved, FP, "toy-margin-s0") is None
    (line,) = [r.getMessage() for r in caplog.records if r.name == "checkpoint"]
    assert line.startswith("toy-margin-s0: its checkpoint in ")
    assert "state.json does not match its checksum" in line and "starting the cell over in a new MLflow run" in line
    assert not saved.exists()


def test_a_truncated_model_is_named_as_truncated_not_missing(saved, caplog):
    truncate_file(saved / "model-r001.keras")
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(saved, FP, "toy-margin-s0") is None
    assert "model-r001.keras does not match its checksum (truncated or changed)" in caplog.text
    assert "not found" not in caplog.text.lower()


def test_a_run_id_pointed_elsewhere_is_an_edit_too(saved):
    data = json.loads((saved / "state.json").read_text())
    data["run_id"] = "run-of-another-cell"
    (saved / "state.json").write_text(json.dumps(data))
    assert checkpoint.load(saved, FP) is None


def test_a_checkpoint_without_a_checksum_is_not_trusted(saved):
    data = json.loads((saved / "state.json").read_text())
    del data["checksum"]
    (saved / "state.json").write_text(json.dumps(data))
    assert checkpoint.load(saved, FP) is None


def test_a_changed_fingerprint_still_starts_over(saved, caplog):
    with caplog.at_level(logging.INFO):
        assert checkpoint.load(saved, "0" * 64, "toy-margin-s0") is None
    assert "params, data or code changed" in caplog.text


def test_data_rewritten_to_the_same_size_changes_the_fingerprint(tmp_path):
    data = tmp_path / "x_train.npy"
    data.write_bytes(b"\x00" * 64)
    before = checkpoint.fingerprint({"seed": 0}, [data], [])
    time.sleep(0.01)  # a later write: another modification time (ns), the same size
    data.write_bytes(b"\x01" * 64)
    assert checkpoint.fingerprint({"seed": 0}, [data], []) != before
