"""Regenerate the docs' results page from the study report. Run by hand after a reference study.

    alstudy results-page [--report report/study.md] [--page docs/results.md] [--note "measured on ..."]

Copies the report's tables and verdicts between the page's results markers, demoting its
headings one level, and a few of its figures to docs/results/ (committed, so the page renders
without a study on disk), linked relative to the page. Prose around the markers is the
maintainers' reading of the results and stays as written.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from alstudy.study.report_recipes import is_gains_figure

START, END = "<!-- results:start -->", "<!-- results:end -->"
# The figures worth a place on the page; the report links all of them.
PAGE_FIGURES = (
    "accuracy.png",
    "f1_macro.png",
    "difference_accuracy.png",
    "difference_f1_macro.png",
    "penalty_f1_macro.png",
    "per_class_f1.png",
    "queried_classes.png",
    "rare_classes.png",
)
FIGURE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")


def page_figure_name(source: Path) -> str | None:
    """The name a report figure gets beside the page, or None for a figure the page leaves to the report.

    A unit's figures are named by their folder (plots/fashion_mnist~augmented/accuracy.png ->
    fashion_mnist~augmented-accuracy.png); a study with recipes adds one recipe-gains figure per dataset
    and metric, already named by its dataset (report/figures/fashion_mnist-recipes-accuracy.png)."""
    if source.name in PAGE_FIGURES:
        return f"{source.parent.name}-{source.name}"
    if is_gains_figure(source.name):
        return source.name
    return None


def results_block(report: str, report_path: Path, figures_dir: Path, page_dir: Path, note: str) -> str:
    body = report.split("\n## ", 1)[1]  # drop the title and intro
    # The report as its study names it (report/study.md), not where this machine keeps the study's clone.
    named = Path(*report_path.parts[-2:]).as_posix()
    lines = [f"_Generated from `{named}` by `alstudy results-page`; {note}_", ""]
    for line in ("## " + body).splitlines():
        figure = FIGURE.match(line)
        if figure:
            source = (report_path.parent / figure["path"]).resolve()
            name = page_figure_name(source)
            if name is None:
                continue
            target = figures_dir / name
            figures_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            line = f"![{figure['alt']}]({Path(os.path.relpath(target.resolve(), page_dir)).as_posix()})"
        elif line.startswith("#"):
            line = "#" + line
        lines.append(line)
    return "\n".join(lines).strip()


def replace_block(page: str, block: str, name: str = "the page") -> str:
    if START not in page or END not in page:
        raise SystemExit(f"{name}: the markers {START} and {END} are missing; put them around the results section")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, default=Path("report/study.md"))
    parser.add_argument("--page", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--figures", type=Path, default=Path("docs/results"))
    parser.add_argument("--note", default="see the report for every figure.")
    args = parser.parse_args(argv)
    if not args.report.exists():
        raise SystemExit(f"{args.report}: missing; run `dvc repro` first")
    block = results_block(args.report.read_text(), args.report, args.figures, args.page.resolve().parent, args.note)
    args.page.write_text(replace_block(args.page.read_text(), block, str(args.page)))
    print(f"updated {args.page} from {args.report}")


if __name__ == "__main__":
    main()
