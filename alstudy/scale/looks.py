"""A study that decides its seeds: run the grid, read the verdicts, add seeds, until they are in.

With `study.sequential` set, `alstudy grid` runs the grid of the seeds in `al.seeds`,
then reads the verdicts stage's output. While a comparison is undecided and the caps
allow, it appends the next `seeds_per_look` seeds to `al.seeds` in params.yaml (so
the file always says what the study ran, and `dvc repro` reproduces it) and runs the
grid again: DVC's cache and the cells already done are reused, only the new seeds'
cells run. The verdicts stage tests each look's statistics against group-sequential
boundaries (alstudy/study/sequential.py), so stopping once the verdicts are in keeps
the error rates the study states.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from alstudy.errors import PipelineError
from alstudy.params import SequentialParams
from alstudy.study.verdicts import Verdict

log = logging.getLogger("grid")
PARAMS_FILE = "params.yaml"
SEEDS_KEY = re.compile(r"([ \t]+)seeds:[ \t]*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    """How a sequential study ended."""

    seeds: list[int]
    undecided: list[Verdict]
    reason: str  # decided | seed cap | time cap | next step waits (Ray: commit and rerun)


def next_seeds(seeds: list[int], step: int, cap: int) -> list[int]:
    """The next `step` seeds after the largest in use (fewer where the cap leaves less room)."""
    room = min(step, cap - len(seeds))
    start = max(seeds, default=-1) + 1
    return list(range(start, start + max(room, 0)))


def append_seeds(params_file: Path, new: list[int]) -> None:
    """Append to al.seeds in params.yaml, rewriting that key alone (as one line) and keeping the rest of the file,
    comments included, as it is."""
    text = params_file.read_text()
    seeds = yaml.safe_load(text)["al"]["seeds"]
    lines = text.splitlines(keepends=True)
    span = _seeds_span(lines)
    if span is None:
        raise PipelineError(f"{params_file}: no al.seeds to add seeds to; write `seeds: [0, 1, 2, 3, 4]` under al:")
    first, end, indent, comment = span
    listed = ", ".join(str(seed) for seed in seeds + new)
    lines[first:end] = [f"{indent}seeds: [{listed}]{comment}\n"]
    updated = "".join(lines)
    if yaml.safe_load(updated)["al"]["seeds"] != seeds + new:  # a layout this reading got wrong: touch nothing
        raise PipelineError(f"{params_file}: could not add seeds {new} to al.seeds; add them by hand and rerun")
    partial = params_file.with_name(params_file.name + ".partial")
    partial.write_text(updated)
    partial.replace(params_file)  # never a half-written params.yaml


def _seeds_span(lines: list[str]) -> tuple[int, int, str, str] | None:
    """Where al.seeds is written: its first line, the line after its value, its indent, its line's comment."""
    section = next((i for i, line in enumerate(lines) if re.match(r"al:\s*(#.*)?$", line)), None)
    if section is None:
        return None
    for i in range(section + 1, len(lines)):
        if re.match(r"[^\s#]", lines[i]):
            return None  # the next top-level section
        key = SEEDS_KEY.match(lines[i])
        if key is None:
            continue
        indent, value = key.group(1), key.group(2)
        comment = ""
        if value.startswith("[") and "]" in value:  # a flow list on this line, perhaps with a comment after
            comment = value[value.index("]") + 1 :].rstrip("\n")
            return i, i + 1, indent, comment
        end = i + 1  # a block list: the lines below, indented deeper (or at the key's level, starting "- ")
        while end < len(lines) and (
            not lines[end].strip()
            or lines[end].lstrip().startswith("#")
            or len(lines[end]) - len(lines[end].lstrip()) > len(indent)
            or lines[end].startswith(indent + "- ")
        ):
            end += 1
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1  # keep blank lines after the list
        return i, end, indent, ""
    return None


def seed_range(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


def describe(verdict: Verdict) -> str:
    return f"{verdict.dataset} {verdict.a} - {verdict.b} ({verdict.metric})"


def run_looks(
    root: Path,
    run_look: Callable[[], None],
    read_verdicts: Callable[[], list[Verdict]],
    read_seeds: Callable[[], list[int]],
    plan: SequentialParams,
    *,
    one_look: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run looks until every verdict is decided or a cap is reached. one_look: stop after the first look
    with the next seeds written to params.yaml (Ray workers run the committed params: commit, rerun)."""
    started = clock()
    while True:
        look_start = clock()
        run_look()
        look_seconds = clock() - look_start
        seeds = read_seeds()
        verdicts = read_verdicts()
        undecided = [v for v in verdicts if v.decision == "undecided"]
        log.info(
            "look at %d seed%s: %s",
            len(seeds),
            "s" * (len(seeds) != 1),
            f"{len(undecided)} of {len(verdicts)} comparisons undecided" if verdicts else "too few seeds to test",
        )
        if verdicts and not undecided:  # no verdicts at all: fewer than two seeds so far
            log.info("every comparison is decided at %d seeds", len(seeds))
            return Outcome(seeds, [], "decided")
        new = next_seeds(seeds, plan.seeds_per_look, plan.max_seeds)
        if not new:
            log.warning(
                "seed cap (study.sequential.max_seeds %d) reached; undecided: %s",
                plan.max_seeds,
                "; ".join(describe(v) for v in undecided) or "every comparison",
            )
            return Outcome(seeds, undecided, "seed cap")
        elapsed, limit = clock() - started, plan.max_hours * 3600
        if elapsed + look_seconds > limit:
            log.warning(
                "time cap (study.sequential.max_hours %g): the next step would end after about %.1f h; %d undecided "
                "at %d seeds; rerun `alstudy grid` to add %s",
                plan.max_hours,
                (elapsed + look_seconds) / 3600,
                len(undecided),
                len(seeds),
                seed_range(new),
            )
            return Outcome(seeds, undecided, "time cap")
        append_seeds(root / PARAMS_FILE, new)
        log.info("added %s to al.seeds in %s", seed_range(new), PARAMS_FILE)
        if one_look:
            log.warning(
                "Ray workers run the committed params.yaml: commit it (git commit params.yaml; git push) and rerun "
                "`alstudy grid --ray ...` for the next step"
            )
            return Outcome(seeds, undecided, "next step waits")
