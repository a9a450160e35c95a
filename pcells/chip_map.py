"""The chip map: which pad drives which phase shifter, where each tap grating is, which fiber port is which mode.

Everything is read back from the drawn layout, not from the parameters that drew it:

* MZIs and output phase shifters are found as instances of ``mzi_tapped`` / ``phase_shifter_tapped`` in
  the mesh; their (column, top mode) or mode comes from their position (the mesh's column pitch and
  waveguide pitch), their θ/φ role from the MZI cell's ``theta``/``phi`` segments.
* pad → shifter comes from the metal connectivity: the lower and top metal layers and the via layer between
  them are flattened and extracted with ``klayout.db.LayoutToNetlist``; the net under each pad is compared
  with the net under each heater's signal contact (and its return contact must reach a ground pad).
* fiber port → mode follows the optical netlist from each grating through the route waveguides to a mesh port.
* tap positions are the drawn grating ports.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import gdsfactory as gf
import klayout.db as kdb

from . import schedule
from .errors import ConnectivityError


@dataclass
class PadMap:
    """One bond pad: ``kind`` is theta/phi/gamma/ground; ``shifter`` the canonical shifter index."""

    pad: str
    position: list
    kind: str
    shifter: int | None = None
    mzi: list | None = None
    mode: int | None = None


@dataclass
class TapMap:
    """One tap grating: the shifter whose segment it monitors, the direction it sees, its position (µm)."""

    shifter: int
    kind: str
    direction: str
    position: list
    mzi: list | None = None
    mode: int | None = None


@dataclass
class HeaterMap:
    """One heater: canonical ``shifter`` index, kind, its centre (µm) and drawn length (µm, along x)."""

    shifter: int
    kind: str
    position: list
    length: float
    mzi: list | None = None
    mode: int | None = None


@dataclass
class FiberMap:
    """One fiber coupler: ``port`` the chip port at its fiber end (``fiber_in0``…; the instance name when the
    chip exports none there), ``role`` input/output/loopback, ``mode`` (None for loopback), position (µm),
    ``coupler`` its instance name."""

    port: str
    position: list
    role: str
    mode: int | None = None
    coupler: str | None = None


@dataclass
class ChipMap:
    """Machine-readable map of a tapped mesh chip (JSON round-trip with :meth:`to_json` / :meth:`from_json`)."""

    n: int
    kind: str
    pads: list = field(default_factory=list)
    taps: list = field(default_factory=list)
    fibers: list = field(default_factory=list)
    roles: dict | None = None
    heaters: list = field(default_factory=list)
    trenches: list = field(default_factory=list)
    balanced_taps: bool = False  # a dummy tap beside every monitor tap (pcells.mesh(balanced_taps=True))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> ChipMap:
        return cls(
            n=d["n"],
            kind=d["kind"],
            pads=[PadMap(**p) for p in d.get("pads", [])],
            taps=[TapMap(**t) for t in d.get("taps", [])],
            fibers=[FiberMap(**f) for f in d.get("fibers", [])],
            roles=d.get("roles"),
            heaters=[HeaterMap(**h) for h in d.get("heaters", [])],
            trenches=[list(t) for t in d.get("trenches", [])],
            balanced_taps=bool(d.get("balanced_taps", False)),
        )

    @classmethod
    def from_json(cls, s: str) -> ChipMap:
        return cls.from_dict(json.loads(s))

    def pad_of(self, shifter: int) -> PadMap:
        """The pad driving canonical shifter ``shifter``."""
        for p in self.pads:
            if p.shifter == shifter:
                return p
        raise KeyError(shifter)

    def heater_positions(self):
        """(positions (H, 2) µm, lengths (H,) µm) of the heaters in canonical order, as NumPy arrays (the input
        of :func:`tapmesh.circuits.thermal.crosstalk_pairs`)."""
        import numpy as np

        hs = sorted(self.heaters, key=lambda h: h.shifter)
        return np.array([h.position for h in hs], dtype=float).reshape(-1, 2), np.array([h.length for h in hs])

    def trench_rects(self):
        """Deep trenches as an (K, 4) array of ``(x0, y0, x1, y1)`` µm rectangles."""
        import numpy as np

        return np.array(self.trenches, dtype=float).reshape(-1, 4)

    def taps_of(self, shifter: int) -> dict:
        """``{"fwd": TapMap, "bwd": TapMap}`` of canonical shifter ``shifter``."""
        return {t.direction: t for t in self.taps if t.shifter == shifter}


def _is_mesh(cell) -> bool:
    return "n_mzis" in cell.info and "kind" in cell.info


def _find_mesh(cell, trans=None, parent=None):
    """(mesh cell, its transformation into ``cell``, the cell that holds the mesh instance, that cell's trans)."""
    trans = trans or kdb.DCplxTrans()
    if _is_mesh(cell):
        return cell, trans, None, None
    for inst in cell.insts:
        if _is_mesh(inst.cell):
            return inst.cell, trans * inst.dcplx_trans, (cell, inst.name), trans
    for inst in cell.insts:
        found = _find_mesh(inst.cell, trans * inst.dcplx_trans)
        if found is not None and found[0] is not None:
            return found
    return None


def _fname(cell) -> str:
    return getattr(cell, "function_name", None) or cell.name


def _shifter_geometry(mesh, mtrans):
    """Per canonical shifter: kind, mzi/mode, signal and return contact points, tap grating points (µm)."""
    n, kind = int(mesh.info["n"]), str(mesh.info["kind"])
    pitch, col_pitch = float(mesh.info["pitch"]), float(mesh.info["column_pitch"])
    mzis = schedule.mzis(n, kind)
    k_of = {mz: i for i, mz in enumerate(mzis)}
    n_mzi = len(mzis)
    out = {}
    for inst in mesh.insts:
        fn = _fname(inst.cell)
        t0 = mtrans * inst.dcplx_trans
        origin = inst.dcplx_trans.disp
        if fn == "mzi_tapped":
            col = round(origin.x / col_pitch)
            m = n - 2 - round(origin.y / pitch)
            if (col, m) not in k_of:
                raise ConnectivityError(f"MZI instance {inst.name!r} at {origin} is not in the {kind} schedule")
            k = k_of[(col, m)]
            segs = {s.name: s for s in inst.cell.insts if s.name in ("theta", "phi")}
            for role, h in (("theta", k), ("phi", n_mzi + k)):
                out[h] = _segment_points(segs[role], t0, role, [col, m], None)
        elif fn == "phase_shifter_tapped":
            m = n - 1 - round(origin.y / pitch)
            seg = next(s for s in inst.cell.insts if s.name == "segment")
            out[2 * n_mzi + m] = _segment_points(seg, t0, "gamma", None, m)
    if sorted(out) != list(range(2 * n_mzi + n)):
        raise ConnectivityError(f"found {len(out)} phase shifters in the layout, the schedule has {2 * n_mzi + n}")
    return out


def _segment_points(seg_inst, t0, role, mzi, mode):
    ts = t0 * seg_inst.dcplx_trans
    cell = seg_inst.cell
    heater = next(i for i in cell.insts if i.name == "heater")
    tap = next(i for i in cell.insts if i.name == "tap")
    th = ts * heater.dcplx_trans
    pts = {}
    for pname in ("e1", "e2"):
        p = heater.cell.ports[pname]
        pts[pname] = th * kdb.DPoint(p.dcenter[0], p.dcenter[1] + 1.0)
    length = float(heater.cell.info["length"])
    centre = th * kdb.DPoint(length / 2, 0.0)
    tt = ts * tap.dcplx_trans
    taps = {}
    for pname, direction in (("o3", "fwd"), ("o4", "bwd")):
        p = tap.cell.ports[pname]
        taps[direction] = tt * kdb.DPoint(*p.dcenter)
    return {"kind": role, "mzi": mzi, "mode": mode, "signal": pts["e1"], "return": pts["e2"], "taps": taps,
            "centre": centre, "length": length}


def _trenches(component, layer="DEEPTRENCH") -> list:
    """Deep-trench rectangles ``[x0, y0, x1, y1]`` (µm) drawn anywhere in ``component`` (their bounding boxes)."""
    ly = component.kcl.layout
    try:
        li = int(gf.get_layer(layer))
    except Exception:  # noqa: BLE001 - a PDK without a trench layer draws none
        return []
    reg = kdb.Region(ly.begin_shapes(component.kdb_cell.cell_index(), li)).merged()
    out = []
    for poly in reg.each():
        b = poly.bbox().to_dtype(ly.dbu)
        out.append([round(b.left, 3), round(b.bottom, 3), round(b.right, 3), round(b.top, 3)])
    return sorted(out)


def _metal_nets(component, conductors, vias):
    """Flatten the metal layers and extract their nets; return (l2n, {layer name: region})."""
    ly = component.kcl.layout
    cell = component.kdb_cell
    flat = kdb.Layout()
    flat.dbu = ly.dbu
    top = flat.create_cell("top")
    index = {}
    for i, name in enumerate((*conductors, *vias)):
        li = int(gf.get_layer(name))
        fl = flat.layer(1000 + i, 0)
        top.shapes(fl).insert(kdb.Region(ly.begin_shapes(cell.cell_index(), li)))
        index[name] = fl
    l2n = kdb.LayoutToNetlist(kdb.RecursiveShapeIterator(flat, top, []))
    regions = {name: l2n.make_layer(index[name], name) for name in index}
    for name in conductors:
        l2n.connect(regions[name])
    for lower, via, upper in zip(conductors[:-1], vias, conductors[1:]):
        l2n.connect(regions[via])
        l2n.connect(regions[lower], regions[via])
        l2n.connect(regions[via], regions[upper])
    l2n.extract_netlist()
    return l2n, regions


def _net_id(l2n, regions, layer, point):
    net = l2n.probe_net(regions[layer], point)
    return None if net is None else net.cluster_id


def _trace_fibers(holder, holder_trans, mesh_inst_name, n, top_ports):
    """Fiber grating → mode, following the holder cell's optical nets through 2-port route elements."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gdsfactory.get_netlist import get_netlist

        net = get_netlist(holder)
    link = {}
    for nt in net.get("nets", []):
        link[nt["p1"]] = nt["p2"]
        link[nt["p2"]] = nt["p1"]
    insts = {i.name: i for i in holder.insts}
    fibers = []
    for name, inst in insts.items():
        if "grating_coupler" not in _fname(inst.cell) and not name.startswith("gc_"):
            continue
        cur = f"{name},o1"
        role, mode = None, None
        for _ in range(10_000):
            other = link.get(cur)
            if other is None:
                break
            iname, port = other.split(",")
            if iname == mesh_inst_name:
                k = int(port[1:]) - 1
                role, mode = ("input", k) if k < n else ("output", k - n)
                break
            target = insts.get(iname)
            if target is not None and ("grating_coupler" in _fname(target.cell) or iname.startswith("gc_")):
                role = "loopback"
                break
            nxt = {"o1": "o2", "o2": "o1"}.get(port)
            if nxt is None:
                break
            cur = f"{iname},{nxt}"
        if role is None:
            raise ConnectivityError(f"fiber grating {name!r} is not connected to the mesh or a loopback")
        try:
            centre = inst.ports["o2"].dcenter
        except (KeyError, ValueError):  # a foundry grating without a fiber port: its centre
            b = inst.dbbox()
            centre = (b.center().x, b.center().y)
        pos = holder_trans * kdb.DPoint(*centre)
        key = (round(pos.x, 3), round(pos.y, 3))
        fibers.append(
            FiberMap(port=top_ports.get(key, name), position=list(key), role=role, mode=mode, coupler=name)
        )
    fibers.sort(key=lambda f: ({"input": 0, "output": 1, "loopback": 2}[f.role], f.mode or 0, f.coupler))
    return fibers


def chip_map(
    component: gf.Component,
    conductors: tuple | None = None,
    vias: tuple | None = None,
) -> ChipMap:
    """Derive the :class:`ChipMap` of a :func:`tapmesh.pcells.chip` (or :func:`tapmesh.pcells.mesh`) from its layout.

    Args:
        component: the chip (or a bare mesh: then only taps and mesh ports are mapped).
        conductors: routing metal layers, bottom to top (pads are on the last one); default: the routing
            metals of the process of the PDK the chip was drawn on (``info["pdk"]``; ``("M2", "M3")`` generic).
        vias: via layers between consecutive ``conductors`` (default: that process's; none for a process that
            contacts by overlap, whose routing metals then form one net where they touch).

    Raises:
        ConnectivityError: a heater reaches no pad or several, a return contact reaches no ground pad, a pad
        reaches two heaters, or a fiber grating reaches nothing.
    """
    if conductors is None or vias is None:
        from .process import get_process

        pdk = component.info.get("pdk", "generic")
        routers, cuts = ("M2", "M3"), ("VIA2",)
        if pdk != "generic":
            routers, cuts = get_process(pdk).connectivity()
        conductors = routers if conductors is None else conductors
        vias = cuts if vias is None else vias
    found = _find_mesh(component)
    if found is None:
        raise ConnectivityError(f"{component.name!r} contains no pcells mesh")
    mesh, mtrans, holder_info, holder_trans = found
    n, kind = int(mesh.info["n"]), str(mesh.info["kind"])
    balanced = bool(mesh.info.get("balanced_taps", False))
    geo = _shifter_geometry(mesh, mtrans)
    taps = []
    for h in sorted(geo):
        g = geo[h]
        for direction, pt in g["taps"].items():
            taps.append(
                TapMap(
                    shifter=h,
                    kind=g["kind"],
                    direction=direction,
                    position=[round(pt.x, 3), round(pt.y, 3)],
                    mzi=g["mzi"],
                    mode=g["mode"],
                )
            )
    heaters = [
        HeaterMap(shifter=h, kind=geo[h]["kind"], position=[round(geo[h]["centre"].x, 3), round(geo[h]["centre"].y, 3)],
                  length=geo[h]["length"], mzi=geo[h]["mzi"], mode=geo[h]["mode"])
        for h in sorted(geo)
    ]
    trenches = _trenches(component)
    roles = component.info.get("roles")
    roles = {k: [list(v) for v in vs] for k, vs in roles.items()} if roles else None
    if holder_info is None:  # a bare mesh: its own optical ports are the I/O
        fibers = []
        for m in range(n):
            for name, role in ((f"o{m + 1}", "input"), (f"o{n + m + 1}", "output")):
                p = component.ports[name]
                fibers.append(FiberMap(port=name, position=[p.dcenter[0], p.dcenter[1]], role=role, mode=m))
        return ChipMap(n=n, kind=kind, taps=taps, fibers=fibers, roles=roles, heaters=heaters, trenches=trenches,
                       balanced_taps=balanced)

    holder, mesh_inst_name = holder_info
    top_ports = {
        (round(p.dcenter[0], 3), round(p.dcenter[1], 3)): p.name
        for p in component.ports
        if p.port_type != "electrical" and p.port_type != "pad"
    }
    fibers = _trace_fibers(holder, holder_trans, mesh_inst_name, n, top_ports)
    l2n, regions = _metal_nets(component, conductors, vias)
    top_layer = conductors[-1]
    pads = []
    pad_net = {}
    for inst in holder.insts:
        if _fname(inst.cell) != "pad":
            continue
        c = holder_trans * inst.dcplx_trans * kdb.DPoint(0, 0)
        nid = _net_id(l2n, regions, top_layer, c)
        if nid is None:
            raise ConnectivityError(f"pad {inst.name!r} has no metal under its centre")
        pad_net.setdefault(nid, []).append((inst.name, c))
    used = set()
    ground_nets = set()
    for h in sorted(geo):
        g = geo[h]
        nid = _net_id(l2n, regions, conductors[0], g["signal"])
        hits = pad_net.get(nid, [])
        if len(hits) != 1:
            raise ConnectivityError(f"heater {h} ({g['kind']}) reaches {len(hits)} pads, expected 1")
        name, c = hits[0]
        if name in used:
            raise ConnectivityError(f"pad {name!r} reaches several heaters")
        used.add(name)
        pads.append(
            PadMap(pad=name, position=[round(c.x, 3), round(c.y, 3)], kind=g["kind"], shifter=h, mzi=g["mzi"],
                   mode=g["mode"])
        )
        rid = _net_id(l2n, regions, conductors[0], g["return"])
        if rid == nid or not pad_net.get(rid):
            raise ConnectivityError(f"heater {h} return contact reaches no separate ground pad")
        ground_nets.add(rid)
    for nid in ground_nets:
        for name, c in pad_net[nid]:
            pads.append(PadMap(pad=name, position=[round(c.x, 3), round(c.y, 3)], kind="ground"))
            used.add(name)
    unused = [name for hits in pad_net.values() for name, _ in hits if name not in used]
    if unused:
        raise ConnectivityError(f"pads {unused} drive nothing")
    return ChipMap(n=n, kind=kind, pads=pads, taps=taps, fibers=fibers, roles=roles, heaters=heaters,
                   trenches=trenches, balanced_taps=balanced)
