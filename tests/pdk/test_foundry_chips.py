"""The same chips on the foundry PDKs (run in each PDK's own environment, skipped where it is not installed):
roles from the PDK, zero violations of the foundry's rules (klayout.db, and the klayout binary where it is
installed), connectivity extracted from the drawn metal per process, the foundry's pads and gratings."""

from __future__ import annotations

import os

import gdsfactory as gf
import klayout.db as kdb
import pytest

from tapmesh import pcells
from tapmesh.pcells import foundry_drc
from tapmesh.pcells.die import fits

PDKS = ["ubcpdk", "cspdk"]


def _use(name):
    pytest.importorskip(name.split(".")[0])
    return pcells.use_pdk(name)


@pytest.fixture(scope="module", params=PDKS)
def chip8(request):
    _use(request.param)
    return pcells.chip(n=8, pdk=request.param)


def test_roles_come_from_the_pdk(chip8):
    pdk = chip8.info["pdk"]
    rules = pcells.get_process(pdk)
    assert gf.get_active_pdk().name == f"tapmesh-{pdk}"
    # heater, routing and floorplan layers of the chip are the foundry's
    ly = chip8.kcl.layout
    drawn = {(ly.get_info(li).layer, ly.get_info(li).datatype) for li in ly.layer_indexes()
             if not kdb.Region(chip8.kdb_cell.begin_shapes_rec(li)).is_empty()}
    want = {"ubcpdk": {(1, 0), (11, 0), (12, 0), (13, 0), (99, 0)}, "cspdk": {(3, 0), (39, 0), (41, 0), (99, 0)}}[pdk]
    assert want <= drawn
    generic_metal = {(47, 0), (45, 0), (49, 0), (44, 0), (43, 0)}  # generic HEATER, M2, MTOP, VIA2, VIA1
    assert not generic_metal & drawn
    assert rules.contact == "overlap"


def test_foundry_drc_clean_n8(chip8):
    res = foundry_drc.run_deck(chip8, chip8.info["pdk"])
    assert res and all(v == 0 for v in res.values()), res
    # the process deck of pcells.checks (width/space/enclosure of the same rules) agrees on the metals; it has
    # no angle limit, so on silicon it also counts the acute corners of curved gratings that the foundry deck's
    # angle_limit(80) does not measure
    res2 = pcells.drc(chip8, process=chip8.info["pdk"])
    assert {k: v for k, v in res2.items() if v and not k.startswith("WG")} == {}, res2


@pytest.mark.skipif(foundry_drc.klayout_binary() is None, reason="klayout binary not installed")
def test_klayout_batch_deck_clean_n8(chip8):
    res = foundry_drc.run_klayout(chip8, foundry_drc.write_deck(chip8.info["pdk"]))
    assert set(res) == {c.name for c in foundry_drc.deck(chip8.info["pdk"])}
    assert all(v == 0 for v in res.values()), res


def test_connectivity_per_process(chip8):
    n_heaters = chip8.info["n_heaters"]
    cmap = pcells.chip_map(chip8)  # routing metals of the process, overlap = one net; raises on short/open
    assert sum(p.kind != "ground" for p in cmap.pads) == n_heaters
    assert sum(p.kind == "ground" for p in cmap.pads) == n_heaters  # one return pad per heater (planar)
    assert len(cmap.pads) == chip8.info["n_pads"] == 2 * n_heaters
    assert {f.role for f in cmap.fibers} == {"input", "output", "loopback"}
    assert sorted(f.mode for f in cmap.fibers if f.role == "input") == list(range(8))


def test_deck_catches_the_pre_issue_geometry():
    """The generic layout's heater contact (2 µm from the strip) and 3 µm lanes on an 8 µm pitch, drawn on
    the foundry's layers: the deck must flag heater-metal spacing and router width/space."""
    pdk = next((p for p in PDKS if _installed(p)), None)
    if pdk is None:
        pytest.skip("no foundry PDK installed")
    _use(pdk)
    bad = pcells.chip(n=2, pdk=pdk, contact_clearance=2.5, lane_width=3.0, lane_pitch=8.0, lane_top=18.0)
    res = foundry_drc.run_deck(bad, pdk)
    heater = {"ubcpdk": "M1", "cspdk": "HEATER"}[pdk]
    router = {"ubcpdk": "M2", "cspdk": "PAD"}[pdk]
    assert res[f"{heater}_space"] > 0 and res[f"{router}_width"] > 0 and res[f"{router}_space"] > 0, res


def _installed(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.skipif(not os.environ.get("TAPMESH_EBEAM_DECK") or foundry_drc.klayout_binary() is None,
                    reason="set TAPMESH_EBEAM_DECK to SiEPIC_EBeam_DRC.lydrc and install klayout")
def test_siepic_ebeam_deck_itself():
    """The foundry's own deck (SiEPIC/SiEPIC_EBeam_PDK klayout/EBeam/drc/SiEPIC_EBeam_DRC.lydrc), batch copy
    with rules untouched, on an n = 4 chip (the deck runs flat: n = 8 takes ~3 min here)."""
    _use("ubcpdk")
    c = pcells.chip(n=4, pdk="ubcpdk")
    res = foundry_drc.run_klayout(c, foundry_drc.batch_foundry_deck(os.environ["TAPMESH_EBEAM_DECK"]))
    assert "M2_M1_overlap" in res and all(v == 0 for v in res.values()), res


def test_missing_role_on_the_foundry_pdk():
    pdk = next((p for p in PDKS if _installed(p)), None)
    if pdk is None:
        pytest.skip("no foundry PDK installed")
    r = _use(pdk)
    with pytest.raises(pcells.MissingRoleError, match="'metal2' \\(lane\\)"):
        pcells.use_pdk(pdk, roles=r.with_roles(lane="metal2", via_heater="via_stack_heater_m2"))


def test_reticle_is_checked_on_the_foundry_pdk():
    pdk = next((p for p in PDKS if _installed(p)), None)
    if pdk is None:
        pytest.skip("no foundry PDK installed")
    _use(pdk)
    with pytest.raises(pcells.LayoutError, match="reticle"):
        pcells.chip(n=32, pdk=pdk)


def test_fanout_fits_the_reticle_at_n16_where_direct_drive_does_not(chip8):
    pdk = chip8.info["pdk"]
    assert chip8.info["pads"] == "fanout"  # the foundry PDKs' default pad option
    with pytest.raises(pcells.ReticleError, match="fits: pads='fanout'"):
        pcells.chip(n=16, pdk=pdk, pads="direct")  # refused before anything is drawn
    c = pcells.chip(n=16, pdk=pdk)
    rules = pcells.get_process(pdk)
    b = c.dbbox()
    assert fits((b.width(), b.height()), rules.reticle), (b.width(), b.height())
    w, h = c.info["die_estimate"]
    assert abs(w - b.width()) < 300 and abs(h - b.height()) < 500
    res = foundry_drc.run_deck(c, pdk)
    assert all(v == 0 for v in res.values()), res
    cmap = pcells.chip_map(c)
    assert sorted(p.shifter for p in cmap.pads if p.kind != "ground") == list(range(c.info["n_heaters"]))


@pytest.mark.parametrize("n", [32])
def test_foundry_drc_clean_n32(n):
    pdks = [p for p in PDKS if _installed(p)]
    if not pdks:
        pytest.skip("no foundry PDK installed")
    for pdk in pdks:
        _use(pdk)
        c = pcells.chip(n=n, pdk=pdk, check_reticle=False)  # the mesh alone is longer than a reticle (README)
        res = foundry_drc.run_deck(c, pdk)
        assert all(v == 0 for v in res.values()), (pdk, res)


@pytest.mark.slow
def test_foundry_drc_clean_n64():
    pdks = [p for p in PDKS if _installed(p)]
    if not pdks:
        pytest.skip("no foundry PDK installed")
    for pdk in pdks:
        _use(pdk)
        c = pcells.chip(n=64, pdk=pdk, check_reticle=False)
        res = foundry_drc.run_deck(c, pdk)
        assert all(v == 0 for v in res.values()), (pdk, res)
        pcells.chip_map(c)


def test_cli_lays_out_on_the_foundry_pdk_with_its_default_pads(tmp_path):
    import json

    from typer.testing import CliRunner

    from tapmesh.cli import app

    pdk = next((p for p in PDKS if _installed(p)), None)
    if pdk is None:
        pytest.skip("no foundry PDK installed")
    res = CliRunner().invoke(app, ["layout", "--pdk", pdk, "--n", "4", "--kind", "rectangular", "--no-png",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    layout = json.loads((tmp_path / "layout.json").read_text())
    assert layout["pdk"] == pdk and layout["pads"] == "fanout"
    assert "die " in res.output
