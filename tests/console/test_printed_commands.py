"""Every command the labelling loop prints (on the batch page, in its messages, in `--help`) runs as
printed: a person copies it, so it must parse and work exactly in that form."""

from __future__ import annotations

import csv
import html
import logging
import re
import shlex
from pathlib import Path

import pytest

import alstudy.console
from alstudy.console import label as label_command
from helpers.labelling import make_label_project

PRINTED = re.compile(r"alstudy label [a-z]+[^\"<`\n]*(?:<[a-z ]+>)?[^\"<`\n]*")


def run_as_printed(command: str, file: Path | None = None) -> None:
    """The command with its placeholder (<file>, <that file>) replaced by `file`, run as `alstudy` would."""
    if file is not None:
        command = re.sub(r"<[a-z ]+>", str(file), command)
    argv = shlex.split(command)
    assert argv[:1] == ["alstudy"], command
    assert alstudy.console.main(argv[1:]) == 0, command


def fill(manifest: Path, label: str, out: Path, only: int | None = None) -> Path:
    rows = list(csv.DictReader(open(manifest, newline="")))
    with open(out, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({**row, "label": label if only is None or i == only else ""})
    return out


@pytest.fixture
def project(tmp_path, monkeypatch):
    root, _ = make_label_project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    return root


def test_the_import_commands_on_the_batch_page_run_as_printed(project, tmp_path):
    run_as_printed("alstudy label next")
    page = html.unescape((project / "labelling/parts/batch-001/label.html").read_text())
    printed = sorted(set(m.strip().rstrip(".") for m in PRINTED.findall(page)))
    assert printed == [
        "alstudy label import --project parts <file>",
        "alstudy label import --project parts <that file>",
    ]
    manifest = project / "labelling/parts/batch-001/manifest.csv"
    for i, command in enumerate(printed):  # --project before the file, as printed
        run_as_printed(command, fill(manifest, "bolt", tmp_path / f"saved-{i}.csv", only=i))


def test_the_relabel_hint_runs_as_printed(project, tmp_path, caplog):
    run_as_printed("alstudy label next")
    manifest = project / "labelling/parts/batch-001/manifest.csv"
    run_as_printed("alstudy label import --project parts <file>", fill(manifest, "bolt", tmp_path / "a.csv", only=0))
    fill(manifest, "gear", manifest, only=0)  # typed into the manifest: disagrees with the import
    with caplog.at_level(logging.WARNING, logger="label"):
        run_as_printed("alstudy label next")
    (hint,) = [m.strip() for m in PRINTED.findall(caplog.text) if "--relabel" in m]
    assert hint == f"alstudy label import --project parts {Path('labelling/parts/batch-001/manifest.csv')} --relabel"
    run_as_printed(hint)
    rows = list(csv.DictReader(open(project / "labels/parts.csv", newline="")))
    assert [r["label"] for r in rows] == ["gear"]


@pytest.mark.parametrize(
    "form",
    [
        "alstudy label import --project parts saved.csv",
        "alstudy label import saved.csv --project parts",
        "alstudy label import saved.csv --relabel --project parts",
        "alstudy label pull --project parts --relabel",
        "alstudy label push --url http://127.0.0.1:8080 --project parts",
    ],
)
def test_options_go_before_or_after_the_file(form):
    args = label_command.parse_args(shlex.split(form)[2:])
    assert args.project == "parts"


def test_every_form_in_the_help_parses():
    forms = [line.split("#")[0].strip() for line in label_command.__doc__.splitlines() if "alstudy label" in line]
    assert len(forms) == 6
    for form in forms:
        concrete = form.replace("[", "").replace("]", "").replace("NAME", "parts").replace("FILE", "x.csv")
        concrete = concrete.replace("URL", "http://127.0.0.1:8080").replace("TOKEN", "t")
        concrete = concrete.replace("--host H", "--host 127.0.0.1").replace("--port P", "--port 9090")
        label_command.parse_args(shlex.split(concrete)[2:])


def test_two_projects_and_no_project_named_is_one_line_asking_which(project):
    from alstudy.errors import PipelineError
    from alstudy.params import load_params

    params = load_params()
    params.label.projects["other"] = params.label.projects["parts"]
    with pytest.raises(
        PipelineError, match=r"^2 labelling projects under label.projects .*\(parts, other\); say which"
    ):
        label_command.project_of(params, None)
