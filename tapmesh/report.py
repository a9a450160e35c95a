"""A self-contained HTML report of a tapmesh run: every figure embedded, the numbers in tables."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from tapmesh.circuits.io import atomic_write_text

SECTIONS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    # (id, title, summary json files, figures)
    ("layout", "Layout", ("layout.json",), ("chip.png",)),
    ("model", "Model: engine, SAX and the layout's own netlist", ("simulation.json", "extraction.json"), ("simulation.png",)),
    ("calibration", "Calibration of the as-built chip", ("fabrication.json", "calibration_summary.json"), ("calibration_residuals.png", "calibration_fits.png")),
    ("training", "Training in situ next to the digital twin", ("training.json",), ("training_curves.png", "decision_boundary.png")),
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.missing { color: #a33; }
"""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return _table(value)
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
            rows = "".join("<tr>" + "".join(f"<td>{_format(v.get(k, ''))}</td>" for k in keys) + "</tr>" for v in value)
            return f"<table><tr>{head}</tr>{rows}</table>"
        if len(value) > 12:
            return html.escape(f"[{len(value)} values]")
        return html.escape(", ".join(_format(v) for v in value))
    return html.escape(str(value))


def _table(summary: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{_format(value)}</td></tr>"
        for key, value in summary.items()
        if key not in ("files", "history")
    )
    return f"<table>{rows}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.name)}</figcaption></figure>'


def build(out: Path, title: str = "tapmesh report") -> tuple[Path, dict[str, Any]]:
    """Write ``out/report.html`` from the summaries and figures found in ``out``; returns its path and which
    sections were complete."""
    out = Path(out)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    status: dict[str, Any] = {}
    for section, heading, summaries, figures in SECTIONS:
        parts.append(f'<h2 id="{section}">{html.escape(heading)}</h2>')
        found = 0
        for name in summaries:
            path = out / name
            if path.exists():
                data = json.loads(path.read_text())
                parts.append(f"<h3>{html.escape(name)}</h3>" + _table(data.get("summary", data) if isinstance(data, dict) else {"value": data}))
                found += 1
        for name in figures:
            if (out / name).exists():
                parts.append(_image(out / name))
                found += 1
        if not found:
            parts.append(f'<p class="missing">No results for this stage in {html.escape(str(out))}.</p>')
        status[section] = found > 0
    parts.append("</body></html>")
    path = atomic_write_text(out / "report.html", "\n".join(parts))
    return path, status
