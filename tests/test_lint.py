"""ruff (settings in pyproject.toml): no findings in the code, the stages and the tests, nothing to reformat."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed (pip install -e .[tests])")
def test_ruff_finds_nothing():
    done = subprocess.run([str(RUFF), "check", "alstudy", "stages", "tests"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed (pip install -e .[tests])")
def test_the_code_is_formatted():
    done = subprocess.run(
        [str(RUFF), "format", "--check", "alstudy", "stages", "tests"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, "run `ruff format alstudy stages tests`:\n" + done.stdout[-3000:]
