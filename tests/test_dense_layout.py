"""Chips that fit a reticle: dense heater routing, pad and bump fields, die outline, connectivity from the drawn
metal, the process deck (width, space, enclosure), the reticle check and thermal crosstalk from the layout."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import gdsfactory as gf
import numpy as np
import pytest

from tapmesh import pcells
from tapmesh.circuits import thermal
from tapmesh.pcells import checks, schedule

warnings.filterwarnings("ignore", message="Unconnected ports")


@pytest.fixture(scope="module")
def bumps8():
    return pcells.chip(n=8, pads="bumps")


@pytest.fixture(scope="module")
def map8(bumps8):
    return pcells.chip_map(bumps8)


def test_dense_column_pitch_does_not_grow_with_n():
    a = pcells.mesh(n=4, routing="dense")
    b = pcells.mesh(n=8, routing="dense")
    mzi = pcells.mzi_tapped()
    assert a.info["column_pitch"] == b.info["column_pitch"] == mzi.info["length"]  # no track zone
    z4, z8 = pcells.mesh(n=4), pcells.mesh(n=8)
    assert z8.info["column_pitch"] > z4.info["column_pitch"]  # the zone routing grows with n
    assert b.info["track_pitch"] == pytest.approx(6.5)  # 4 µm via + 3 µm track + 3 µm space (process minimum)


def test_bump_chip_connectivity_from_metal(bumps8, map8):
    h = bumps8.info["n_heaters"]
    signal = [p for p in map8.pads if p.kind != "ground"]
    ground = [p for p in map8.pads if p.kind == "ground"]
    assert sorted(p.shifter for p in signal) == list(range(h))  # every heater on exactly one pad
    assert len({p.pad for p in map8.pads}) == len(map8.pads) == bumps8.info["n_pads"]  # no pad floats
    # shared returns: one per group of ≤ 8 heaters per column half
    assert len(ground) == sum(-(-k // 8) for k in _half_counts(8))
    assert len(map8.heaters) == h and len(map8.taps) == 2 * h


def _half_counts(n):
    mzis = schedule.mzis(n, "rectangular")
    out = []
    for col in range(n + 1):
        k = 2 * sum(1 for c, _ in mzis if c == col) if col < n else n
        out += [-(-k // 2), k // 2]
    return [x for x in out if x]


def test_bump_chip_drc_and_outline(bumps8):
    res = pcells.drc(bumps8)
    assert any(k.endswith(".enclosure") for k in res)
    assert set(res.values()) == {0}, {k: v for k, v in res.items() if v}
    assert checks.drawn_layers_without_rules(bumps8) == []
    w, h = bumps8.info["die_size"]
    fp = gf.kdb.Region(bumps8.kcl.layout.begin_shapes(bumps8.kdb_cell.cell_index(), int(gf.get_layer("FLOORPLAN"))))
    b = fp.bbox().to_dtype(bumps8.kcl.layout.dbu)
    assert (b.width(), b.height()) == pytest.approx((w, h), abs=0.1)
    assert bumps8.dbbox().width() == pytest.approx(w)  # the outline is the outermost shape


def test_edge_pads_sit_on_the_die_edges():
    c = pcells.chip(n=4, pads="edge")
    cm = pcells.chip_map(c)
    top = max(p.position[1] for p in cm.pads)
    b = c.dbbox()
    assert b.top - top <= 100.0 + 50.0 + 1e-6  # outer row: half a pitch inside the field, die margin 100 µm
    assert sorted(p.shifter for p in cm.pads if p.kind != "ground") == list(range(c.info["n_heaters"]))


def test_short_between_bumps_is_caught(bumps8):
    pads = sorted((p for p in bumps8.ports if p.name.startswith("pad_e")), key=lambda p: (p.dcenter[1], p.dcenter[0]))
    a, b = pads[0], pads[1]
    c = gf.Component()
    c.add_ref(bumps8, name="chip")
    (x0, y0), (x1, y1) = a.dcenter, b.dcenter
    c.add_polygon([(x0, y0 - 3), (x1, y0 - 3), (x1, y1 + 3), (x0, y1 + 3)], layer="M3")
    with pytest.raises(pcells.ConnectivityError):
        pcells.chip_map(c)


def test_enclosure_rule_catches_a_via_at_the_metal_edge():
    c = gf.Component()
    c.add_polygon([(0, 0), (10, 0), (10, 10), (0, 10)], layer="M2")
    c.add_polygon([(0, 0), (10, 0), (10, 10), (0, 10)], layer="M3")
    c.add_polygon([(9.5, 5), (10.2, 5), (10.2, 5.7), (9.5, 5.7)], layer="VIA2")  # sticks out of both metals
    c.add_polygon([(0.5, 2), (1.2, 2), (1.2, 2.7), (0.5, 2.7)], layer="VIA2")  # inside, 0.5 µm from the edge
    for engine in ("edges", "region"):
        res = pcells.drc(c, engine=engine)
        assert res["M2/VIA2.enclosure"] == 2 and res["M3/VIA2.enclosure"] == 2, (engine, res)
        assert res["HEATER/VIA1.enclosure"] == 0


def test_bad_pitches_name_the_minimum():
    with pytest.raises(pcells.RuleError, match="minimum 6.5"):
        pcells.mesh(n=4, routing="dense", track_pitch=5.0)
    with pytest.raises(pcells.RuleError, match="minimum 40"):
        pcells.chip(n=4, pads="bumps", pad_pitch=30.0, pad_size=(20.0, 20.0))
    with pytest.raises(pcells.RuleError, match="minimum 100"):
        pcells.chip(n=4, pads="edge", pad_pitch=80.0)
    with pytest.raises(pcells.LayoutError):
        pcells.chip(n=4, pads="wirebond")


def test_oversize_die_raises_before_drawing():
    with pytest.raises(pcells.ReticleError, match="fits: .*bumps"):
        pcells.chip(n=32)  # direct drive: ~75 mm wide
    with pytest.raises(pcells.ReticleError, match="fits"):
        pcells.chip(n=64, pads="bumps", coupler_dx=60.0)  # 35 mm of columns


def test_dense_mesh_model_matches_zone_mesh():
    from tapmesh.circuits.layout import sax_circuit_from_component

    rng = np.random.default_rng(1)
    a = sax_circuit_from_component(pcells.mesh(n=2, routing="dense", trenches=True), loss_db_cm=0.0)
    phases = rng.uniform(0, 2 * np.pi, len(a.shifters))
    b = sax_circuit_from_component(pcells.mesh(n=2), loss_db_cm=0.0)
    u, v = a.matrix(phases=phases), b.matrix(phases=phases)
    g = np.vdot(v.ravel(), u.ravel())
    np.testing.assert_allclose(u, g / abs(g) * v, atol=1e-9)  # routing and trenches leave the optics alone


# ----------------------------------------------------------------------------- thermal crosstalk
def test_overlap_integral_against_quadrature():
    x = np.linspace(0, 100, 1501)
    y = np.linspace(130, 230, 1501)
    k = np.exp(-np.abs(x[:, None] - y[None, :]) / 20.0)
    brute = np.trapezoid(np.trapezoid(k, y), x)
    assert thermal.overlap_integral(0, 100, 130, 230, 20.0) == pytest.approx(brute, rel=1e-5)


def test_crosstalk_decays_and_trenches_cut_it():
    pos = np.array([[50.0, 0.0], [50.0, 50.0], [50.0, 100.0], [400.0, 0.0]])
    x = thermal.crosstalk_matrix(pos, [100.0] * 4, thermal_length=25.0)
    assert np.allclose(np.diag(x), 0) and np.allclose(x, x.T)
    assert x[1, 0] == pytest.approx(np.exp(-2.0))  # stacked, full overlap: exp(−Δy/ℓ)
    assert x[2, 0] == pytest.approx(np.exp(-4.0)) and x[3, 0] < 1e-4
    t = thermal.crosstalk_matrix(pos, [100.0] * 4, thermal_length=25.0, trenches=[[10, 20, 90, 23]],
                                 trench_transmission=0.3)
    assert t[1, 0] == pytest.approx(0.3 * x[1, 0]) and t[2, 0] == pytest.approx(0.3 * x[2, 0])
    assert t[2, 1] == pytest.approx(x[2, 1])  # this pair's line does not cross the trench
    with pytest.raises(ValueError):
        thermal.crosstalk_pairs(pos, 100.0, thermal_length=0.0)


def test_crosstalk_from_the_chip_map():
    plain = pcells.chip_map(pcells.mesh(n=4, routing="dense"))
    trench = pcells.chip_map(pcells.mesh(n=4, routing="dense", trenches=True))
    assert len(trench.trenches) == len(trench.heaters) and not plain.trenches
    pos, length = plain.heater_positions()
    assert pos.shape == (len(plain.heaters), 2) and np.all(length == 100.0)
    j, i, v = thermal.crosstalk_from_chip_map(plain)
    jt, it, vt = thermal.crosstalk_from_chip_map(trench)
    assert v.max() > vt.max()  # trenches beside the heaters shorten the coupling
    pairs = thermal.neighbour_pairs_from_chip_map(plain, threshold=1e-3)
    assert len(pairs) and np.all(pairs[:, 0] != pairs[:, 1])
    back = pcells.ChipMap.from_json(trench.to_json())
    assert back.heaters == trench.heaters and back.trenches == trench.trenches


# ----------------------------------------------------------------------------- KLayout binary (optional)
@pytest.mark.skipif(shutil.which("klayout") is None, reason="KLayout binary not installed")
def test_klayout_batch_deck_is_clean(tmp_path):
    c = pcells.chip(n=2, pads="bumps")
    gds = tmp_path / "chip.gds"
    c.write_gds(gds, with_metadata=False)
    deck = tmp_path / "tapmesh.drc"
    pcells.write_drc_deck(deck)
    report = tmp_path / "drc.lyrdb"
    subprocess.run(["klayout", "-b", "-r", str(deck), "-rd", f"input={gds}", "-rd", f"report={report}"],
                   check=True, capture_output=True, timeout=300)
    text = report.read_text()
    assert "<items>" in text or "<items/>" in text
    assert "<item>" not in text  # no violation markers
    bad = gf.Component()
    bad.add_polygon([(0, 0), (10, 0), (10, 0.1), (0, 0.1)], layer="WG")  # 0.1 µm sliver
    bad.write_gds(tmp_path / "bad.gds", with_metadata=False)
    subprocess.run(["klayout", "-b", "-r", str(deck), "-rd", f"input={tmp_path / 'bad.gds'}", "-rd",
                    f"report={tmp_path / 'bad.lyrdb'}"], check=True, capture_output=True, timeout=300)
    assert "'WG.width'" in (tmp_path / "bad.lyrdb").read_text() and "<item>" in (tmp_path / "bad.lyrdb").read_text()


# ----------------------------------------------------------------------------- reticle-size chips (slow)
@pytest.mark.slow
@pytest.mark.parametrize("n", [32, 64])
def test_reticle_chip(n):
    c = pcells.chip(n=n, pads="bumps")
    w, h = c.info["die_size"]
    assert sorted((w, h)) <= [26_000.0, 33_000.0] and max(w, h) <= 33_000.0 and min(w, h) <= 26_000.0
    cm = pcells.chip_map(c)
    assert sorted(p.shifter for p in cm.pads if p.kind != "ground") == list(range(c.info["n_heaters"]))
    assert set(pcells.drc(c).values()) == {0}


def test_asbuilt_crosstalk_from_chip_map():
    from tapmesh import circuits
    from tapmesh.calibration import AsBuilt, VirtualChip

    cm = pcells.chip_map(pcells.mesh(n=4, routing="dense"))
    topo = circuits.rectangular(4)
    truth = AsBuilt.random(topo, seed=3, crosstalk_from=cm)
    j, i, v = thermal.crosstalk_from_chip_map(cm)
    x = truth.crosstalk
    assert np.all(np.diag(x) == 0)
    assert np.count_nonzero(x) == len(v)
    np.testing.assert_allclose(x[j, i] / v, 1.0, atol=0.2 * 6)  # the layout's couplings, 20 % scatter
    big = np.unravel_index(np.argmax(x), x.shape)
    pos, _ = cm.heater_positions()
    d = np.abs(pos[big[0]] - pos[big[1]])
    assert d[1] <= 100.0  # the strongest coupling is between heaters drawn next to each other
    volts = np.zeros(topo.n_shifters)
    volts[big[1]] = 2.0  # heat one heater: its layout neighbour warms by α·X·P
    dphi = truth.phases(volts) - truth.phases(np.zeros_like(volts))
    assert dphi[big[0]] == pytest.approx(truth.alpha[big[0]] * x[big] * 4.0)
    VirtualChip(topo, errors=truth, seed=0)  # a simulated chip takes it as its truth
    with pytest.raises(ValueError, match="heater positions"):
        AsBuilt.random(circuits.rectangular(3), crosstalk_from=cm)
