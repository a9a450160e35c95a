"""DRC against a process's rules: the deck as data, run with ``klayout.db`` or as a KLayout batch script.

:func:`deck` turns a :class:`~tapmesh.pcells.process.ProcessRules` into checks (width, space, metal-over-metal
overlap at contacts, silicon outside the floorplan); for ubcpdk these are the checks of the public SiEPIC
EBeam deck (``SiEPIC_EBeam_DRC.lydrc``) with its names, angle limits and 1 nm tolerance. :func:`run_deck` runs
them with ``klayout.db`` (hierarchical); :func:`write_deck` writes the same checks as a KLayout DRC script and
:func:`run_klayout` runs a script — ours or the foundry's own, see :func:`batch_foundry_deck` — with the
``klayout`` binary where it is installed. See docs/pcells.md, "Foundry PDKs".
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gdsfactory as gf
import klayout.db as kdb

from .process import ProcessRules, get_process

CONTEXT_CELL = "$$$CONTEXT_INFO$$$"


@dataclass(frozen=True)
class Check:
    """One DRC check. ``kind``: ``width`` / ``space`` (of ``layer``, < ``value`` µm is a violation),
    ``overlap`` (``layer`` over ``other`` by < ``value``), ``outside`` (``layer`` shapes outside ``other``).
    ``waive_cells``: cell-name patterns (the foundry's fixed cells) whose shapes the check does not see."""

    name: str
    kind: str
    layer: object
    value: float = 0.0
    other: object = None
    angle_limit: float | None = None
    message: str = ""
    waive_cells: tuple = ()


# Deck details beyond width/space numbers: names, angle limits and tolerance as the foundry's deck writes them.
_DECK_STYLE = {
    "ubcpdk": {
        "tol": 1e-3,
        "names": {"WG": "Si", "M1_HEATER": "M1", "M2_ROUTER": "M2", "PAD_OPEN": "MLOpen"},
        "width_angle": {"WG": 80.0, "M1_HEATER": 70.0, "M2_ROUTER": 70.0},
        "space_angle": {"WG": 80.0},
        "outside_name": "Boundary",
    },
    # cspdk ships no deck: the EBeam deck's convention for curved silicon (edges meeting at > 80° are not
    # measured against each other) is assumed, so the tips of its own elliptical grating teeth are not flagged.
    # Its own elliptical grating's outer teeth end in 55 nm tips, below the assumed 0.2 µm: the foundry's fixed
    # cell is waived from the width/space checks (the floorplan check still sees it).
    "cspdk": {"width_angle": {"WG": 80.0}, "space_angle": {"WG": 80.0},
              "waive_cells": ("grating_coupler_elliptical*",)},
}


def deck(process: str | ProcessRules) -> tuple[Check, ...]:
    """The checks of ``process``: width and space of every layer rule, the router-over-heater overlap at
    overlap contacts, and the waveguide layer outside the floorplan."""
    rules = get_process(process)
    style = _DECK_STYLE.get(rules.name, {})
    tol = style.get("tol", 0.0)
    names = style.get("names", {})
    waive = tuple(style.get("waive_cells", ()))
    checks = []
    for r in rules.layer_rules:
        nm = names.get(r.layer, str(r.layer))
        checks.append(Check(f"{nm}_width", "width", r.layer, r.min_width - tol,
                            angle_limit=style.get("width_angle", {}).get(r.layer), waive_cells=waive,
                            message=f"{nm} minimum feature size violation; min {r.min_width} µm"))
        checks.append(Check(f"{nm}_space", "space", r.layer, r.min_space - tol,
                            angle_limit=style.get("space_angle", {}).get(r.layer), waive_cells=waive,
                            message=f"{nm} minimum space violation; min {r.min_space} µm"))
    if rules.contact == "overlap" and rules.contact_overlap > 0 and rules.heater is not None:
        a, b = names.get(rules.routers[0], rules.routers[0]), names.get(rules.heater, rules.heater)
        checks.append(Check(f"{a}_{b}_overlap", "overlap", rules.routers[0], rules.contact_overlap - tol,
                            other=rules.heater, message=f"{a} minimum overlap with {b}; min {rules.contact_overlap} µm"))
    if rules.floorplan is not None:
        checks.append(Check(style.get("outside_name", "floorplan"), "outside", rules.waveguide, other=rules.floorplan,
                            message="devices are out of boundary"))
    return tuple(checks)


def _region(component: gf.Component, layer, dss, waive_cells: tuple = ()) -> kdb.Region:
    ly = component.kcl.layout
    it = ly.begin_shapes(component.kdb_cell.cell_index(), int(gf.get_layer(layer)))
    for pattern in waive_cells:
        it.unselect_cells(pattern)
    return kdb.Region(it, dss)


def run_deck(component: gf.Component, checks: tuple[Check, ...] | str | ProcessRules) -> dict[str, int]:
    """Violations per check name, with ``klayout.db`` in hierarchical mode (0 everywhere: clean).

    ``checks`` is a deck (:func:`deck`) or a process (name or rules) whose deck to run.
    """
    if not (isinstance(checks, tuple) and all(isinstance(c, Check) for c in checks)):
        checks = deck(checks)
    dbu = component.kcl.layout.dbu
    dss = kdb.DeepShapeStore()
    cache: dict = {}

    def reg(layer, waive=()):
        key = (int(gf.get_layer(layer)), waive)
        if key not in cache:
            cache[key] = _region(component, layer, dss, waive)
        return cache[key]

    out = {}
    for ch in checks:
        d = round(ch.value / dbu)
        a = reg(ch.layer, ch.waive_cells)
        if ch.kind == "width":
            ang = 90.0 if ch.angle_limit is None else ch.angle_limit
            n = a.width_check(d, False, kdb.Metrics.Euclidian, ang).count()
        elif ch.kind == "space":
            ang = 90.0 if ch.angle_limit is None else ch.angle_limit
            n = a.space_check(d, False, kdb.Metrics.Euclidian, ang).count()
        elif ch.kind == "overlap":
            n = a.overlap_check(reg(ch.other), d).count()
        elif ch.kind == "outside":
            n = a.outside(reg(ch.other)).count()
        else:
            raise ValueError(f"unknown check kind {ch.kind!r}")
        out[ch.name] = out.get(ch.name, 0) + n
    return out


def write_deck(checks: tuple[Check, ...] | str | ProcessRules, path=None, title: str = "tapmesh") -> str:
    """The checks as a KLayout DRC script for batch mode (``-rd input=… -rd report=…``); written to ``path``
    when given. Layer numbers come from the active PDK."""
    if not (isinstance(checks, tuple) and all(isinstance(c, Check) for c in checks)):
        checks = deck(checks)
    layout = gf.kcl.layout
    lines = [f"# {title} DRC deck, generated by tapmesh.pcells.foundry_drc.write_deck", "source($input)",
             f'report("{title}", $report)', "deep"]
    var = {}
    sources = {(): "source"}
    for ch in checks:
        if ch.waive_cells not in sources:
            sources[ch.waive_cells] = f"src{len(sources)}"
            sel = ", ".join(f'"-{p}"' for p in ch.waive_cells)
            lines.append(f"{sources[ch.waive_cells]} = source.select({sel})")
        for layer, waive in ((ch.layer, ch.waive_cells), (ch.other, ())):
            if layer is None or (layer, waive) in var:
                continue
            info = layout.get_info(int(gf.get_layer(layer)))
            var[(layer, waive)] = f"l{len(var)}"
            lines.append(f"{var[(layer, waive)]} = {sources[waive]}.input({info.layer}, {info.datatype})")
    for ch in checks:
        a = var[(ch.layer, ch.waive_cells)]
        ang = "" if ch.angle_limit is None else f", angle_limit({ch.angle_limit})"
        expr = {
            "width": f"{a}.width({ch.value:.6g}.um{ang})",
            "space": f"{a}.space({ch.value:.6g}.um{ang})",
            "overlap": f"{a}.overlap({var.get((ch.other, ()))}, {ch.value:.6g}.um)",
            "outside": f"{a}.outside({var.get((ch.other, ()))})",
        }[ch.kind]
        lines.append(f'{expr}.output("{ch.name}", "{ch.message}")')
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text


def batch_foundry_deck(lydrc: str | Path) -> str:
    """A foundry ``.lydrc`` macro (KLayout XML) as a batch script, its rules untouched: the macro's text, with
    ``source($input)`` added and its ``report("…")`` sent to ``$report`` (the GUI macro reads the open layout)."""
    text = Path(lydrc).read_text() if Path(str(lydrc)).exists() else str(lydrc)
    m = re.search(r"<text>(.*)</text>", text, re.S)
    body = html.unescape(m.group(1)) if m else text
    body, k = re.subn(r'^\s*report\(\s*("[^"]*")\s*\)', r'source($input)\nreport(\1, $report)', body, count=1,
                      flags=re.M)
    if k == 0:
        body = 'source($input)\nreport("DRC", $report)\n' + body
    return body


def write_gds_for_klayout(component: gf.Component, path) -> Path:
    """Write ``component`` as GDS without KLayout's context cell (``$$$CONTEXT_INFO$$$``, metadata only), which
    KLayout 0.28 refuses."""
    path = Path(path)
    component.write_gds(str(path))
    ly = kdb.Layout()
    ly.read(str(path))
    ctx = ly.cell(CONTEXT_CELL)
    if ctx is not None:
        ly.delete_cell(ctx.cell_index())
    opts = kdb.SaveLayoutOptions()
    opts.write_context_info = False
    ly.write(str(path), opts)
    return path


def klayout_binary() -> str | None:
    """Path of the ``klayout`` executable, ``None`` when it is not installed."""
    return shutil.which("klayout")


def run_klayout(component_or_gds, script: str, timeout: float = 600.0) -> dict[str, int]:
    """Run a DRC ``script`` (text) in ``klayout -b`` on a component (or GDS path); violations per category.

    Raises ``FileNotFoundError`` when the binary is absent and ``RuntimeError`` when the run fails.
    """
    import klayout.rdb as rdb

    exe = klayout_binary()
    if exe is None:
        raise FileNotFoundError("the klayout binary is not installed (Debian: apt-get install klayout)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gds = Path(component_or_gds) if isinstance(component_or_gds, (str, Path)) else write_gds_for_klayout(
            component_or_gds, tmp / "chip.gds")
        (tmp / "deck.drc").write_text(script)
        report = tmp / "report.lyrdb"
        res = subprocess.run([exe, "-b", "-r", str(tmp / "deck.drc"), "-rd", f"input={gds}", "-rd",
                              f"report={report}"], capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0 or not report.exists():
            raise RuntimeError(f"klayout DRC failed (rc={res.returncode}): {res.stderr.strip()[-2000:]}")
        db = rdb.ReportDatabase("")
        db.load(str(report))
        out = {}
        for cat in db.each_category():
            out[cat.name()] = cat.num_items()
        return out
