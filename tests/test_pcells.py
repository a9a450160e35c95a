"""pcells: cells, meshes, chips and the chip map (issue 3)."""

from __future__ import annotations

import json
import warnings

import gdsfactory as gf
import klayout.db as kdb
import pytest

from tapmesh import pcells
from tapmesh.pcells import schedule
from tapmesh.pcells.chip_map import ChipMap

warnings.filterwarnings("ignore", message="Unconnected ports")


# ---------------------------------------------------------------- schedule (no gdsfactory)
@pytest.mark.parametrize("kind", schedule.KINDS)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 8, 16, 64])
def test_schedule_counts(n, kind):
    mzis = schedule.mzis(n, kind)
    assert len(mzis) == n * (n - 1) // 2
    assert mzis == sorted(mzis)
    assert len(set(mzis)) == len(mzis)
    ncol = n if kind == "rectangular" else 2 * n - 3
    cols = {c for c, _ in mzis}
    assert cols <= set(range(ncol))
    assert cols == set(range(ncol)) or (n, kind) == (2, "rectangular")  # column 1 of n=2 is empty
    # MZIs of one column act on disjoint mode pairs
    for c in range(ncol):
        modes = [m for cc, m in mzis if cc == c]
        assert all(b - a >= 2 for a, b in zip(modes, modes[1:]))
    sh = schedule.shifters(n, kind)
    k = len(mzis)
    assert sh[:k] == [("theta", i) for i in range(k)]
    assert sh[k : 2 * k] == [("phi", i) for i in range(k)]
    assert sh[2 * k :] == [("gamma", m) for m in range(n)]


def test_schedule_rules_by_hand():
    assert schedule.mzis(4, "rectangular") == [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2), (3, 1)]
    assert schedule.mzis(4, "triangular") == [(0, 2), (1, 1), (2, 0), (2, 2), (3, 1), (4, 2)]


def test_schedule_has_no_gdsfactory_import():
    import pathlib

    src = pathlib.Path(schedule.__file__).read_text()
    assert "gdsfactory" not in src.replace("imports nothing from gdsfactory", "")


# ---------------------------------------------------------------- bad input → named errors
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: pcells.mesh(n=1), pcells.MeshSizeError),
        (lambda: pcells.mesh(n=65), pcells.MeshSizeError),
        (lambda: pcells.mesh(n=4, kind="hexagonal"), pcells.MeshKindError),
        (lambda: pcells.mesh(n=4, pitch=20.0), pcells.PitchError),
        (lambda: pcells.mzi_tapped(pitch=10.0), pcells.PitchError),
        (lambda: pcells.mesh(n=4, cross_section="no_such_xs"), pcells.CrossSectionError),
        (lambda: pcells.mzi_tapped(cross_section_lane="nope"), pcells.CrossSectionError),
        (lambda: pcells.mzi_tapped(coupler="ring"), pcells.CouplerKindError),
        (lambda: pcells.grating_tap(tap_fraction=0.2), pcells.TapFractionError),
        (lambda: pcells.chip(n=4, pad_pitch=60.0), pcells.PitchError),
        (lambda: pcells.chip(n=4, fiber_pitch=20.0), pcells.PitchError),
        (lambda: pcells.chip(n=4, io="free_space"), pcells.LayoutError),
    ],
)
def test_bad_input_named_errors(call, error):
    with pytest.raises(error):
        call()
    assert issubclass(error, pcells.LayoutError) and issubclass(error, ValueError)


# ---------------------------------------------------------------- cells
def test_grating_tap_ports_and_directions():
    t = pcells.grating_tap(tap_fraction=0.03)
    assert {p.name for p in t.ports} == {"o1", "o2", "o3", "o4"}
    o1, o2, fwd, bwd = (t.ports[n].dcenter for n in ("o1", "o2", "o3", "o4"))
    assert o1[1] == o2[1] == 0 and o2[0] > o1[0]
    # forward light (o1 → o2) leaves through the grating downstream, backward through the upstream one
    assert fwd[0] > bwd[0] and fwd[1] > 0 and bwd[1] > 0
    assert t.info["tap_fraction"] == 0.03
    assert t.ports["o3"].port_type == t.ports["o4"].port_type == "vertical_te"


@pytest.mark.parametrize("coupler", ["dc", "mmi"])
def test_mzi_tapped_ports(coupler):
    m = pcells.mzi_tapped(coupler=coupler, pitch=50.0)
    pos = {p.name: p.dcenter for p in m.ports}
    assert pos["o1"][1] == pos["o4"][1] == 0 and pos["o2"][1] == pos["o3"][1] == 50
    assert pos["o1"][0] == pos["o2"][0] == 0 and pos["o3"][0] == pos["o4"][0] == m.info["length"]
    assert [p.name for p in m.ports if p.port_type == "electrical"] == ["e1", "e2", "e3", "e4"]
    assert sum(p.port_type == "vertical_te" for p in m.ports) == 4
    assert not pcells.dangling_optical_ports(m)


# ---------------------------------------------------------------- meshes
@pytest.mark.parametrize(
    ("n", "kind"), [(2, "rectangular"), (3, "triangular"), (4, "rectangular"), (5, "triangular"), (8, "rectangular")]
)
def test_mesh_counts_match_schedule(n, kind):
    m = pcells.mesh(n=n, kind=kind)
    k = n * (n - 1) // 2
    names = [i.name for i in m.insts]
    assert sum(x.startswith("mzi_c") for x in names) == k
    assert sum(x.startswith("gamma_m") for x in names) == n
    assert sorted(x for x in names if x.startswith("mzi_c")) == sorted(
        f"mzi_c{c}_m{mm}" for c, mm in schedule.mzis(n, kind)
    )
    heaters = [p for p in m.ports if p.name.startswith("e")]
    taps = [p for p in m.ports if p.name.startswith("tap_")]
    assert len(heaters) == 2 * k + n == m.info["n_heaters"]
    assert len(taps) == 2 * (2 * k + n)  # one bidirectional tap (two gratings) per heated segment
    assert [p.name for p in m.ports if p.port_type == "optical"] == [f"o{i + 1}" for i in range(2 * n)]
    # constant waveguide pitch, mode 0 on top
    ys = [m.ports[f"o{i + 1}"].dcenter[1] for i in range(n)]
    assert all(abs((a - b) - 50.0) < 1e-6 for a, b in zip(ys, ys[1:]))
    assert overlap_free(m)
    assert not pcells.dangling_optical_ports(m)


def overlap_free(component) -> bool:
    """No two instances overlap on the waveguide or heater layer.

    Metal is exempt on purpose (vias land on lanes and tracks); metal shorts are caught instead by the chip
    map, which requires every pad to reach exactly one heater.
    """
    return all(pcells.overlap_area(component, layer) < 1e-6 for layer in ("WG", "HEATER"))


def test_mesh_drc_clean_both_kinds():
    for comp in (pcells.mesh(n=4), pcells.mesh(n=3, kind="triangular", coupler="mmi")):
        assert set(pcells.drc(comp).values()) == {0}, pcells.drc(comp)


@pytest.mark.parametrize(("engine", "deep"), [("edges", False), ("region", True), ("region", False)])
def test_drc_catches_violations(engine, deep):
    c = gf.Component()
    c.add_ref(pcells.mzi_tapped(), name="mzi")
    c.add_polygon([(0, -20), (10, -20), (10, -19.9), (0, -19.9)], layer="WG")  # 0.1 µm wide sliver
    c.add_polygon([(0, -30), (10, -30), (10, -27), (0, -27)], layer="M2")
    c.add_polygon([(0, -26), (10, -26), (10, -23), (0, -23)], layer="M2")  # 1 µm from the one above
    res = pcells.drc(c, deep=deep, engine=engine)
    assert res["WG.width"] > 0 and res["M2.space"] > 0
    assert res["HEATER.width"] == res["M3.width"] == 0


def test_unrouted_mesh_exposes_lanes():
    m = pcells.mesh(n=3, route_heaters=False)
    assert len([p for p in m.ports if p.name.startswith("e")]) == 9
    assert len([p for p in m.ports if p.name.startswith("r")]) == 9


# ---------------------------------------------------------------- chips
@pytest.fixture(scope="module")
def chip4():
    return pcells.chip(n=4)


@pytest.fixture(scope="module")
def demo():
    return pcells.demo_chip()


def test_chip_gds_roundtrip_klayout(chip4, tmp_path):
    path = tmp_path / "chip4.gds"
    chip4.write_gds(path)
    ly = kdb.Layout()
    ly.read(str(path))
    top = ly.top_cell()
    assert top is not None
    b = top.dbbox()
    cb = chip4.dbbox()
    assert abs(b.left - cb.left) < 1e-3 and abs(b.top - cb.top) < 1e-3
    wg = ly.layer(1, 0)
    assert kdb.Region(top.begin_shapes_rec(wg)).area() > 0
    # references, not flattened copies: the MZI cell exists once
    assert sum(c.name.startswith("mzi_tapped") for c in ly.each_cell()) == 1


def test_chip_checks(chip4):
    assert overlap_free(chip4)
    assert not pcells.dangling_optical_ports(chip4)
    assert set(pcells.drc(chip4).values()) == {0}, pcells.drc(chip4)


def test_chip_pads_and_map(chip4):
    cm = pcells.chip_map(chip4)
    n, k = 4, 6
    heaters = [p for p in cm.pads if p.kind != "ground"]
    assert len(heaters) == 2 * k + n
    assert len(cm.pads) == chip4.info["n_pads"] == 2 * k + n + 2
    assert sorted(p.shifter for p in heaters) == list(range(2 * k + n))
    # the pads the chip labels e{h+1} are the ones the metal connects to shifter h
    assert all(p.pad == f"pad_e{p.shifter + 1}" for p in heaters)
    sh = schedule.shifters(n, "rectangular")
    mzis = schedule.mzis(n, "rectangular")
    for p in heaters:
        kind, idx = sh[p.shifter]
        assert p.kind == kind
        assert (tuple(p.mzi) == mzis[idx]) if kind != "gamma" else p.mode == idx
    assert len(cm.taps) == 2 * (2 * k + n)
    fibers = {(f.role, f.mode) for f in cm.fibers}
    assert fibers >= {("input", m) for m in range(n)} | {("output", m) for m in range(n)}
    loop = [f for f in cm.fibers if f.role == "loopback"]
    assert len(loop) == 4
    for f in cm.fibers:  # the chip's port names agree with what the waveguides connect
        if f.role == "input":
            assert f.port == f"fiber_in{f.mode}"
        elif f.role == "output":
            assert f.port == f"fiber_out{f.mode}"
        else:
            assert f.port.startswith("loopback_")
    ys = sorted(f.position[1] for f in cm.fibers if f.role == "input")
    assert all(abs((b - a) - 127.0) < 1e-6 for a, b in zip(ys, ys[1:]))  # fiber-array pitch


def test_edge_coupler_chip():
    c = pcells.chip(n=3, io="edge")
    cm = pcells.chip_map(c)
    assert {(f.role, f.mode) for f in cm.fibers if f.role != "loopback"} == {
        (r, m) for r in ("input", "output") for m in range(3)
    }
    xs = [f.position[0] for f in cm.fibers]
    b = c.dbbox()
    assert all(abs(x - b.left) < 1e-3 or abs(x - b.right) < 1e-3 for x in xs)  # tips on the facets
    assert set(pcells.drc(c).values()) == {0}
    assert not pcells.dangling_optical_ports(c)


def test_chip_map_json_roundtrip(chip4, tmp_path):
    cm = pcells.chip_map(chip4)
    s = cm.to_json()
    json.loads(s)
    assert ChipMap.from_json(s) == cm
    assert cm.pad_of(3).shifter == 3
    taps = cm.taps_of(3)
    assert taps["fwd"].position[0] > taps["bwd"].position[0]


def test_chip_map_detects_broken_routing():
    # a mesh whose heater tracks stop at the edge: no pads reach any heater → error, not a silent map
    c = gf.Component()
    c.add_ref(pcells.mesh(n=2), name="mesh")
    c.add_ref(gf.components.pad(size=(80, 80), layer="M3"), name="stray").dmove((-500, -500))
    with pytest.raises(pcells.ConnectivityError):
        pcells.chip_map(c)


def test_demo_chip(demo):
    cm = pcells.chip_map(demo)
    assert cm.n == 6 and cm.kind == "triangular"
    roles = cm.roles
    assert {r: len(v) for r, v in roles.items()} == {"generator": 4, "core": 6, "analyzer": 4, "reference": 1}
    assert sorted(tuple(x) for v in roles.values() for x in v) == schedule.mzis(6, "triangular")
    assert len([p for p in cm.pads if p.kind != "ground"]) == 2 * 15 + 6
    assert not pcells.dangling_optical_ports(demo)
    assert overlap_free(demo)


def test_demo_chip_drc(demo):
    assert set(pcells.drc(demo).values()) == {0}, pcells.drc(demo)


def test_yaml_roundtrip():
    pcells.activate_pdk()
    m = pcells.mesh(n=3, kind="triangular")
    yaml_text = m.write_netlist(m.get_netlist())
    c2 = gf.read.from_yaml(yaml_text)
    # the YAML netlist carries the instances (rebuilt from the tapmesh PDK) and the optical ports; the heater
    # lanes and tracks are drawn polygons of the mesh cell, not netlist items
    assert len(list(c2.insts)) == len(list(m.insts))
    assert {i.name for i in m.insts if i.name.startswith(("mzi_c", "gamma_m", "pass_c"))} <= {i.name for i in c2.insts}
    optical = [p for p in m.ports if p.port_type == "optical"]
    for p in optical:
        assert c2.ports[p.name].dcenter == pytest.approx(p.dcenter, abs=1e-3)


def test_plot_layout(chip4, tmp_path):
    out = tmp_path / "chip.png"
    pcells.plot_layout(chip4, out, chip_map=pcells.chip_map(chip4))
    assert out.stat().st_size > 10_000


def test_pcells_imports_no_downstream_package():
    import pathlib
    import re

    root = pathlib.Path(pcells.__file__).parent
    for f in root.glob("*.py"):
        src = f.read_text()
        assert not re.search(r"^\s*(from|import)\s+(circuits|calibration|training|tapmesh)\b", src, re.M), f


@pytest.mark.slow
@pytest.mark.parametrize(("n", "kind"), [(8, "triangular"), (16, "rectangular")])
def test_large_mesh_checks(n, kind):
    c = pcells.chip(n=n, kind=kind)
    cm = pcells.chip_map(c)
    assert len(cm.pads) == n * (n - 1) + n + 2
    assert not pcells.dangling_optical_ports(c)
    assert set(pcells.drc(c).values()) == {0}


def test_chip_map_detects_metal_short():
    inner = pcells.chip(n=2)
    pads = sorted((p for p in inner.ports if p.name.startswith("pad_e")), key=lambda p: p.dcenter[0])
    top = [p for p in pads if p.dcenter[1] > 0]
    assert len(top) >= 2
    c = gf.Component()
    c.add_ref(inner, name="chip")
    (x0, y0), (x1, _) = top[0].dcenter, top[1].dcenter
    c.add_polygon([(x0, y0 - 5), (x1, y0 - 5), (x1, y0 + 5), (x0, y0 + 5)], layer="M3")
    with pytest.raises(pcells.ConnectivityError):
        pcells.chip_map(c)


def test_write_drc_deck(tmp_path):
    text = pcells.write_drc_deck(tmp_path / "tapmesh.drc")
    assert (tmp_path / "tapmesh.drc").read_text() == text
    assert "input(1, 0)" in text and "l1_0.width(0.2.um)" in text
    proc = pcells.get_process()
    assert text.count(".output(") == 2 * len(proc.layer_rules) + 2 * len(proc.enclosures)
    assert "enclosing(" in text
    only = pcells.write_drc_deck(rules=pcells.DRC_RULES)
    assert only.count(".output(") == 2 * len(pcells.DRC_RULES)


@pytest.mark.parametrize("kind", ["rectangular", "triangular"])
def test_balanced_tap_mesh_draws_a_dummy_beside_every_monitor_tap(kind):
    """balanced_taps=True: one dummy tap per MZI bottom input and arm and two per pass-through path (the
    topology's idle segments), the same monitor taps exported as before, DRC-clean, no silicon overlap,
    and the ChipMap says the chip is balanced (calibrate takes the matching model from it)."""
    from tapmesh import circuits

    n = 5
    top = circuits.topology(n, kind)
    plain, balanced = pcells.mesh(n=n, kind=kind), pcells.mesh(n=n, kind=kind, balanced_taps=True)
    assert balanced.info["dummy_taps"] == 2 * top.n_mzis + 2 * top.n_idle and plain.info["dummy_taps"] == 0
    taps = lambda c: sorted(p.name for p in c.ports if p.name.startswith("tap_"))  # noqa: E731
    assert taps(balanced) == taps(plain) and len(taps(plain)) == 2 * top.n_shifters
    assert set(pcells.drc(balanced).values()) == {0}, pcells.drc(balanced)
    assert pcells.overlap_area(balanced, "WG") < 1e-6
    dummies = [r for r in balanced.get_netlist(recursive=True).values()
               for i in r["instances"].values() if i["component"] == "dummy_segment"]
    assert dummies  # drawn as cells of their own, which the layout model reads as grating taps
    chip_map = pcells.chip_map(pcells.chip(n=4, kind=kind, balanced_taps=True))
    assert chip_map.balanced_taps and pcells.ChipMap.from_json(chip_map.to_json()).balanced_taps
    assert not pcells.chip_map(pcells.chip(n=4, kind=kind)).balanced_taps
