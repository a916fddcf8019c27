"""Every DVC stage depends on the code it runs: its deps in dvc.yaml against the modules it imports.

The imports are read from the source (every `import` and `from ... import`, at any depth of a
function, not under `if TYPE_CHECKING:`), followed through alstudy/ from the stage's module. Shared
plumbing is left out on purpose (editing it must not rerun the grid), and a strategy's module counts
only for the stages that run a strategy: an al cell depends on its own strategy's module alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLUMBING = {
    "alstudy/__init__.py",
    "alstudy/params.py",
    "alstudy/paths.py",
    "alstudy/errors.py",
    "alstudy/runner.py",
    "alstudy/console/__init__.py",  # the `alstudy` command table, which stages/label.py passes
    "alstudy/scale/__init__.py",
    "alstudy/scale/process_lock.py",  # one process per cell: changes who runs a cell, never its outputs
}
STRATEGY_MODULES = {
    f"alstudy/strategies/{p.name}" for p in (REPO / "alstudy/strategies").glob("*.py") if not p.name.startswith("_")
}


def module_file(dotted: str) -> str | None:
    """alstudy.x.y -> alstudy/x/y.py (or its package's __init__.py); None outside alstudy or stages."""
    if dotted.split(".")[0] not in ("alstudy", "stages"):
        return None
    path = Path(*dotted.split("."))
    if (REPO / path.with_suffix(".py")).is_file():
        return str(path.with_suffix(".py"))
    if (REPO / path / "__init__.py").is_file():
        return str(path / "__init__.py")
    return None


def imported_files(source_file: str) -> set[str]:
    tree = ast.parse((REPO / source_file).read_text())
    skipped = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` names a module; `from module import name` names the module
            names = [
                f"{node.module}.{alias.name}" if module_file(f"{node.module}.{alias.name}") else node.module
                for alias in node.names
            ]
        for dotted in names:
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                file = module_file(".".join(parts[:i]))
                if file:
                    found.add(file)
    return found


def closure(stage_file: str) -> set[str]:
    """The alstudy files a stage runs, not following through the plumbing (which imports the registries)."""
    seen, todo = set(), [stage_file]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        if file in PLUMBING:
            continue
        todo += sorted(imported_files(file) - seen)
    return {f for f in seen if f.startswith("alstudy/")} - PLUMBING


def is_face(file: str) -> bool:
    """A package's __init__.py that only documents the package (nothing to depend on)."""
    tree = ast.parse((REPO / file).read_text())
    return file.endswith("__init__.py") and all(isinstance(n, ast.Expr) for n in tree.body)


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


def test_the_checkpoint_fingerprint_reads_the_same_code_as_the_cell_depends_on():
    from stages.al import result_code

    deps = [d.replace("${item.strategy}", "margin") for d in deps_of(stages()["al"])]
    fingerprinted = {str(p) for p in result_code("margin")}
    assert all(covered(f, deps) for f in fingerprinted)
    assert "alstudy/strategies/margin.py" in fingerprinted and "alstudy/strategies/entropy.py" not in fingerprinted
    assert {"alstudy/learning/model.py", "alstudy/learning/training.py", "alstudy/learning/loop.py"} <= fingerprinted
