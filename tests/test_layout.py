"""The project layout page against the code: every module is on it, and the dependencies it states between
the subpackages are the ones the imports have."""

from __future__ import annotations

import re
from pathlib import Path

from alstudy import code_closure

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs/developer/layout.md"
BLOCK = re.compile(r"<!-- dependencies:start -->\n(.*?)<!-- dependencies:end -->", re.S)


def dependency_lines() -> str:
    deps = code_closure.package_dependencies(REPO)
    return "".join(
        f"- `{package}`: {', '.join(f'`{d}`' for d in sorted(uses)) if uses else 'nothing else of the package'}\n"
        for package, uses in sorted(deps.items())
    )


def test_every_module_of_the_package_is_on_the_layout_page():
    page = PAGE.read_text()
    missing = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "alstudy").rglob("*.py"))
        if path.name != "__init__.py"
        and path.name not in page
        and not (path.parent.name == "strategies" and re.search(rf"\b{path.stem}\b", page))
    ]
    assert not missing, f"docs/developer/layout.md does not name {missing}"


def test_every_file_the_layout_page_names_exists():
    page = PAGE.read_text()
    named = set(re.findall(r"\b([a-z_]+\.py)\b", page))
    present = {p.name for p in REPO.rglob("*.py") if ".venv" not in p.parts}
    assert not named - present, f"docs/developer/layout.md names files that are gone: {sorted(named - present)}"


def test_the_dependencies_between_subpackages_are_the_codes():
    block = BLOCK.search(PAGE.read_text())
    assert block, "docs/developer/layout.md has no dependencies block"
    assert block.group(1) == dependency_lines(), "the dependencies block should read:\n" + dependency_lines()


def test_every_module_has_an_api_reference_page():
    pages = "".join(page.read_text() for page in (REPO / "docs/reference/api").glob("*.md"))
    modules = [
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted((REPO / "alstudy").rglob("*.py"))
    ]
    missing = [module for module in modules if f"::: {module}\n" not in pages + "\n"]
    assert not missing, f"docs/reference/api/ has no page section for {missing}"
