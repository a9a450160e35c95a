"""Layout checks: a width/space DRC deck for the generic PDK, instance overlaps, dangling optical ports.

The DRC uses ``klayout.db.Region.width_check`` / ``space_check`` on the merged, flattened layers.
"""

from __future__ import annotations

from collections import Counter

import gdsfactory as gf
import klayout.db as kdb

DRC_RULES: dict[str, tuple[float, float]] = {
    # layer: (min width, min space) in µm — the generic PDK's strip waveguide and metal stack
    "WG": (0.2, 0.2),
    "HEATER": (2.0, 2.0),
    "M2": (2.0, 2.0),
    "M3": (3.0, 3.0),
}
"""Minimum width and space per layer (µm) of the rule deck used by :func:`drc`."""


def _region(component, layer_name: str, dss=None) -> kdb.Region:
    ly = component.kcl.layout
    li = int(gf.get_layer(layer_name))
    it = ly.begin_shapes(component.kdb_cell.cell_index(), li)
    return kdb.Region(it) if dss is None else kdb.Region(it, dss)


def drc(component: gf.Component, rules: dict | None = None, deep: bool = True) -> dict[str, int]:
    """Width/space violations per ``"<layer>.<width|space>"`` (0 everywhere means clean).

    ``deep=True`` runs KLayout's hierarchical mode (a ``DeepShapeStore``): a repeated cell is checked once
    in context, which turns the n=16 chip from minutes into seconds. Counts are then per hierarchical
    occurrence; use ``deep=False`` for flat counts.
    """
    rules = DRC_RULES if rules is None else rules
    dbu = component.kcl.layout.dbu
    dss = kdb.DeepShapeStore() if deep else None
    out = {}
    for layer, (width, space) in rules.items():
        reg = _region(component, layer, dss).merged()
        out[f"{layer}.width"] = reg.width_check(round(width / dbu)).count()
        out[f"{layer}.space"] = reg.space_check(round(space / dbu)).count()
    return out


def overlap_area(component: gf.Component, layer: str = "WG") -> float:
    """Area (µm²) where shapes of different top-level instances overlap on ``layer`` (0 for a clean layout)."""
    ly = component.kcl.layout
    li = int(gf.get_layer(layer))
    dbu = ly.dbu
    total = kdb.Region()
    area_sum = 0
    for inst in component.kdb_cell.each_inst():
        reg = kdb.Region(ly.begin_shapes(inst.cell_index, li)).transformed(inst.cplx_trans).merged()
        if inst.is_regular_array():
            raise NotImplementedError("arrayed instances")
        area_sum += reg.area()
        total += reg
    own = kdb.Region(component.kdb_cell.shapes(li)).merged()
    area_sum += own.area()
    total += own
    return (area_sum - total.merged().area()) * dbu * dbu


def dangling_optical_ports(component: gf.Component) -> list[str]:
    """Optical instance ports (``port_type == "optical"``) neither joined to another port nor exported.

    Checked in every distinct cell of the hierarchy; returns ``"cell:instance,port"`` strings.
    """
    seen = set()
    bad: list[str] = []

    def visit(cell):
        if cell.name in seen:
            return
        seen.add(cell.name)
        where = Counter()
        for p in cell.ports:
            where[(round(p.dcenter[0], 3), round(p.dcenter[1], 3))] += 1
        insts = list(cell.insts)
        for inst in insts:
            for p in inst.ports:
                where[(round(p.dcenter[0], 3), round(p.dcenter[1], 3))] += 1
        for inst in insts:
            for p in inst.ports:
                if p.port_type != "optical":
                    continue
                if where[(round(p.dcenter[0], 3), round(p.dcenter[1], 3))] < 2:
                    bad.append(f"{cell.name}:{inst.name},{p.name}")
        for inst in insts:
            visit(inst.cell)

    visit(component)
    return bad


def netlist_summary(component: gf.Component) -> dict:
    """Compact, order-independent summary of the recursive netlist (for regression snapshots).

    Per cell (by function name): the instance count per component type, the number of nets and the sorted
    exported port names; plus the top cell's bounding box rounded to 0.01 µm.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = component.get_netlist(recursive=True)
    cells = {}
    for name, net in rec.items():
        counts = Counter(inst["component"] for inst in net["instances"].values())
        cells[name] = {
            "instances": dict(sorted(counts.items())),
            "nets": len(net.get("nets", [])),
            "ports": sorted(net.get("ports", {})),
        }
    b = component.dbbox()
    return {
        "top": next(iter(rec)),
        "bbox": [round(b.left, 2), round(b.bottom, 2), round(b.right, 2), round(b.top, 2)],
        "cells": dict(sorted(cells.items())),
    }


def write_drc_deck(path=None, rules: dict | None = None) -> str:
    """KLayout DRC script (Ruby ``.lydrc`` body) of the width/space deck, for a foundry-style batch run.

    ``klayout -b -r deck.drc -rd input=chip.gds -rd report=drc.lyrdb``. Returns the script; writes it to
    ``path`` when given. Layer numbers come from the active PDK.
    """
    import gdsfactory as gf_

    rules = DRC_RULES if rules is None else rules
    layout = gf_.kcl.layout
    lines = [
        "# tapmesh width/space deck, generated by pcells.checks.write_drc_deck",
        "source($input)",
        'report("tapmesh width/space", $report)',
        "deep",
    ]
    for name, (width, space) in rules.items():
        info = layout.get_info(int(gf_.get_layer(name)))
        var = name.lower()
        lines += [
            f"{var} = input({info.layer}, {info.datatype})",
            f'{var}.width({width}.um).output("{name}.width", "{name} width < {width} um")',
            f'{var}.space({space}.um).output("{name}.space", "{name} space < {space} um")',
        ]
    text = "\n".join(lines) + "\n"
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text
