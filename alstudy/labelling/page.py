"""The batch's labelling page: one HTML file a person labels on, at a keystroke, with nothing to install.

It opens from disk (thumbnails embedded as base64 PNG, no server, no network). Each image shows the
model's suggestion, pre-selected, with its confidence; a number key or a click on a class sets the
label, Enter accepts the suggestion, `s` skips (the image comes back in a later batch), the arrow
keys move. Every change is kept in the browser's storage for this batch, so a reload or a closed tab
loses nothing; the save button writes the labels as a manifest CSV, the file `alstudy label import`
reads. Only images a person labelled get a label in it: a suggestion nobody confirmed stays empty.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from pathlib import Path

from PIL import Image

from alstudy.fileio import atomic_path
from alstudy.labelling.batches import MANIFEST_HEADER, BatchRow

THUMBNAIL = 128
DIGIT_KEYS = "1234567890"  # the first ten classes; further ones by click

STYLE = """
body { font-family: sans-serif; margin: 1.2em; }
header { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ddd; z-index: 1; }
.classes button { margin: 2px; padding: 4px 8px; }
.classes kbd, .help kbd { border: 1px solid #999; border-radius: 3px; padding: 0 3px; font-size: 11px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; margin-top: .8em; }
figure { margin: 0; width: SIZEpx; border: 2px solid #ccc; padding: 5px; cursor: pointer; }
figure.current { border-color: #1565c0; box-shadow: 0 0 0 2px #90caf9; }
figure.labelled { background: #e8f5e9; }
figure.skipped { background: #fff3e0; }
img { width: SIZEpx; height: SIZEpx; object-fit: contain; background: #f4f4f4; image-rendering: pixelated; }
figcaption { font-size: 12px; line-height: 1.4; overflow-wrap: anywhere; }
.label { font-weight: bold; }
#saved { color: #2e7d32; margin-left: 1em; }
""".replace("SIZE", str(THUMBNAIL))

SCRIPT = r"""
const batch = JSON.parse(document.getElementById("batch").textContent);
const storeKey = "alstudy-labels:" + batch.key;
const rows = batch.rows;
let state = {};        // row_id -> {label: "<class>"} or {skipped: true}
let current = 0;
try { state = JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch (e) { state = {}; }
// Back where the person left off: the first image without a label or a skip.
current = Math.max(0, rows.findIndex(row => !state[row.row_id]));

function keep() { localStorage.setItem(storeKey, JSON.stringify(state)); }
function card(i) { return document.getElementById("row-" + rows[i].row_id); }

function show() {
  let done = 0, skipped = 0;
  rows.forEach((row, i) => {
    const s = state[row.row_id] || {}, figure = card(i);
    if (s.label) done++;
    if (s.skipped) skipped++;
    figure.classList.toggle("labelled", !!s.label);
    figure.classList.toggle("skipped", !!s.skipped);
    figure.classList.toggle("current", i === current);
    figure.querySelector(".label").textContent =
      s.label ? "label: " + s.label : s.skipped ? "skipped" :
      row.suggested_label ? "suggested: " + row.suggested_label + " (Enter)" : "not labelled";
  });
  document.getElementById("done").textContent = done;
  document.getElementById("skipped").textContent = skipped;
  document.getElementById("left").textContent = rows.length - done - skipped;
  document.body.dataset.done = String(done);
  document.body.dataset.skipped = String(skipped);
  document.body.dataset.current = String(rows[current].row_id);
}

function move(step) {
  current = Math.max(0, Math.min(rows.length - 1, current + step));
  show();
  card(current).scrollIntoView({block: "nearest"});
}

function setLabel(name) { state[rows[current].row_id] = {label: name}; keep(); move(1); }
function skip() { state[rows[current].row_id] = {skipped: true}; keep(); move(1); }
function clear() { delete state[rows[current].row_id]; keep(); show(); }

function csvField(value) {
  let text = String(value);
  // A cell a spreadsheet would run as a formula gets a leading ' (OWASP); import strips it again.
  if (/^[=+\-@\t\r]/.test(text) && !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) text = "'" + text;
  return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function save() {
  const lines = [batch.header.join(",")];
  for (const row of rows) {
    const s = state[row.row_id] || {};
    const values = {...row, label: s.label || ""};
    lines.push(batch.header.map(column => csvField(values[column] ?? "")).join(","));
  }
  const blob = new Blob([lines.join("\n") + "\n"], {type: "text/csv"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = batch.file;
  document.body.appendChild(link);
  link.click();
  link.remove();
  document.getElementById("saved").textContent =
    "saved " + link.download + " (" + document.getElementById("done").textContent + " labels): " + batch.importHint;
}

document.addEventListener("keydown", event => {
  if (event.ctrlKey || event.metaKey || event.altKey) {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
    return;
  }
  const digit = batch.digitKeys.indexOf(event.key);
  if (digit >= 0 && digit < batch.classes.length) { setLabel(batch.classes[digit]); }
  else if (event.key === "Enter") { if (rows[current].suggested_label) setLabel(rows[current].suggested_label); }
  else if (event.key === "s" || event.key === "S") { skip(); }
  else if (event.key === "ArrowRight" || event.key === "ArrowDown" || event.key === "j") { move(1); }
  else if (event.key === "ArrowLeft" || event.key === "ArrowUp" || event.key === "k") { move(-1); }
  else if (event.key === "Backspace" || event.key === "Delete") { clear(); }
  else { return; }
  event.preventDefault();
});
rows.forEach((row, i) => card(i).addEventListener("click", () => { current = i; show(); }));
document.querySelectorAll(".classes button").forEach(button =>
  button.addEventListener("click", () => setLabel(button.dataset.class)));
document.getElementById("skip").addEventListener("click", skip);
document.getElementById("save").addEventListener("click", save);
window.addEventListener("load", () => {
  const rendered = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.rendered = String(rendered);
});
show();
"""


def thumbnail_data_uri(path: Path) -> str:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def batch_key(project: str, number: int, rows: list[BatchRow]) -> str:
    """Names this batch's saved state in the browser: the project, the batch and its images, so that
    another project's batch 3 (or a batch drawn afresh) never picks up these labels."""
    digest = hashlib.sha256("\n".join(row.path for row in rows).encode()).hexdigest()[:12]
    return f"{project}/batch-{number:03d}/{digest}"


def _class_buttons(classes: list[str]) -> str:
    buttons = []
    for i, name in enumerate(classes):
        key = f"<kbd>{DIGIT_KEYS[i]}</kbd> " if i < len(DIGIT_KEYS) else ""
        buttons.append(f'<button type="button" data-class="{html.escape(name)}">{key}{html.escape(name)}</button>')
    return "".join(buttons)


def _figure(row: BatchRow, image_root: Path) -> str:
    suggestion = (
        f"suggested {html.escape(row.suggested_label)}, confidence {row.confidence:.0%}<br>"
        if row.suggested_label
        else ""
    )
    return (
        f'<figure id="row-{row.row_id}">'
        f'<img alt="row {row.row_id}" src="{thumbnail_data_uri(image_root / row.path)}">'
        f'<figcaption>row {row.row_id}: <span class="label"></span><br>{suggestion}'
        f"{html.escape(row.path)}</figcaption></figure>"
    )


def write_label_page(
    out: Path,
    rows: list[BatchRow],
    image_root: Path,
    classes: list[str],
    *,
    project: str,
    number: int,
    title: str,
    intro: str,
    stopping: str = "",
) -> None:
    """The page for batch `number` of `project`, written atomically to `out`."""
    data = {
        "key": batch_key(project, number, rows),
        "classes": list(classes),
        "digitKeys": DIGIT_KEYS,
        "header": MANIFEST_HEADER,
        "file": f"{project}-batch-{number:03d}-labels.csv",
        "importHint": f"alstudy label import --project {project} <that file>",
        "rows": [
            {
                "row_id": row.row_id,
                "path": row.path,
                "suggested_label": row.suggested_label,
                "confidence": f"{row.confidence:.6f}",
                "score": f"{row.score:.6f}",
            }
            for row in rows
        ],
    }
    keys = "1-9, 0" if len(classes) > 9 else f"1-{len(classes)}"
    stopping_line = f'<p id="stopping">{html.escape(stopping, quote=False)}</p>' if stopping else ""
    embedded = json.dumps(data).replace("</", "<\\/")  # no "</script>" inside the script element
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body data-images="{len(rows)}" data-rendered="0" data-done="0" data-skipped="0">
<header>
<h1>{html.escape(title)}</h1>
<p>{html.escape(intro)}</p>
{stopping_line}
<div class="classes">{_class_buttons(classes)}</div>
<p class="help"><kbd>{keys}</kbd> or a click: the class · <kbd>Enter</kbd> accept the suggestion ·
<kbd>s</kbd> skip (it comes back later) · <kbd>&larr;</kbd> <kbd>&rarr;</kbd> move ·
<kbd>Backspace</kbd> clear · <button type="button" id="skip">skip</button>
<button type="button" id="save">Save labels (CSV)</button> <kbd>Ctrl</kbd>+<kbd>S</kbd></p>
<p><b id="done">0</b> labelled · <span id="skipped">0</span> skipped · <span id="left">{len(rows)}</span> to go
<span id="saved"></span></p>
</header>
<div class="grid">
{"".join(_figure(row, image_root) for row in rows)}
</div>
<script type="application/json" id="batch">{embedded}</script>
<script>{SCRIPT}</script>
</body></html>
"""
    with atomic_path(out) as tmp:
        tmp.write_text(page)
