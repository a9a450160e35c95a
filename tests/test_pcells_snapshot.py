"""Regression snapshots: compact netlist summaries of the 4×4 mesh, the demo chip and a 4×4 bump chip.

Regenerate after an intended layout change with ``TAPMESH_UPDATE_SNAPSHOTS=1 pytest tests/test_pcells_snapshot.py``
and review the diff of ``tests/data/*.json``.
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings

import pytest

from tapmesh import pcells

warnings.filterwarnings("ignore", message="Unconnected ports")
DATA = pathlib.Path(__file__).parent / "data"


def _summary(component) -> dict:
    out = pcells.netlist_summary(component)
    cm = pcells.chip_map(component)
    out["chip_map"] = {
        "pads": sorted(
            [p.pad, p.kind, p.shifter, p.mzi, p.mode, [round(v, 1) for v in p.position]] for p in cm.pads
        )
        if cm.pads
        else [],
        "taps": len(cm.taps),
        "fibers": sorted([f.port, f.role, f.mode] for f in cm.fibers),
        "roles": cm.roles,
    }
    return json.loads(json.dumps(out))


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("mesh4_rectangular", lambda: pcells.mesh(n=4)),
        ("demo_chip", lambda: pcells.demo_chip()),
        ("chip4_bumps", lambda: pcells.chip(n=4, pads="bumps")),
    ],
)
def test_snapshot(name, build):
    path = DATA / f"snapshot_{name}.json"
    got = _summary(build())
    if os.environ.get("TAPMESH_UPDATE_SNAPSHOTS") or not path.exists():
        DATA.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        if not os.environ.get("TAPMESH_UPDATE_SNAPSHOTS"):
            pytest.fail(f"snapshot {path.name} was missing and has been written; rerun")
    want = json.loads(path.read_text())
    assert got == want
