"""Write docs/reference/params.md from the params schema: each key's meaning is written once, on its field.

    alstudy params-page [--out docs/reference/params.md]

The defaults shown are the schema's, which equal params.yaml's (tests/test_params.py checks both,
and that the committed page is what this writes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from alstudy import strategies
from alstudy.params import FolderParams, ImbalancedParams, LabelProject, Params
from alstudy.recipes import augmentations, networks

INTRO = """# Parameters

_Generated from the schema in `alstudy/params.py` by `alstudy params-page`; edit the fields' descriptions
there, not this page._

Every stage validates the whole `params.yaml` when it starts: an unknown key, a wrong type or an
out-of-range value stops it with one line such as
`error: params.yaml: al.query_size: Input should be greater than or equal to 1 (got 0)`.
A stage depends on the sections (or keys) it reads, so changing a key reruns what it affects.
"""
# Keys holding user-named entries, and the model each entry follows.
NAMED = {
    ("data", "folders"): ("<name>", FolderParams),
    ("data", "imbalanced"): ("<name>", ImbalancedParams),
    ("label", "projects"): ("<name>", LabelProject),
}


def default_text(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, dict):  # named entries: shown as params.yaml holds them
        value = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
    if isinstance(value, BaseModel):  # a block of its own: its keys have rows below
        return "a block"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`" if not isinstance(value, str) or value == "" else f"`{value}`"


def rows(prefix: str, model: type[BaseModel]) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        description = (field.description or "").replace("|", "\\|")
        out.append(f"| `{key}` | {default_text(field)} | {description} |")
        section, _, _ = prefix.partition(".")
        default = field.get_default(call_default_factory=True) if not field.is_required() else None
        if isinstance(default, BaseModel):
            out += rows(key, type(default))
        if (section, name) in NAMED:
            placeholder, entry = NAMED[(section, name)]
            out += rows(f"{key}.{placeholder}", entry)
    return out


def strategy_option_rows() -> list[str]:
    out = []
    for name, spec in strategies.STRATEGIES.items():
        out += rows(f"al.strategy_options.{name}", spec.options)
    return out


def recipe_option_rows() -> list[str]:
    """The options of each registered network (`model.network_options`) and augmentation."""
    out = []
    for name, network in networks.NETWORKS.items():
        out += rows(f"model.network_options ({name})", network.options)
    for name, augmentation in augmentations.AUGMENTATIONS.items():
        out += rows(f"model.augmentation.{name}", augmentation.options)
    return out


def render() -> str:
    parts = [INTRO]
    for section, field in Params.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):  # named entries only (recipes)
            description = (field.description or "").replace("|", "\\|")
            parts += [f"## `{section}`", "", description, "", f"Default: {default_text(field)}", ""]
            continue
        parts += [
            f"## `{section}`",
            "",
            (model.__doc__ or "").strip(),
            "",
            "| key | default | meaning |",
            "|---|---|---|",
            *rows(section, model),
        ]
        if section == "al":
            parts += strategy_option_rows()
        if section == "model":
            parts += recipe_option_rows()
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/reference/params.md"))
    args = parser.parse_args(argv)
    args.out.write_text(render())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
