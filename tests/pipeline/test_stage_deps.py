"""Every DVC stage depends on the code it runs: its deps in dvc.yaml against the modules it imports.

The imports are read from the source (every `import` and `from ... import`, at any depth of a
function, not under `if TYPE_CHECKING:`), followed through alstudy/ from the stage's module. Shared
plumbing is left out on purpose (editing it must not rerun the grid), and a strategy's module counts
only for the stages that run a strategy: an al cell depends on its own strategy's module alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alstudy import code_closure
from alstudy.params import ModelParams

REPO = Path(__file__).resolve().parents[2]
STRATEGY_MODULES = code_closure.strategy_modules(REPO)


def closure(stage_file: str) -> set[str]:
    return code_closure.closure(stage_file, REPO)


def is_face(file: str) -> bool:
    return code_closure.is_face(file, REPO)


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def deps_of(stage: dict) -> list[str]:
    return (stage.get("do") or stage)["deps"]


def covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def code_stages() -> list[str]:
    return [name for name, stage in stages().items() if any(d.startswith("stages/") for d in deps_of(stage))]


@pytest.mark.parametrize("name", code_stages())
def test_a_stage_depends_on_every_module_it_runs(name):
    stage = stages()[name]
    deps = deps_of(stage)
    stage_file = next(d for d in deps if d.startswith("stages/"))
    cmd = (stage.get("do") or stage)["cmd"]
    assert f"python -m stages.{Path(stage_file).stem}" in cmd
    own_strategy = "alstudy/strategies/${item.strategy}.py"
    needed = {f for f in closure(stage_file) if not is_face(f)}
    if own_strategy in deps:  # the al cell: its own strategy module stands for each of them
        needed -= STRATEGY_MODULES
    elif not covered("alstudy/strategies/margin.py", deps):  # a stage that reads the registry, runs no strategy
        needed -= STRATEGY_MODULES
    missing = sorted(f for f in needed if not covered(f, deps))
    assert not missing, f"{name}: dvc.yaml does not list {missing}, which the stage imports"


@pytest.mark.parametrize("name", code_stages())
def test_a_stage_lists_no_code_it_does_not_run(name):
    deps = deps_of(stages()[name])
    stage_file = next(d for d in deps if d.startswith("stages/"))
    ran = closure(stage_file) | {stage_file} | STRATEGY_MODULES
    code_deps = [d for d in deps if d.startswith(("alstudy", "stages")) and "${" not in d]
    stale = [d for d in code_deps if not any(f == d or f.startswith(d.rstrip("/") + "/") for f in ran)]
    assert not stale, f"{name}: dvc.yaml lists {stale}, which the stage never imports"


def test_an_al_cell_depends_on_its_own_strategy_only():
    deps = deps_of(stages()["al"])
    assert "alstudy/strategies/${item.strategy}.py" in deps
    assert "alstudy/strategies" not in deps and not any(d in STRATEGY_MODULES for d in deps)


def test_the_checkpoint_fingerprint_reads_the_closure_the_cell_depends_on(monkeypatch):
    from alstudy.scale.cell import cell_code

    monkeypatch.chdir(REPO)
    deps = [d.replace("${item.strategy}", "margin") for d in deps_of(stages()["al"])]
    fingerprinted = {str(p) for p in cell_code("margin", ModelParams(precision="float32"))}
    needed = {f for f in closure("stages/al.py") if f not in STRATEGY_MODULES and not is_face(f)}
    running = "alstudy/learning/backends/tensorflow.py"  # loaded by name: no import names it
    cnn = "alstudy/recipes/networks/cnn.py"  # the recipe's network, by name too
    assert needed | {"stages/al.py", "alstudy/strategies/margin.py", running, cnn} == fingerprinted  # the closure
    assert "alstudy/learning/backends/jax.py" not in fingerprinted
    assert all(covered(f, deps) for f in fingerprinted)
    assert "alstudy/strategies/entropy.py" not in fingerprinted
    assert not any(f.startswith("alstudy/recipes/augmentations/") and "_" not in f for f in fingerprinted)
    augmented = ModelParams(precision="float32", network="resnet", augmentation={"flip": {}, "cutout": {}})
    recipe = {str(p) for p in cell_code("margin", augmented)} - fingerprinted
    assert recipe == {
        f"alstudy/recipes/{m}.py" for m in ("networks/resnet", "augmentations/flip", "augmentations/cutout")
    }
    # What the loop imports is in it, with no one listing it (a hand-kept list once missed stopping.py).
    assert {"alstudy/learning/stopping.py", "alstudy/learning/model.py", "alstudy/learning/loop.py"} <= fingerprinted
