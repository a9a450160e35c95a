"""A self-contained HTML report of a tapmesh run (``report.html``): a summary at the top (chip, fidelity,
accuracy, times, version, command, date), then one section per stage with a sentence on what was done,
a table of its numbers with units, and its figures embedded as PNG. Every number comes from the JSON
files the stages wrote, so the report and the files agree."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any, Callable

from tapmesh.circuits.io import atomic_write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1040px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; max-width: 100%; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f2f2f2; font-weight: 600; } img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
.summary th { width: 14em; } .missing { color: #a33; } code { overflow-wrap: anywhere; }
"""

# A row: (label, unit, getter, formatter). Getters read a stage's JSON; a row whose value is missing is left out.
Row = tuple[str, str, Callable[[dict], Any], Callable[[Any], str]]


def _get(*keys: str) -> Callable[[dict], Any]:
    def get(data: dict) -> Any:
        for key in keys:
            if not isinstance(data, dict) or key not in data:
                return None
            data = data[key]
        return data

    return get


def _fixed(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:,.{digits}f}"


def _sci(v: float) -> str:
    return f"{v:.1e}"


def _pct(digits: int = 1) -> Callable[[Any], str]:
    return lambda v: f"{100 * v:.{digits}f}"


def _plain(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) if v else "none"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


TABLES: dict[str, list[tuple[str, list[Row]]]] = {
    "layout": [("layout.json", [
        ("chip", "", _get("summary", "chip"), _plain),
        ("modes", "", _get("summary", "n"), _plain),
        ("mesh", "", _get("summary", "kind"), _plain),
        ("heaters", "", _get("summary", "n_heaters"), _plain),
        ("tap gratings", "", _get("summary", "n_taps"), _plain),
        ("bond pads", "", _get("summary", "n_pads"), _plain),
        ("GDS size", "MB", lambda d: None if _get("summary", "gds_bytes")(d) is None else d["summary"]["gds_bytes"] / 1e6, _fixed(2)),
        ("layout time", "s", _get("summary", "layout_seconds"), _fixed(1)),
    ])],
    "model": [("simulation.json", [
        ("mesh simulated", "", lambda d: f"{d['n']}-mode {d['kind']}, {d['n_mzis']} MZIs, {d['n_heaters']} heaters", _plain),
        ("insertion loss at 1.55 µm", "dB", _get("insertion_loss_db"), _fixed(3)),
        ("worst insertion loss over the sweep", "dB", _get("worst_insertion_loss_db"), _fixed(3)),
        ("wavelength sweep width", "µm", _get("wl_span_um"), _fixed(3)),
        ("engine vs SAX, max |ΔUᵢⱼ|", "", _get("engine_vs_sax_max_error"), _sci),
        ("SAX reference time", "s", _get("sax_seconds"), _fixed(1)),
        ("Clements round trip, max |ΔUᵢⱼ|", "", _get("decomposition_max_error"), _sci),
    ]), ("extraction.json", [
        ("layout netlist vs engine, max |ΔUᵢⱼ| / max |Uᵢⱼ|", "", _get("matrix_max_error"), _sci),
        ("… magnitudes only", "", _get("magnitude_max_error"), _sci),
        ("mean fiber-to-fiber loss", "dB", _get("mean_fiber_to_fiber_loss_db"), _fixed(2)),
        ("extraction time", "s", _get("extract_seconds"), _fixed(1)),
    ])],
    "calibration": [("fabrication.json", [
        ("fabrication seed", "", _get("seed"), _plain),
        ("coupler error spread σδ", "rad", _get("delta_sigma"), _fixed(3)),
        ("heater efficiency α (nominal)", "rad/V²", _get("alpha"), _fixed(2)),
        ("α spread (relative)", "%", _get("alpha_spread"), _pct(1)),
        ("thermal crosstalk (neighbours)", "%", _get("crosstalk"), _pct(1)),
        ("tap fraction", "%", _get("tap_fraction"), _pct(1)),
        ("tap fraction spread (relative)", "%", _get("tap_spread"), _pct(0)),
        ("camera noise", "", _get("noise"), _plain),
    ]), ("calibration_summary.json", [
        ("camera frames", "", _get("n_measurements"), _plain),
        ("frames per MZI", "", _get("measurements_per_mzi"), _fixed(1)),
        ("dead heaters", "", _get("dead_heaters"), _plain),
        ("dark taps", "", _get("dark_taps"), _plain),
        ("fidelity uncorrected (mean)", "", _get("mean_fidelity_uncorrected"), _fixed(4)),
        ("fidelity corrected (mean)", "", _get("mean_fidelity_corrected"), _fixed(4)),
        ("φ0 error, RMS vs hidden truth", "rad", _get("phase_offset_rms_error"), _fixed(4)),
        ("δ error, RMS vs hidden truth", "rad", _get("delta_rms_error"), _fixed(4)),
        ("α error, RMS vs hidden truth", "%", _get("alpha_rms_relative_error"), _pct(2)),
        ("RMS residual, progressive stages", "t̄·P units", _get("rms_residual_stages"), _fixed(4)),
        ("RMS residual, sweeps", "P·t units", _get("rms_residual_sweeps"), _fixed(4)),
        ("RMS residual, global refinement", "t̄·P/n units", _get("rms_residual_refine"), _fixed(4)),
        ("calibration time (simulated chip)", "s", _get("calibration_seconds"), _fixed(1)),
        ("bench time", "s", _get("bench_seconds"), _fixed(0)),
    ])],
    "training": [("training.json", [
        ("task", "", _get("task"), _plain),
        ("network", "", lambda d: f"{d['layers']} layers, preset {d.get('preset', '—')}", _plain),
        ("gradient method on the chip", "", _get("method"), _plain),
        ("epochs", "", _get("epochs"), _plain),
        ("training / test samples", "", lambda d: f"{d['n_train']:,} / {d['n_test']:,}", _plain),
        ("test accuracy on the chip", "%", _get("chip", "test_accuracy"), _pct(1)),
        ("… epoch kept (best training loss)", "", _get("chip", "epoch_kept"), _plain),
        ("… best test accuracy (epoch)", "%", lambda d: _best(d, "chip"), _plain),
        ("… final epoch's test accuracy", "%", _get("chip", "final_test_accuracy"), _pct(1)),
        ("test accuracy on the digital twin", "%", _get("twin", "test_accuracy"), _pct(1)),
        ("… best test accuracy (epoch)", "%", lambda d: _best(d, "twin"), _plain),
        ("chip passes for training", "", _get("chip", "chip_passes"), _plain),
        ("training time on the chip / twin", "s", lambda d: f"{d['chip']['seconds']:.1f} / {d['twin']['seconds']:.1f}", _plain),
    ])],
}


def _best(data: dict, key: str) -> str | None:
    run = data.get(key)
    if not run or "best_test_accuracy" not in run:
        return None
    return f"{100 * run['best_test_accuracy']:.1f} ({run.get('best_test_epoch', '?')})"


SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("layout", "Layout", (
        ("chip.png", "The chip as drawn (pcells.plot_layout): the whole chip, and a zoom on the mesh with its "
                     "grating taps, heater tracks and pads; the chip map's labels name what each pad drives."),
    )),
    ("model", "Model: engine, SAX and the layout's own netlist", (
        ("simulation.png", "Left: the power transfer |Uᵢⱼ|² of a random as-built mesh at 1.55 µm (JAX engine). "
                           "Right: the power from input 0 to every output over the wavelength sweep."),
    )),
    ("calibration", "Calibration of the as-built chip", (
        ("calibration_residuals.png", "Residuals of every fit, each divided by the unit named under its histogram "
                                      "(mean tap fraction t̄ times the light reaching a tap in that step: P per lit MZI "
                                      "in the stages, P/n per mode in the refinement, which therefore reads about n× "
                                      "larger for the same camera noise); right: the fitted coupler errors δ with ±1σ."),
        ("calibration_fits.png", "Heater sweeps: the camera's tap readings (points) against the heater's V², and the "
                                 "fitted fringe (smooth curve); γ heaters are read as output phase."),
    )),
    ("training", "Training in situ next to the digital twin", (
        ("training_curves.png", "Loss and accuracy per epoch (solid: training set, dashed: test set), and test "
                                "accuracy against the chip passes spent on training; ★ marks the epoch kept."),
        ("decision_boundary.png", "The network's decision regions on the chip over the feature square, with the "
                                  "test points; the accuracy in the title is the one recorded in training.json."),
    )),
)


def _load(out: Path, name: str) -> dict | None:
    path = out / name
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rows(rows: list[Row], data: dict) -> str:
    cells = []
    for label, unit, get, fmt in rows:
        try:
            value = get(data)
        except (KeyError, TypeError):
            value = None
        if value is None:
            continue
        text = fmt(value)
        head = f"{html.escape(label)}" + (f" ({html.escape(unit)})" if unit else "")
        numeric = text[:1].isdigit() or text[:1] == "-"
        cells.append(f"<tr><th>{head}</th><td{' class=num' if numeric else ''}>{html.escape(text)}</td></tr>")
    return f"<table>{''.join(cells)}</table>" if cells else ""


def _fidelity_table(summary: dict) -> str:
    rows = summary.get("fidelity") or []
    if not rows:
        return ""
    head = "<tr><th>Haar-random target</th><th>model, uncorrected</th><th>model, corrected</th><th>chip, uncorrected</th><th>chip, corrected</th></tr>"
    body = "".join(
        "<tr>" + f"<td class=num>{r.get('target', i)}</td>" + "".join(
            f"<td class=num>{r[k]:.4f}</td>" if isinstance(r.get(k), (int, float)) else "<td>—</td>"
            for k in ("model_uncorrected", "model_corrected", "chip_uncorrected", "chip_corrected")
        ) + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<p>Fidelity |Tr(U†V)|² / (Tr(U†U)·Tr(V†V)) per target (chip: on the hidden truth of the simulated chip):</p><table>{head}{body}</table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _sentence(section: str, d: dict[str, dict | None]) -> str:
    """What was done in ``section``, in one sentence, from the stage files."""
    if section == "layout" and d["layout.json"]:
        s = d["layout.json"].get("summary", {})
        return (f"Laid out {s.get('chip', 'the chip')}: a {s.get('n')}-mode {s.get('kind')} mesh with a grating tap on each "
                f"of its {s.get('n_heaters')} heated segments, fiber-array I/O and one bond pad per heater.")
    if section == "model" and (d["simulation.json"] or d["extraction.json"]):
        return ("Simulated a random as-built mesh in the JAX engine against the SAX reference circuit, and checked the "
                "SAX model extracted from the layout's own netlist against the engine, with the fiber routes' per-port "
                "phases and losses folded out.")
    if section == "calibration" and d["calibration_summary.json"]:
        c = d["calibration_summary.json"]
        return (f"Calibrated the chip through the Chip protocol only ({c.get('n_measurements', 0):,} camera frames): "
                "phase–voltage curves, coupler errors and thermal crosstalk column by column, then a global "
                "refinement; targets are then set with error correction.")
    if section == "training" and d["training.json"]:
        t = d["training.json"]
        return (f"Trained a {t.get('layers')}-layer network on {t.get('task')} with {t.get('method')} on the calibrated chip "
                "(the chip measures; the calibration maps phases to voltages), and the same network by autodiff on the "
                "digital twin, from the same start.")
    return ""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tapmesh")
    except PackageNotFoundError:
        return "not installed"


def summary_rows(out: Path, command: str | None = None) -> list[tuple[str, str]]:
    """The report's summary: (label, text) pairs from the files in ``out``."""
    lay, fab = _load(out, "layout.json"), _load(out, "fabrication.json")
    cal, tr, flow = _load(out, "calibration_summary.json"), _load(out, "training.json"), _load(out, "flow.json")
    rows = []
    if lay or fab:
        chip = (lay or {}).get("summary", {}).get("chip") or f"{fab['n']}-mode {fab['kind']}"
        n, kind = (lay or fab).get("n"), (lay or fab).get("kind")
        made = f"; simulated as built with fabrication seed {fab['seed']}, {fab.get('noise', '?')} camera noise" if fab else ""
        rows.append(("chip", f"{chip} ({n}-mode {kind} mesh){made}"))
    if cal:
        rows.append(("fidelity before → after correction",
                     f"{cal['mean_fidelity_uncorrected']:.4f} → {cal['mean_fidelity_corrected']:.4f} (mean of {len(cal.get('fidelity', []))} Haar-random targets)"))
    if tr:
        rows.append(("test accuracy, chip vs twin",
                     f"{100 * tr['chip']['test_accuracy']:.1f} % in situ ({tr['method']}) vs {100 * tr['twin']['test_accuracy']:.1f} % on the digital twin ({tr['task']})"))
    if cal:
        bench = cal.get("bench_seconds")
        rows.append(("bench time", f"{bench:.0f} s" if bench is not None else
                     f"not known (a simulated chip: {cal.get('n_measurements', 0):,} camera frames, {cal.get('calibration_seconds', 0):.1f} s of computing)"))
    if flow:
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in flow.get("stage_seconds", {}).items())
        rows.append(("flow time", f"{flow.get('seconds', 0):.1f} s before the report ({stages})"))
    rows.append(("tapmesh version", _version()))
    rows.append(("command", command or (flow or {}).get("command") or "tapmesh report"))
    rows.append(("date", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    return rows


def build(out: Path, title: str = "tapmesh report", command: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Write ``out/report.html`` from the summaries and figures found in ``out``; returns its path and which
    sections had results. ``command``: the command line to print in the summary."""
    out = Path(out)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    rows = summary_rows(out, command)
    parts.append('<table class="summary" id="summary">' + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v) if k != 'command' else '<code>' + html.escape(v) + '</code>'}</td></tr>"
        for k, v in rows) + "</table>")
    status: dict[str, Any] = {}
    for section, heading, figures in SECTIONS:
        parts.append(f'<h2 id="{section}">{html.escape(heading)}</h2>')
        files = {name: _load(out, name) for name, _ in TABLES[section]}
        found = sum(v is not None for v in files.values())
        sentence = _sentence(section, files)
        if sentence:
            parts.append(f"<p>{html.escape(sentence)}</p>")
        for name, table_rows in TABLES[section]:
            if files[name] is not None:
                parts.append(_rows(table_rows, files[name]))
        if section == "calibration" and files["calibration_summary.json"]:
            parts.append(_fidelity_table(files["calibration_summary.json"]))
        for name, caption in figures:
            if (out / name).exists():
                parts.append(_image(out / name, caption))
                found += 1
        if not found:
            parts.append(f'<p class="missing">No results for this stage in {html.escape(str(out))}.</p>')
        status[section] = found > 0
    parts.append("</body></html>")
    path = atomic_write_text(out / "report.html", "\n".join(parts))
    return path, status
