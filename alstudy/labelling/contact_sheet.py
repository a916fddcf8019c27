"""An HTML contact sheet of a query batch: thumbnails, row ids and suggested labels, one file.

Thumbnails are embedded (base64 PNG), so the page opens from disk in any browser, moved
or mailed as it is. A small script counts the images the browser has rendered into
`data-rendered` on <body>, which the headless-browser test reads.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from alstudy.fileio import atomic_path
from alstudy.labelling.batches import BatchRow

THUMBNAIL = 128

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; width: {size}px; border: 1px solid #ccc; padding: 6px; }}
img {{ width: {size}px; height: {size}px; object-fit: contain; background: #f4f4f4; image-rendering: pixelated; }}
figcaption {{ font-size: 12px; line-height: 1.4; word-break: break-all; }}
</style></head>
<body data-images="{count}" data-rendered="0">
<h1>{title}</h1>
<p>{intro}</p>
<div class="grid">
{figures}
</div>
<script>
function countRendered() {{
  const done = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.rendered = String(done);
}}
window.addEventListener("load", countRendered);
</script>
</body></html>
"""


def thumbnail_data_uri(path: Path) -> str:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_contact_sheet(out: Path, rows: list[BatchRow], image_root: Path, title: str, intro: str) -> None:
    figures = []
    for row in rows:
        suggestion = f"suggested: <b>{html.escape(row.suggested_label)}</b><br>" if row.suggested_label else ""
        figures.append(
            f'<figure id="row-{row.row_id}">'
            f'<img alt="row {row.row_id}" src="{thumbnail_data_uri(image_root / row.path)}">'
            f"<figcaption>row {row.row_id}<br>{suggestion}score {row.score:.4f}<br>{html.escape(row.path)}</figcaption>"
            "</figure>"
        )
    page = PAGE.format(
        title=html.escape(title), intro=html.escape(intro), size=THUMBNAIL, count=len(rows), figures="\n".join(figures)
    )
    with atomic_path(out) as tmp:
        tmp.write_text(page)
