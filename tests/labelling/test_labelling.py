"""The labelling loop on real image files: next, a person's labels (CSV and Label Studio), import, next.

A folder of unlabelled PNG and JPEG files is written with Pillow; the "person" is this test,
labelling from the classes the images were drawn from.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from alstudy.errors import PipelineError
from alstudy.fileio import from_spreadsheet_cell
from alstudy.labelling.batches import read_labels as read_label_file
from helpers.labelling import LABEL_CLASSES as CLASSES
from helpers.labelling import label, make_label_project
from helpers.repo import copy_repo, dvc

REPO = Path(__file__).resolve().parents[2]


def fill_manifest(manifest: Path, truth: dict[str, str], out: Path) -> Path:
    """What a person does: the label column filled in."""
    with open(manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    with open(out, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "label": truth[from_spreadsheet_cell(row["path"])]})
    return out


FORMULA_PREFIXES = ("=HYPERLINK(x)", "+SUM(1,1)", "@SUM(1)", "-1+1")


def formula_names(folder: Path, truth: dict[str, str]) -> dict[str, str]:
    """Every image renamed to a name a spreadsheet would run as a formula (OWASP's examples)."""
    renamed = {}
    for i, (name, cls) in enumerate(sorted(truth.items())):
        new = f"{FORMULA_PREFIXES[i % len(FORMULA_PREFIXES)]}{name}"
        (folder / name).rename(folder / new)
        renamed[new] = cls
    return renamed


def test_cells_a_spreadsheet_would_run_are_neutralised_and_read_back(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    truth = formula_names(project / "data/unlabelled", truth)
    label(project, monkeypatch, "next")
    manifest = project / "labelling/parts/batch-001/manifest.csv"
    for file in (manifest, fill_manifest(manifest, truth, tmp_path / "filled.csv")):
        cells = [row["path"] for row in csv.DictReader(open(file, newline=""))]
        assert cells and all(cell.startswith("'") and cell[1] in "=+@-" for cell in cells), cells
    label(project, monkeypatch, "import", str(tmp_path / "filled.csv"))
    raw = (project / "labels/parts.csv").read_text().splitlines()[1:]
    assert raw and all(line.startswith("'") for line in raw), raw
    labels = read_label_file(project / "labels/parts.csv")
    assert labels and all(truth[path] == given.label for path, given in labels.items())
    # A spreadsheet that dropped the quote on saving: the same names are read.
    rows = list(csv.DictReader(open(tmp_path / "filled.csv", newline="")))
    for row in rows:
        row["path"] = row["path"][1:]
    unquoted = write_rows(tmp_path / "unquoted.csv", rows)
    label(project, monkeypatch, "import", str(unquoted))  # nothing new, nothing refused
    assert read_label_file(project / "labels/parts.csv") == labels


def label_studio_export(tasks_file: Path, truth: dict[str, str], out: Path) -> Path:
    """Label Studio's JSON export of the imported tasks, each annotated with one "choices" result."""
    tasks = json.loads(tasks_file.read_text())
    export = []
    for i, task in enumerate(tasks, start=1):
        export.append(
            {
                "id": 100 + i,
                "data": task["data"],
                "meta": {},
                "created_at": "2026-11-26T07:00:00.000000Z",
                "updated_at": "2026-11-26T07:01:00.000000Z",
                "inner_id": i,
                "total_annotations": 1,
                "cancelled_annotations": 0,
                "total_predictions": 1,
                "comment_count": 0,
                "project": 1,
                "annotations": [
                    {
                        "id": 200 + i,
                        "completed_by": 1,
                        "was_cancelled": False,
                        "ground_truth": False,
                        "lead_time": 2.5,
                        "result_count": 0,
                        "task": 100 + i,
                        "project": 1,
                        "result": [
                            {
                                "id": f"r{i}",
                                "type": "choices",
                                "from_name": "label",
                                "to_name": "image",
                                "origin": "manual",
                                "value": {"choices": [truth[task["data"]["path"]]]},
                            }
                        ],
                    }
                ],
                "predictions": [200 + i],
            }
        )
    out.write_text(json.dumps(export))
    return out


def read_labels(project: Path) -> dict[str, str]:
    with open(project / "labels/parts.csv", newline="") as stream:
        return {row["path"]: row["label"] for row in csv.DictReader(stream)}


def count_decodes(monkeypatch) -> list[str]:
    """The image files the labelling loop decodes from now on (through its decoded-image cache)."""
    from alstudy.data import image_cache

    seen: list[str] = []
    real = image_cache.load_image
    monkeypatch.setattr(image_cache, "load_image", lambda path, *args: seen.append(str(path)) or real(path, *args))
    return seen


def test_two_batches_labelled_as_a_person_would(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    decoded = count_decodes(monkeypatch)

    label(project, monkeypatch, "next")  # no labels yet: a seeded random first batch
    batch1 = project / "labelling/parts/batch-001"
    rows = list(csv.DictReader(open(batch1 / "manifest.csv")))
    assert len(rows) == 6 and [r["row_id"] for r in rows] == [str(i) for i in range(1, 7)]
    assert all(r["path"] in truth and r["suggested_label"] == "" for r in rows)
    label(project, monkeypatch, "import", str(fill_manifest(batch1 / "manifest.csv", truth, tmp_path / "b1.csv")))
    assert read_labels(project) == {r["path"]: truth[r["path"]] for r in rows}

    label(project, monkeypatch, "next")  # trained on 6 labels; margin picks batch 2
    # Every image decoded once (each unlabelled one, each test one), into the project's cache.
    assert len(decoded) == len(set(decoded)) == len(truth) + 4 * len(CLASSES)
    batch2 = project / "labelling/parts/batch-002"
    rows2 = list(csv.DictReader(open(batch2 / "manifest.csv")))
    assert len(rows2) == 6 and not {r["path"] for r in rows2} & {r["path"] for r in rows}
    assert all(r["suggested_label"] in CLASSES for r in rows2)
    scores = [float(r["score"]) for r in rows2]
    assert all(0 <= s <= 1 for s in scores)  # margins
    export = label_studio_export(batch2 / "tasks.json", truth, tmp_path / "export.json")
    label(project, monkeypatch, "import", str(export))
    labels = read_labels(project)
    assert len(labels) == 12 and all(labels[p] == truth[p] for p in labels)

    # Importing the same file again adds nothing.
    label(project, monkeypatch, "import", str(export))
    assert read_labels(project) == labels

    decoded.clear()
    shutil.copy(project / "data/unlabelled" / next(iter(truth)), project / "data/unlabelled/new.png")
    label(project, monkeypatch, "next")
    assert [Path(p).name for p in decoded] == ["new.png"]  # the rest comes from the cache
    # MLflow: one run for the project, one step per batch, test metrics once there are labels, models.
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = mlflow.search_runs(
        experiment_names=["deep-active-learning"], output_format="list", filter_string="tags.kind = 'labelling'"
    )
    client = MlflowClient()
    assert [m.value for m in client.get_metric_history(run.info.run_id, "n_labeled")] == [0, 6, 12]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [2, 3]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "labelled/bolt")] == [2, 3]
    # When to stop: batch 3's model against batch 2's on the stop set (the whole folder here), on its page too.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "stopping/kappa")] == [3]
    watch = json.loads((project / "labelling/parts/batch-003/stop_set.json").read_text())
    assert len(watch["predicted"]) == len(truth) + 1 and watch["agreements"][0] is None  # and new.png
    assert (
        "When to stop: this batch's model agrees with the previous one on"
        in (project / "labelling/parts/batch-003/label.html").read_text()
    )
    assert json.loads(run.data.tags["class_keys"]) == {c: c for c in CLASSES}
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert sorted(m.name for m in models) == ["batch-002", "batch-003"]
    # The labelling page: every row's thumbnail and id, from disk, with no address outside the file.
    page = (batch2 / "label.html").read_text()
    assert page.count("<img ") == 6 and all(f'id="row-{i}"' in page for i in range(1, 7))
    assert "http://" not in page and "https://" not in page


def test_a_batch_never_imported_is_asked_again(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    first = (project / "labelling/parts/batch-001/manifest.csv").read_text()
    label(project, monkeypatch, "next")
    assert (project / "labelling/parts/batch-001/manifest.csv").read_text() == first
    assert not (project / "labelling/parts/batch-002").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("unknown_class", "'washer' is not a class of this project"),
        ("not_in_batch", "is not in any batch issued for this project"),
        ("duplicate", "labelled twice in this file"),
    ],
)
def test_bad_import_names_the_row_and_writes_nothing(tmp_path, monkeypatch, damage, message):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    filled = fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "filled.csv")
    rows = list(csv.DictReader(open(filled)))
    if damage == "unknown_class":
        rows[2]["label"] = "washer"
    elif damage == "not_in_batch":
        rows[2]["row_id"], rows[2]["path"] = "99", "9999.png"
    elif damage == "duplicate":  # the same image twice, with two different labels
        rows.append({**rows[0], "label": next(c for c in CLASSES if c != rows[0]["label"])})
    with open(filled, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = (project / "labels/parts.csv").read_text()
    with pytest.raises(PipelineError) as caught:
        label(project, monkeypatch, "import", str(filled))
    assert message in str(caught.value) and "filled.csv:" in str(caught.value) and "\n" not in str(caught.value)
    assert (project / "labels/parts.csv").read_text() == before


def test_a_changed_label_needs_relabel(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    filled = fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "filled.csv")
    label(project, monkeypatch, "import", str(filled))
    rows = list(csv.DictReader(open(filled)))
    changed = next(c for c in CLASSES if c != rows[0]["label"])
    rows[0]["label"] = changed
    with open(filled, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(PipelineError, match="already labelled .*--relabel"):
        label(project, monkeypatch, "import", str(filled))
    label(project, monkeypatch, "import", str(filled), "--relabel")
    assert read_labels(project)[rows[0]["path"]] == changed


def test_a_crash_while_writing_leaves_the_old_labels_file(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    filled = fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "filled.csv")
    before = (project / "labels/parts.csv").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed after the new file was written, before it replaced the old

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        label(project, monkeypatch, "import", str(filled))
    monkeypatch.undo()
    assert (project / "labels/parts.csv").read_text() == before
    assert not list((project / "labels").glob(".*part*"))


@pytest.mark.browser
def test_a_person_labels_a_batch_on_its_page_in_a_real_browser(tmp_path, monkeypatch):
    """Keys and clicks in headless Chromium: label, accept a suggestion, skip, move back, reload (nothing
    lost), save; the saved file imports, and the skipped and untouched images come back."""
    from browser import Browser

    project, truth = make_label_project(tmp_path)
    truth = formula_names(project / "data/unlabelled", truth)  # the saved CSV must not run them as formulas
    label(project, monkeypatch, "next")
    label(
        project,
        monkeypatch,
        "import",
        str(fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "b1.csv")),
    )
    label(project, monkeypatch, "next")  # batch 2: suggestions from a model trained on batch 1
    batch = project / "labelling/parts/batch-002"
    rows = [{**r, "path": from_spreadsheet_cell(r["path"])} for r in csv.DictReader(open(batch / "manifest.csv"))]
    assert all(0 < float(r["confidence"]) <= 1 for r in rows)
    key = {name: str(i + 1) for i, name in enumerate(CLASSES)}
    downloads = tmp_path / "downloads"
    with Browser() as browser:
        browser.allow_downloads(downloads)
        browser.open((batch / "label.html").as_uri())
        browser.wait_for("document.body.dataset.rendered === '6'", what="six thumbnails rendered")
        assert browser.evaluate("document.body.dataset.current") == "1"
        shown = browser.text()
        assert "suggested " + rows[0]["suggested_label"] + ", confidence" in shown and "0 labelled" in shown
        browser.press(key[truth[rows[0]["path"]]])  # row 1: a number key
        browser.press("s")  # row 2: skipped
        browser.press("Enter")  # row 3: the suggestion accepted, right or wrong
        browser.click(f'button[data-class="{truth[rows[3]["path"]]}"]')  # row 4: a click on its class
        browser.press("ArrowLeft")  # back to row 4, relabelled with a key
        other = next(c for c in CLASSES if c != truth[rows[3]["path"]])
        browser.press(key[other])
        browser.press("ArrowLeft")
        browser.press(key[truth[rows[3]["path"]]])
        browser.click("#row-6")  # row 6 by a click on its image, then a key
        browser.press(key[truth[rows[5]["path"]]])
        assert browser.evaluate("[document.body.dataset.done, document.body.dataset.skipped]") == ["4", "1"]
        browser.reload()  # nothing typed is lost
        browser.wait_for("document.body.dataset.rendered === '6'", what="the page again")
        assert browser.evaluate("[document.body.dataset.done, document.body.dataset.skipped]") == ["4", "1"]
        assert "4 labelled · 1 skipped · 1 to go" in browser.text()
        assert browser.evaluate("document.body.dataset.current") == rows[4]["row_id"]  # where it was left off
        browser.click("#save")
        saved = downloads / "parts-batch-002-labels.csv"
        deadline = time.monotonic() + 30
        while not saved.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.screenshot(Path(os.environ.get("LABEL_SHOTS", "/tmp/label-shots")) / "label_page.png")
    cells = {r["path"]: r["label"] for r in csv.DictReader(open(saved, newline=""))}
    assert all(cell.startswith("'") and cell[1] in "=+@-" for cell in cells)  # no formula in the saved CSV
    given = {from_spreadsheet_cell(path): value for path, value in cells.items()}
    expected = {
        rows[0]["path"]: truth[rows[0]["path"]],
        rows[2]["path"]: rows[2]["suggested_label"],
        rows[3]["path"]: truth[rows[3]["path"]],
        rows[5]["path"]: truth[rows[5]["path"]],
    }
    assert {path: value for path, value in given.items() if value} == expected
    assert set(given) == {r["path"] for r in rows}  # every row, unlabelled ones empty

    before = {path: given.label for path, given in read_label_file(project / "labels/parts.csv").items()}
    label(project, monkeypatch, "import", str(saved))
    after = {path: given.label for path, given in read_label_file(project / "labels/parts.csv").items()}
    assert after == {**before, **expected}
    label(project, monkeypatch, "next")  # the skipped and the untouched images come back first
    manifest = project / "labelling/parts/batch-003/manifest.csv"
    again = [from_spreadsheet_cell(r["path"]) for r in csv.DictReader(open(manifest))]
    assert again[:2] == [rows[1]["path"], rows[4]["path"]]


def write_rows(path: Path, rows: list[dict], **csv_options) -> Path:
    with open(path, "w", newline="", encoding=csv_options.pop("encoding", "utf-8")) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), **csv_options)
        writer.writeheader()
        writer.writerows(rows)
    return path


def type_into_manifest(manifest: Path, truth: dict[str, str], count: int) -> dict[str, str]:
    """A person opens the manifest in a spreadsheet, types `count` labels and saves it in place as
    LibreOffice and Excel do in many locales: UTF-8 with a byte-order mark, semicolons, CRLF."""
    rows = list(csv.DictReader(open(manifest, newline="")))
    typed = {}
    for row in rows[:count]:
        row["label"] = truth[row["path"]].upper() if len(typed) % 2 else truth[row["path"]]  # case as typed
        typed[row["path"]] = truth[row["path"]]
    write_rows(manifest, rows, delimiter=";", lineterminator="\r\n", encoding="utf-8-sig")
    return typed


def test_a_partly_labelled_batch_imports_what_is_labelled_and_the_rest_comes_back(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    rows = list(
        csv.DictReader(
            open(fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "filled.csv"))
        )
    )
    for row in rows[3:]:
        row["label"] = ""
    label(project, monkeypatch, "import", str(write_rows(tmp_path / "part.csv", rows)))
    assert read_labels(project) == {r["path"]: truth[r["path"]] for r in rows[:3]}
    label(project, monkeypatch, "next")
    batch2 = [r["path"] for r in csv.DictReader(open(project / "labelling/parts/batch-002/manifest.csv"))]
    assert batch2[:3] == [r["path"] for r in rows[3:]] and len(batch2) == 6  # the rest first, then new picks
    # The rest of batch 1, labelled later in batch 1's own file, is accepted although batch 2 is out.
    label(
        project,
        monkeypatch,
        "import",
        str(fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "rest.csv")),
    )
    assert read_labels(project) == {r["path"]: truth[r["path"]] for r in rows}


def test_spreadsheet_saved_manifests_and_any_case_import(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    manifest = project / "labelling/parts/batch-001/manifest.csv"
    typed = type_into_manifest(manifest, truth, 6)
    saved = tmp_path / "saved.csv"
    shutil.copy(manifest, saved)
    assert saved.read_bytes().startswith(b"\xef\xbb\xbf") and b";" in saved.read_bytes()
    label(project, monkeypatch, "import", str(saved))
    assert read_labels(project) == typed  # stored in the project's spelling


@pytest.mark.parametrize(
    "content, suffix, expected",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ".csv", "not a text file; expected a filled-in manifest.csv"),
        (b'["0001.png", "0002.png"]', ".json", "expected a Label Studio export (JSON or JSON_MIN), a list of tasks"),
        (b'{"tasks": []}', ".json", "expected a Label Studio export (JSON or JSON_MIN), a list of tasks"),
        (b"image,class\n0001.png,bolt\n", ".csv", "not a batch manifest (no label, path column)"),
    ],
)
def test_a_file_of_another_kind_gets_one_line(tmp_path, monkeypatch, content, suffix, expected):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    wrong = tmp_path / f"export{suffix}"
    wrong.write_bytes(content)
    with pytest.raises(PipelineError) as caught:
        label(project, monkeypatch, "import", str(wrong))
    assert expected in str(caught.value) and str(wrong) in str(caught.value) and "\n" not in str(caught.value)
    assert read_labels(project) == {}


def json_min_export(tasks: list[dict], labels: dict[str, str], out: Path) -> Path:
    """Label Studio's JSON_MIN export: one flat object per task, the data fields at the top and the
    choice under the control's name; a skipped task has no `label`."""
    export = []
    for i, task in enumerate(tasks, start=1):
        item = {
            **task["data"],
            "id": 300 + i,
            "annotator": 1,
            "annotation_id": 400 + i,
            "created_at": "2026-12-02T10:00:00.000000Z",
            "updated_at": "2026-12-02T10:00:05.000000Z",
            "lead_time": 4.2,
        }
        if labels.get(task["data"]["path"]):
            item["label"] = labels[task["data"]["path"]]
        export.append(item)
    out.write_text(json.dumps(export, indent=2))
    return out


def label_studio_csv_export(tasks: list[dict], labels: list[str], out: Path) -> Path:
    """Label Studio's CSV export: the data fields and the annotation's as columns, in name order; one
    label per task ("" for a skipped one)."""
    columns = sorted(
        {"annotation_id", "annotator", "created_at", "id", "label", "lead_time", "updated_at", *tasks[0]["data"]}
    )
    rows = [
        {
            **task["data"],
            "id": 500 + i,
            "annotator": 1,
            "annotation_id": 600 + i,
            "lead_time": 3.1,
            "created_at": "2026-12-02T11:00:00.000000Z",
            "updated_at": "2026-12-02T11:00:03.000000Z",
            "label": labels[i - 1],
        }
        for i, task in enumerate(tasks, start=1)
    ]
    return write_rows(out, [{column: row.get(column, "") for column in columns} for row in rows])


def test_label_studio_json_min_and_csv_exports_of_one_project_for_every_batch(tmp_path, monkeypatch):
    """One Label Studio project for the whole labelling project: each export holds every batch's tasks so far;
    it imports what is new, skips what is there, and skipped tasks come back."""
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    tasks1 = json.loads((project / "labelling/parts/batch-001/tasks.json").read_text())
    skipped = tasks1[1]["data"]["path"]
    given = {t["data"]["path"]: truth[t["data"]["path"]] for t in tasks1 if t["data"]["path"] != skipped}
    label(project, monkeypatch, "import", str(json_min_export(tasks1, given, tmp_path / "min.json")))
    assert read_labels(project) == given

    label(project, monkeypatch, "next")
    tasks2 = json.loads((project / "labelling/parts/batch-002/tasks.json").read_text())
    assert tasks2[0]["data"]["path"] == skipped and tasks2[0]["data"]["order"] == 1  # the skipped one, first
    assert all(0 < t["predictions"][0]["score"] <= 1 for t in tasks2)  # the model's confidence
    # The project's export now holds batch 1's tasks (skipped one still unlabelled there) and batch 2's.
    later = {t["data"]["path"]: " " + truth[t["data"]["path"]].upper() + " " for t in tasks2}
    # The skipped image is in it twice: unlabelled as batch 1's task, labelled as batch 2's.
    labels = [given.get(t["data"]["path"], "") for t in tasks1] + [later[t["data"]["path"]] for t in tasks2]
    export = label_studio_csv_export(tasks1 + tasks2, labels, tmp_path / "project.csv")
    label(project, monkeypatch, "import", str(export))
    assert read_labels(project) == {**given, **{path: truth[path] for path in later}}


def test_next_imports_labels_typed_into_the_manifest_and_warns_about_a_misspelt_one(tmp_path, monkeypatch, caplog):
    project, truth = make_label_project(tmp_path)
    label(project, monkeypatch, "next")
    manifest = project / "labelling/parts/batch-001/manifest.csv"
    rows = list(csv.DictReader(open(manifest, newline="")))
    rows[0]["label"], rows[1]["label"] = truth[rows[0]["path"]], "washer"
    write_rows(manifest, rows, lineterminator="\n")
    typed = manifest.read_bytes()
    label(project, monkeypatch, "next")
    assert read_labels(project) == {rows[0]["path"]: truth[rows[0]["path"]]}
    assert manifest.read_bytes() == typed  # what the person typed stays where they typed it
    assert "'washer' is not a class of this project" in caplog.text
    batch2 = [r["path"] for r in csv.DictReader(open(project / "labelling/parts/batch-002/manifest.csv"))]
    assert batch2[:5] == [r["path"] for r in rows[1:]]  # the misspelt one comes back too


def dvc_label_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git copy of the repository with a declared labelling project and no labels yet."""
    copy_repo(tmp_path / "project")
    project, truth = make_label_project(tmp_path)
    assert not (project / "labels/parts.csv").exists()
    return project, truth


def repro(project: Path, *targets: str) -> subprocess.CompletedProcess:
    done = dvc(["repro", *targets], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_dvc_repro_keeps_labels_typed_into_the_manifest(tmp_path, monkeypatch):
    project, truth = dvc_label_project(tmp_path)
    repro(project, "label@parts")  # declared, no labels file yet: runs, batch 1
    manifest = project / "labelling/parts/batch-001/manifest.csv"
    typed = type_into_manifest(manifest, truth, 4)
    saved = manifest.read_bytes()
    status = dvc(["status", "label@parts"], project).stdout
    assert "modified" in status and "labelling/parts" in status, status  # DVC sees the edit, and reruns
    repro(project, "label@parts")
    assert read_labels(project) == typed  # imported, not overwritten
    assert manifest.read_bytes() == saved
    batch2 = [r["path"] for r in csv.DictReader(open(project / "labelling/parts/batch-002/manifest.csv"))]
    assert len(batch2) == 6 and not set(batch2) & set(typed)
    assert set(batch2[:2]) == {
        r["path"] for r in csv.DictReader(open(manifest, encoding="utf-8-sig"), delimiter=";")
    } - set(typed)
    assert "up to date" in dvc(["status", "label@parts"], project).stdout


@pytest.mark.slow
def test_dvc_repro_never_redraws_a_batch_that_is_out(tmp_path, monkeypatch):
    project, truth = dvc_label_project(tmp_path)
    repro(project, "label@parts")
    label(
        project,
        monkeypatch,
        "import",
        str(fill_manifest(project / "labelling/parts/batch-001/manifest.csv", truth, tmp_path / "b1.csv")),
    )
    repro(project, "label@parts")  # batch 2, picked by margin
    batch2 = project / "labelling/parts/batch-002"
    issued = {name: (batch2 / name).read_bytes() for name in ("manifest.csv", "tasks.json", "label.html")}
    export = label_studio_export(batch2 / "tasks.json", truth, tmp_path / "export.json")  # the person is at work
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"]["epochs"] += 2  # a model setting changes meanwhile
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = repro(project, "label@parts")
    assert "batch 2 is still out" in done.stdout + done.stderr
    assert {name: (batch2 / name).read_bytes() for name in issued} == issued
    assert not (project / "labelling/parts/batch-003").exists()
    label(project, monkeypatch, "import", str(export))  # the person's finished file: every label accepted
    assert len(read_labels(project)) == 12


def test_the_suggestion_model_trains_for_enough_steps_whatever_the_labels():
    from alstudy.labelling.rounds import suggestion_model
    from alstudy.params import ModelParams

    model = ModelParams(epochs=10, batch_size=32)
    assert suggestion_model(model, 500, 50).epochs == 250  # 2 steps an epoch
    assert suggestion_model(model, 500, 1000).epochs == 16  # 32 steps an epoch
    assert suggestion_model(model, 500, 5000).epochs == 10  # model.epochs is already more than enough
    assert suggestion_model(model, 0, 50).epochs == 10
    assert suggestion_model(model, 500, 50).batch_size == 32 and model.epochs == 10  # a copy


def test_images_still_out_are_carried_once_and_never_drawn_again(tmp_path, monkeypatch):
    """Batch 2 of a batch labelled in part: the images still out come first, once, and nothing else is
    drawn when every other image was issued (6 images, all in batch 1, one of them labelled)."""
    project, truth = make_label_project(tmp_path, per_class=2, batch_size=6)
    label(project, monkeypatch, "next")
    first = list(csv.DictReader(open(project / "labelling/parts/batch-001/manifest.csv", newline="")))
    assert len(first) == 6
    one = write_rows(tmp_path / "one.csv", [{**first[0], "label": truth[first[0]["path"]]}])
    label(project, monkeypatch, "import", str(one))
    label(project, monkeypatch, "next")
    second = [r["path"] for r in csv.DictReader(open(project / "labelling/parts/batch-002/manifest.csv"))]
    assert second == [r["path"] for r in first[1:]]  # the five still out, once each, and no image twice


def test_a_project_naming_a_recipe_trains_its_suggestions_with_it(tmp_path, monkeypatch):
    project, truth = make_label_project(tmp_path)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["recipes"]["small_resnet"] = {"network": "resnet", "network_options": {"widths": [4, 8]}, "epochs": 2}
    params["label"]["projects"]["parts"]["recipe"] = "small_resnet"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    label(project, monkeypatch, "next")
    batch1 = project / "labelling/parts/batch-001"
    label(project, monkeypatch, "import", str(fill_manifest(batch1 / "manifest.csv", truth, tmp_path / "b1.csv")))
    label(project, monkeypatch, "next")  # the first batch with suggestions: a model trained under the recipe

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    (run,) = mlflow.search_runs(
        experiment_names=["deep-active-learning"], output_format="list", filter_string="tags.kind = 'labelling'"
    )
    assert run.data.tags["recipe"] == "small_resnet"
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    loaded = mlflow.keras.load_model(f"models:/{model.model_id}")
    assert loaded.layers[0].name == "resnet6"  # the recipe's network: a stem and one block per stage of two
