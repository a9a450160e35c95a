"""Staggered bond-pad rows on the die edges (``chip(pads="edge", pad_stagger=...)``): the lattice, its rules
(every pad on a line of its own, pads a pad pitch apart), DRC and connectivity from the drawn metal, the
estimate the reticle check judges against the drawn die, and the named errors for a stagger that breaks the rules."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest

from tapmesh import pcells
from tapmesh.pcells import stagger as stag

warnings.filterwarnings("ignore", message="Unconnected ports")

CLEAR50 = stag.clearance(50.0, 3.0, 3.0)  # 50 µm pad, 3 µm track, 3 µm space: 29.5 µm


@pytest.fixture(scope="module")
def edge8():
    return pcells.chip(n=8, pads="edge", pad_stagger="auto")


@pytest.fixture(scope="module")
def aligned8():
    return pcells.chip(n=8, pads="edge")


def _sides(cm):
    ys = [p.position[1] for p in cm.pads]
    mid = (max(ys) + min(ys)) / 2
    return [[p for p in cm.pads if (p.position[1] > mid) == top] for top in (True, False)]


def test_hexagonal_rows_and_the_wrap_around():
    p = stag.plan(200.0, 4, pitch=100.0, size=(50.0, 50.0), track_width=3.0, space=3.0, pad_space=3.0,
                  stagger="auto")
    assert (p.columns, p.rows) == (2, 2) and p.offset == pytest.approx(50.0)
    assert p.row_pitch == pytest.approx(100.0 * math.sqrt(3) / 2, abs=1e-3)  # offset half a pitch: hexagonal
    assert p.field_height < 2 * 100.0  # aligned rows: 2 pitches
    xs = [x for x, _, _ in stag.sites(0.0, p, 4)]
    assert min(np.diff(xs)) >= CLEAR50 and 0 < min(xs) and max(xs) < 200.0  # own lines, inside the stripe
    with pytest.raises(pcells.StaggerError, match="rows 0 and 1 16.5 µm apart"):  # 100 ≡ −16.5 mod 116.5
        stag.plan(466.0, 5, pitch=100.0, size=(50.0, 50.0), track_width=3.0, space=3.0, pad_space=3.0,
                  stagger=100.0)


def test_staggered_edge_chip_is_drc_and_connectivity_clean(edge8, aligned8):
    res = pcells.drc(edge8)
    assert set(res.values()) == {0}, {k: v for k, v in res.items() if v}
    cm = pcells.chip_map(edge8)  # nets from the drawn metal (KLayout LayoutToNetlist)
    h = edge8.info["n_heaters"]
    assert sorted(p.shifter for p in cm.pads if p.kind != "ground") == list(range(h))  # every heater, one pad
    assert len({p.pad for p in cm.pads}) == len(cm.pads) == edge8.info["n_pads"] == aligned8.info["n_pads"]
    assert edge8.info["pad_rows"] == 2 and edge8.info["pad_row_pitch"] < 100.0
    for side in _sides(cm):
        pos = np.array([p.position for p in side])
        xs = np.sort(pos[:, 0])
        assert np.diff(xs).min() >= CLEAR50 - 1e-6  # each pad its own line: track in, bond wire out
        d = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
        assert d[~np.eye(len(pos), dtype=bool)].min() >= 100.0 - 1e-3  # a pad pitch apart in every direction
    aligned_side = _sides(pcells.chip_map(aligned8))[0]
    xs = np.sort([p.position[0] for p in aligned_side])
    assert np.diff(xs).min() < 1e-6  # aligned rows: pads behind pads, no free line to the edge
    assert edge8.info["pad_field_height"] < aligned8.info["pad_field_height"]


def test_estimate_matches_the_drawn_die_aligned_and_staggered():
    # a 250 µm pad pitch makes the pad field, not the fiber array, set the die height
    a = pcells.chip(n=8, pads="edge", pad_pitch=250.0)
    s = pcells.chip(n=8, pads="edge", pad_pitch=250.0, pad_stagger="auto")
    for c in (a, s):
        assert c.info["die_size"] == pytest.approx(c.info["die_estimate"], abs=50.0)
    assert s.info["die_size"][1] < a.info["die_size"][1] - 500.0  # staggered: a smaller die (2.36 vs 3.03 mm)
    assert s.info["die_size"][0] == pytest.approx(a.info["die_size"][0])
    assert set(pcells.drc(s).values()) == {0}
    for side in _sides(pcells.chip_map(s)):
        pos = np.array([p.position for p in side])
        d = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))
        assert d[~np.eye(len(pos), dtype=bool)].min() >= 250.0 - 1e-3  # the rows closer, the pads not


def test_bad_stagger_raises_before_any_geometry(monkeypatch):
    chip_mod = sys.modules["tapmesh.pcells.chip"]

    def no_drawing(*a, **k):
        raise AssertionError("the mesh was drawn before the stagger was checked")

    monkeypatch.setattr(chip_mod, "mesh_cell", no_drawing)
    with pytest.raises(pcells.StaggerError, match=r"needs ≥ 29.5 µm"):
        pcells.chip(n=8, pads="edge", pad_stagger=10.0)  # a track 10 µm from a 50 µm pad's centre
    with pytest.raises(pcells.StaggerError, match="rows 0 and 1"):
        pcells.chip(n=8, pads="edge", pad_stagger=100.0)  # ≡ 16.5 µm mod the 116.5 µm in-row pitch
    with pytest.raises(pcells.StaggerError, match="pads='edge' only"):
        pcells.chip(n=8, pads="bumps", pad_stagger="auto")
    with pytest.raises(pcells.StaggerError, match="expected None, 'auto'"):
        pcells.chip(n=8, pads="edge", pad_stagger="zigzag")
    with pytest.raises(pcells.StaggerError, match=r"pads ≤ 17 µm wide .*none is possible"):
        pcells.chip(n=64, pads="edge", pad_stagger="auto")  # 36 lines per 466 µm stripe: no pad fits
    assert issubclass(pcells.StaggerError, pcells.RuleError)


def test_a_valid_offset_is_built_as_given():
    c = pcells.chip(n=8, pads="edge", pad_stagger=58.0)
    assert c.info["pad_stagger"] == 58.0 and c.info["pad_columns"] == 4
    assert set(pcells.drc(c).values()) == {0}


@pytest.mark.slow
@pytest.mark.parametrize("n", [32])
def test_staggered_reticle_chip(n):
    c = pcells.chip(n=n, pads="edge", pad_stagger="auto", pad_size=(40.0, 50.0))  # 50 µm wide pads: no fit
    assert max(c.info["die_size"]) <= 33_000.0 and min(c.info["die_size"]) <= 26_000.0
    cm = pcells.chip_map(c)
    assert sorted(p.shifter for p in cm.pads if p.kind != "ground") == list(range(c.info["n_heaters"]))
    res = pcells.drc(c)
    assert set(res.values()) == {0}, {k: v for k, v in res.items() if v}
    for side in _sides(cm):
        xs = np.sort([p.position[0] for p in side])
        assert np.diff(xs).min() >= stag.clearance(40.0, 3.0, 3.0) - 1e-6
