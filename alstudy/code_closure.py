"""The alstudy files a module runs, read from its imports: one answer for two questions.

DVC needs each stage's code in its `deps` (tests/pipeline/test_stage_deps.py checks dvc.yaml against
`closure`), and a cell's round checkpoint must be discarded when code that shapes its numbers changes
(`cell_code` feeds its fingerprint). Both come from here, so no hand-kept list can drift from the code.

The imports are read from the source (every `import` and `from ... import`, at any depth of a
function, not under `if TYPE_CHECKING:`). Shared plumbing is not followed: editing it must not rerun
the grid, and it changes no result. Strategies are imported by the registry from disk, not by name,
so a cell adds its own strategy's module: fixing one strategy reruns its cells alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

PLUMBING = frozenset(
    {
        "alstudy/__init__.py",
        "alstudy/params.py",
        "alstudy/paths.py",
        "alstudy/errors.py",
        "alstudy/runner.py",
        "alstudy/code_closure.py",
        "alstudy/hardware.py",
        "alstudy/learning/__init__.py",  # sets Keras' backend from params.yaml (recorded with each run)
        "alstudy/console/__init__.py",  # the `alstudy` command table, which stages/label.py passes
        "alstudy/scale/__init__.py",
        "alstudy/scale/process_lock.py",  # one process per cell: changes who runs a cell, never its outputs
    }
)
STRATEGIES_DIR = "alstudy/strategies"


def module_file(dotted: str, root: Path) -> str | None:
    """alstudy.x.y -> alstudy/x/y.py (or its package's __init__.py); None outside alstudy or stages."""
    if dotted.split(".")[0] not in ("alstudy", "stages"):
        return None
    path = Path(*dotted.split("."))
    if (root / path.with_suffix(".py")).is_file():
        return str(path.with_suffix(".py"))
    if (root / path / "__init__.py").is_file():
        return str(path / "__init__.py")
    return None


def imported_files(source_file: str, root: Path) -> set[str]:
    tree = ast.parse((root / source_file).read_text())
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
                f"{node.module}.{alias.name}" if module_file(f"{node.module}.{alias.name}", root) else node.module
                for alias in node.names
            ]
        for dotted in names:
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                file = module_file(".".join(parts[:i]), root)
                if file:
                    found.add(file)
    return found


def closure(source_file: str, root: Path | None = None) -> set[str]:
    """The alstudy files `source_file` runs (relative to `root`, the project root by default), plumbing
    left out."""
    root = Path.cwd() if root is None else Path(root)
    seen, todo = set(), [source_file]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        if file in PLUMBING:
            continue
        todo += sorted(imported_files(file, root) - seen)
    return {f for f in seen if f.startswith("alstudy/")} - PLUMBING


def is_face(file: str, root: Path | None = None) -> bool:
    """A package's __init__.py that only documents the package (nothing to depend on)."""
    root = Path.cwd() if root is None else Path(root)
    tree = ast.parse((root / file).read_text())
    return file.endswith("__init__.py") and all(isinstance(n, ast.Expr) for n in tree.body)


def strategy_modules(root: Path | None = None) -> set[str]:
    """Every strategy's own module (the public modules of the strategies package)."""
    root = Path.cwd() if root is None else Path(root)
    return {f"{STRATEGIES_DIR}/{p.name}" for p in (root / STRATEGIES_DIR).glob("*.py") if not p.name.startswith("_")}


def cell_code(
    stage_file: str,
    strategy_module: str,
    root: Path | None = None,
    backend_module: str | None = None,
    recipe_modules: tuple[str, ...] = (),
) -> list[Path]:
    """The code that shapes an al cell's numbers: the stage, what it imports, its own strategy's module
    (not the other strategies'), the module of the Keras backend it runs on and those of its recipe's
    network and augmentations (loaded by name, so no import names them)."""
    files = {f for f in closure(stage_file, root) - strategy_modules(root) if not is_face(f, root)}
    files |= {stage_file, strategy_module, *recipe_modules} | ({backend_module} if backend_module else set())
    return [Path(f) for f in sorted(files)]


def package_dependencies(root: Path | None = None) -> dict[str, set[str]]:
    """Each subpackage of alstudy -> the other subpackages its modules import (plumbing and type-only
    imports left out): the architecture as the code has it, for docs/developer/layout.md."""
    root = Path.cwd() if root is None else Path(root)
    found: dict[str, set[str]] = {}
    for file in sorted((root / "alstudy").glob("*/*.py")):
        package = file.parent.name
        found.setdefault(package, set())
        for imported in imported_files(str(file.relative_to(root)), root):
            parts = Path(imported).parts
            if len(parts) >= 3 and parts[1] != package and imported not in PLUMBING:
                found[package].add(parts[1])
    return found
