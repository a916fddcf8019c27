"""Regenerate README.md's results section from the study report. Run by hand after a reference study.

    .venv/bin/python -m scripts.readme_results [--report report/study.md] [--note "measured on ..."]

Copies the report's tables and verdicts between the README's results markers,
demoting its headings one level, and a few of its figures to docs/results/
(committed, so the README renders without a study on disk). Prose around the
markers is the maintainers' reading of the results and stays as written.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
# The figures worth a place in the README; the report links all of them.
README_FIGURES = ("accuracy.png", "f1_macro.png", "difference_accuracy.png", "difference_f1_macro.png",
                  "penalty_f1_macro.png", "per_class_f1.png", "queried_classes.png")
FIGURE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")


def readme_block(report: str, report_path: Path, docs_dir: Path, readme_dir: Path, note: str) -> str:
    body = report.split("\n## ", 1)[1]  # drop the title and intro
    lines = [f"_Generated from `{report_path}` by `python -m scripts.readme_results`; {note}_", ""]
    for line in ("## " + body).splitlines():
        figure = FIGURE.match(line)
        if figure:
            source = (report_path.parent / figure["path"]).resolve()
            if source.name not in README_FIGURES:
                continue
            target = docs_dir / f"{source.parent.name}-{source.name}"
            docs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            line = f"![{figure['alt']}]({Path(os.path.relpath(target, readme_dir)).as_posix()})"
        elif line.startswith("#"):
            line = "#" + line
        lines.append(line)
    return "\n".join(lines).strip()


def replace_block(readme: str, block: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md: the markers {START} and {END} are missing; put them around the results section")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, default=Path("report/study.md"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--docs", type=Path, default=Path("docs/results"))
    parser.add_argument("--note", default="see the report for every figure.")
    args = parser.parse_args(argv)
    if not args.report.exists():
        raise SystemExit(f"{args.report}: missing; run `dvc repro` first")
    block = readme_block(args.report.read_text(), args.report, args.docs, args.readme.resolve().parent, args.note)
    args.readme.write_text(replace_block(args.readme.read_text(), block))
    print(f"updated {args.readme} from {args.report}")


if __name__ == "__main__":
    main()
