"""Planar fan-out pads (``pads="fanout"``): the compact staircase never crosses, the chip is clean and smaller
than direct drive, its pads map to every heater, the die estimate matches the drawing, and dense routing is
refused on a process whose metals contact wherever they overlap."""

from __future__ import annotations

import warnings

import gdsfactory as gf
import klayout.db as kdb
import numpy as np
import pytest

from tapmesh import pcells
from tapmesh.pcells import fanout, get_process
from tapmesh.pcells.die import fits
from tapmesh.pcells.routing import slot_pitch, stair_levels, staircase

warnings.filterwarnings("ignore", message="Unconnected ports")


@pytest.fixture(scope="module")
def fan4():
    return pcells.chip(n=4, kind="rectangular", pads="fanout")


def _pieces(c: gf.Component, layer) -> int:
    li = c.kcl.layout.layer(*layer)
    return kdb.Region(c.kdb_cell.begin_shapes_rec(li)).merged().count()


@pytest.mark.parametrize("seed", range(6))
def test_staircase_tracks_never_touch(seed):
    """Random order-preserving fans (targets spread, bunched, or left where they are): every track one piece of
    metal of its own, and tracks whose jogs are apart share a level."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 30))
    pitch, width = 6.0, 3.0
    sources = np.cumsum(rng.uniform(pitch, 3 * pitch, k))
    targets = np.sort(rng.uniform(sources.min() - 200, sources.max() + 200, k))
    targets = targets[0] + np.concatenate([[0.0], np.cumsum(np.maximum(np.diff(targets), pitch))])
    if seed == 0:
        targets = sources.copy()  # no jog at all
    c = gf.Component()
    layer = (45, 0)
    y_end = staircase(c, list(sources), list(targets), 0.0, 1, pitch, width, layer)
    for s in targets:  # continue each track vertically, as the fan-out does, so ends are comparable
        c.add_polygon([(s - width / 2, y_end), (s + width / 2, y_end), (s + width / 2, y_end + 10),
                       (s - width / 2, y_end + 10)], layer=layer)
    for s in sources:
        c.add_polygon([(s - width / 2, -10), (s + width / 2, -10), (s + width / 2, 0), (s - width / 2, 0)],
                      layer=layer)
    assert _pieces(c, layer) == k
    levels = stair_levels(list(sources), list(targets), pitch)
    assert max(levels.values(), default=-1) + 1 <= k


def test_staircase_shares_levels_between_jogs_that_are_apart():
    # short jogs east, each ending more than a pitch before the next track's source: one level for all
    sources = [0.0, 20.0, 40.0, 1000.0, 1020.0, 1040.0]
    levels = stair_levels(sources, [s + 5.0 for s in sources], pitch=6.0)
    assert set(levels.values()) == {0}
    # a jog that ends within a pitch of the next source must pass above that track's turn
    levels = stair_levels([0.0, 10.0], [5.0, 15.0], pitch=6.0)
    assert levels[(0.0, 5.0)] == 1 + levels[(10.0, 15.0)]
    crowded = stair_levels([0.0, 6.0, 12.0], [100.0, 106.0, 112.0], pitch=6.0)
    assert sorted(crowded.values()) == [0, 1, 2]  # each jog passes over the sources east of it


def test_fanout_chip_is_clean_and_maps_every_heater(fan4):
    res = pcells.drc(fan4)
    assert all(v == 0 for v in res.values()), {k: v for k, v in res.items() if v}
    cmap = pcells.chip_map(fan4)
    h = fan4.info["n_heaters"]
    assert sorted(p.shifter for p in cmap.pads if p.kind != "ground") == list(range(h))
    assert len(cmap.pads) == fan4.info["n_pads"]
    assert fan4.info["pad_rows"] >= 1


def test_fanout_estimate_matches_the_drawing(fan4):
    b = fan4.dbbox()
    w, h = fan4.info["die_estimate"]
    drawn_w, drawn_h = b.width(), b.height()
    assert abs(w - drawn_w) < 300 and abs(h - drawn_h) < 500, ((w, h), (drawn_w, drawn_h))


def test_fanout_is_smaller_than_direct_and_fits_at_n16():
    kw = dict(n=16, kind="rectangular")
    direct = pcells.chip(**kw)
    fan = pcells.chip(**kw, pads="fanout")
    area = {k: c.dbbox().width() * c.dbbox().height() for k, c in (("direct", direct), ("fanout", fan))}
    assert area["fanout"] < 0.9 * area["direct"], area
    assert fan.dbbox().width() < direct.dbbox().width()
    assert fits((fan.dbbox().width(), fan.dbbox().height()), get_process("generic").reticle)


def test_dense_pads_are_refused_on_an_overlap_process():
    rules = get_process("ubcpdk")  # process rules are data: no PDK install needed
    assert rules.contact == "overlap"
    for pads in ("edge", "bumps"):
        with pytest.raises(pcells.ProcessError, match="fanout"):
            pcells.chip(n=4, pads=pads, process="ubcpdk")


def test_the_foundry_pdks_default_to_fanout_pads():
    assert pcells.default_pads("generic") == "direct"
    assert pcells.default_pads("ubcpdk") == pcells.default_pads("cspdk") == "fanout"
    with pytest.raises(pcells.UnknownPdkError, match="known"):
        pcells.default_pads("nope")


def test_zone_pitch_follows_the_process():
    generic = get_process("generic")
    ebeam = get_process("ubcpdk")
    assert fanout.zone_pitch(ebeam, 6.0, shared_return=False) == 6.0 + ebeam.min_space(ebeam.track_metal)
    # a via process: a lane-to-track via beside the next track
    assert fanout.zone_pitch(generic, 5.0, shared_return=True) == slot_pitch(5.0, fanout.ZONE_VIA,
                                                                             generic.min_space(generic.track_metal))
