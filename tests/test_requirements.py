"""What a user installs: the hash-pinned locks are current with pyproject.toml (scripts/lock.sh writes
them; scripts/setup.sh installs them), and the package does not reach for the benchmarks, which stay
in a clone."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCKS = {"runtime": REPO / "requirements.txt", "tests": REPO / "requirements-tests.txt"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, str]:
    """name -> version of every requirement in a lock; each must carry a hash (`pip --require-hashes`)."""
    out, blocks = {}, re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    for block in blocks:
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{lock.name}: {match[1]} has no hash"
            out[canonicalize_name(match[1])] = match[2]
    return out


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("kind", LOCKS)
def test_each_lock_was_written_from_the_current_pyproject(kind):
    done = subprocess.run(
        ["bash", "scripts/lock.sh", "--hash"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    header = re.search(r"^# pyproject-sha256: ([0-9a-f]{64})$", LOCKS[kind].read_text(), re.M)
    assert header, f"{LOCKS[kind].name} has no pyproject-sha256 line: run bash scripts/lock.sh"
    assert header[1] == done.stdout.strip(), (
        f"pyproject.toml's dependencies changed since {LOCKS[kind].name} was written: run bash scripts/lock.sh"
    )


# Extras CI does not install: PyPI's torch wheel is the CUDA build (gigabytes with NVIDIA's libraries); its CPU
# wheel comes from PyTorch's own index, which a lock of PyPI hashes cannot name.
UNLOCKED = {"torch"}


def test_every_requirement_of_pyproject_is_locked_at_a_version_it_allows():
    runtime, tests = pins(LOCKS["runtime"]), pins(LOCKS["tests"])
    wanted = [(Requirement(r), ("runtime", "tests")) for r in project()["dependencies"]]
    extras = project()["optional-dependencies"]
    wanted += [(Requirement(r), ("tests",)) for name, extra in extras.items() if name not in UNLOCKED for r in extra]
    for requirement, kinds in wanted:
        name = canonicalize_name(requirement.name)
        if name == "alstudy":  # the tests extra names the other extras through the project itself
            continue
        for kind in kinds:
            locked = {"runtime": runtime, "tests": tests}[kind]
            assert name in locked, f"{requirement} is not in the {kind} lock: run bash scripts/lock.sh"
            assert requirement.specifier.contains(locked[name], prereleases=True), (
                f"{kind} lock has {name}=={locked[name]}, pyproject.toml wants {requirement}"
            )


def test_the_runtime_lock_is_the_tests_lock_less_what_only_the_tests_need():
    runtime, tests = pins(LOCKS["runtime"]), pins(LOCKS["tests"])
    assert {name: tests.get(name) for name in runtime} == runtime


def test_nothing_in_the_package_or_the_stages_imports_the_benchmarks():
    """benchmarks/ is not in the wheel (pyproject packages only alstudy): importing it would fail for a user."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["packages"]["find"]["include"] == ["alstudy*"]
    offenders = []
    for file in [*REPO.glob("alstudy/**/*.py"), *REPO.glob("stages/*.py")]:
        for node in ast.walk(ast.parse(file.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{file.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "benchmarks"]
    assert not offenders


def test_label_studios_lock_pins_what_its_input_asks_with_hashes():
    """Label Studio's venv installs from its own lock: a release of one of its unpinned dependencies
    (sentry-sdk 3.0) once stopped it at start, failing every Label Studio test on a fresh machine."""
    locked = pins(REPO / "requirements-label-studio.txt")
    lines = (REPO / "requirements-label-studio.in").read_text().splitlines()
    wanted = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert {canonicalize_name(r.name) for r in wanted} >= {"label-studio", "sentry-sdk"}
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in requirements-label-studio.txt: run bash scripts/lock.sh"
        assert requirement.specifier.contains(locked[name]), f"lock has {name}=={locked[name]}, wants {requirement}"
    assert "requirements-label-studio.txt" in (REPO / "scripts/setup.sh").read_text()
