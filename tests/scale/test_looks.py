"""The sequential study's loop: seeds added to params.yaml a step at a time, until decided or capped."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from alstudy.params import SequentialParams, load_params
from alstudy.scale.looks import append_seeds, next_seeds, run_looks

REPO = Path(__file__).resolve().parents[2]


def verdict(decision: str, a: str = "margin") -> SimpleNamespace:
    return SimpleNamespace(decision=decision, dataset="fashion_mnist", a=a, b="random", metric="accuracy")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


class Study:
    """A fake grid: each look 'runs' the seeds now in params.yaml; verdicts come from a script per look."""

    def __init__(self, project: Path, script: list[list[SimpleNamespace]], seconds_per_look: float = 60.0):
        self.project, self.script, self.seconds = project, script, seconds_per_look
        self.now, self.looked_at = 0.0, []

    def run_look(self) -> None:
        self.now += self.seconds
        self.looked_at.append(list(self.seeds()))

    def seeds(self) -> list[int]:
        return load_params(self.project / "params.yaml").al.seeds

    def verdicts(self) -> list[SimpleNamespace]:
        return self.script[len(self.looked_at) - 1]

    def run(self, plan: SequentialParams, **kwargs):
        return run_looks(self.project, self.run_look, self.verdicts, self.seeds, plan, clock=lambda: self.now, **kwargs)


def test_seeds_are_added_until_every_verdict_is_in_and_params_yaml_keeps_its_comments(project, caplog):
    caplog.set_level("INFO")
    before = (project / "params.yaml").read_text()
    study = Study(project, [[verdict("undecided"), verdict("better", "bald")], [verdict("better")] * 2])
    outcome = study.run(SequentialParams(seeds_per_look=5, max_seeds=15))
    assert outcome.reason == "decided" and outcome.seeds == list(range(10)) and not outcome.undecided
    assert study.looked_at == [[0, 1, 2, 3, 4], list(range(10))]
    after = (project / "params.yaml").read_text()
    assert after.replace("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]", "[0, 1, 2, 3, 4]") == before  # one line changed
    assert "added seeds 5-9 to al.seeds in params.yaml" in caplog.text
    assert "every comparison is decided at 10 seeds" in caplog.text


def test_the_seed_cap_stops_the_study_and_names_what_is_undecided(project, caplog):
    open_ = verdict("undecided")
    study = Study(project, [[open_], [open_], [open_]])
    outcome = study.run(SequentialParams(seeds_per_look=3, max_seeds=10))
    assert outcome.reason == "seed cap" and outcome.seeds == list(range(10)) and outcome.undecided == [open_]
    assert [len(s) for s in study.looked_at] == [5, 8, 10]  # the last step is what the cap leaves
    assert "seed cap (study.sequential.max_seeds 10) reached; undecided: fashion_mnist margin - random (accuracy)" in (
        caplog.text
    )


def test_the_time_cap_starts_no_step_that_would_end_past_it(project, caplog):
    study = Study(project, [[verdict("undecided")]] * 3, seconds_per_look=2000.0)
    outcome = study.run(SequentialParams(seeds_per_look=5, max_seeds=15, max_hours=1.0))
    # 2000 s done; another 2000 s would end at 1.1 h
    assert outcome.reason == "time cap" and len(study.looked_at) == 1
    assert load_params(project / "params.yaml").al.seeds == [0, 1, 2, 3, 4]
    assert "rerun `alstudy grid` to add seeds 5-9" in caplog.text


def test_too_few_seeds_for_any_test_adds_seeds(project):
    study = Study(project, [[], [verdict("equivalent")]])
    append_seeds(project / "params.yaml", [])  # a no-op: the file stays valid
    load_params(project / "params.yaml")
    params = (project / "params.yaml").read_text().replace("seeds: [0, 1, 2, 3, 4]", "seeds: [0]")
    (project / "params.yaml").write_text(params)
    outcome = study.run(SequentialParams(seeds_per_look=2, max_seeds=15))
    assert outcome.reason == "decided" and outcome.seeds == [0, 1, 2]


def test_on_ray_the_study_stops_after_writing_the_next_seeds(project, caplog):
    study = Study(project, [[verdict("undecided")]] * 2)
    outcome = study.run(SequentialParams(seeds_per_look=5, max_seeds=15), one_look=True)
    assert outcome.reason == "next step waits" and len(study.looked_at) == 1
    assert load_params(project / "params.yaml").al.seeds == list(range(10))
    assert "commit it (git commit params.yaml; git push) and rerun" in caplog.text


def test_next_seeds_follow_the_largest_and_respect_the_cap():
    assert next_seeds([0, 1, 2, 3, 4], 5, 15) == [5, 6, 7, 8, 9]
    assert next_seeds([3, 10], 5, 4) == [11, 12]
    assert next_seeds(list(range(15)), 5, 15) == []


def test_seeds_written_as_a_block_list_become_one_line_and_nothing_else_changes(project):
    """yaml.safe_dump writes lists as blocks: the seeds become one flow list, the rest stays."""
    text = (project / "params.yaml").read_text()
    block = text.replace("  seeds: [0, 1, 2, 3, 4]\n", "  seeds:\n  - 0\n  - 1\n  # a comment\n  - 2\n\n")
    (project / "params.yaml").write_text(block)
    append_seeds(project / "params.yaml", [3, 4])
    assert (project / "params.yaml").read_text() == text.replace(
        "  seeds: [0, 1, 2, 3, 4]\n", "  seeds: [0, 1, 2, 3, 4]\n\n"
    )
    assert load_params(project / "params.yaml").al.seeds == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "written, becomes",
    [
        ("  seeds:\n    - 0\n    - 1\n", "  seeds: [0, 1, 2]\n"),
        ("  seeds: [0, 1]   # the first look\n", "  seeds: [0, 1, 2]   # the first look\n"),
    ],
)
def test_other_layouts_of_the_seeds(project, written, becomes):
    text = (project / "params.yaml").read_text().replace("  seeds: [0, 1, 2, 3, 4]\n", written)
    (project / "params.yaml").write_text(text)
    append_seeds(project / "params.yaml", [2])
    assert (project / "params.yaml").read_text() == text.replace(written, becomes)
