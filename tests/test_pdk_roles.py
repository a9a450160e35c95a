"""PDK selection and roles on the generic PDK (runs everywhere): named errors, the generic roles unchanged,
foundry process rules registered, the DRC deck as data and as a KLayout script."""

from __future__ import annotations

import importlib.util

import pytest

from tapmesh import pcells
from tapmesh.pcells import foundry_drc, roles
from tapmesh.pcells.process import get_process


def test_unknown_pdk_lists_known():
    with pytest.raises(pcells.UnknownPdkError, match="known: \\['cspdk', 'generic', 'ubcpdk'\\]"):
        pcells.chip(n=4, pdk="nopdk")


@pytest.mark.parametrize("name", ["ubcpdk", "cspdk"])
def test_missing_pdk_names_its_extra(name):
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed here")
    with pytest.raises(pcells.PdkNotInstalledError, match=rf"pip install 'tapmesh\[{name}\]'"):
        pcells.use_pdk(name)


def test_missing_roles_are_all_listed():
    bad = pcells.active_roles().with_roles(lane="metal9", pad="no_pad", layers=("WG", "NOLAYER"))
    with pytest.raises(pcells.MissingRoleError) as err:
        pcells.use_pdk("generic", roles=bad)
    msg = str(err.value)
    for part in ("'metal9' (lane)", "'no_pad' (pad)", "'NOLAYER'"):
        assert part in msg
    assert isinstance(err.value, ValueError)


def test_generic_roles_keep_the_generic_chip():
    assert pcells.chip(n=4, pdk="generic") is pcells.chip(n=4)
    r = pcells.active_roles()
    assert (r.pdk, r.lane, r.track, r.shared_return) == ("generic", "metal2", "metal3", True)


def test_bad_pdk_type():
    with pytest.raises(TypeError, match="pdk must be"):
        pcells.use_pdk(42)


def test_foundry_processes_registered():
    ebeam = get_process("ubcpdk")
    assert ebeam.contact == "overlap" and ebeam.vias == () and ebeam.routers == ("M2_ROUTER",)
    assert (ebeam.min_width("M1_HEATER"), ebeam.min_space("M2_ROUTER")) == (3.0, 8.0)
    cs = get_process("cspdk")
    assert cs.routers == ("PAD",) and cs.contact == "overlap"


def test_ebeam_deck_as_data_and_script():
    checks = {c.name: c for c in foundry_drc.deck("ubcpdk")}
    assert set(checks) == {"Si_width", "Si_space", "M1_width", "M1_space", "M2_width", "M2_space",
                           "MLOpen_width", "MLOpen_space", "M2_M1_overlap", "Boundary"}
    assert checks["M2_space"].value == pytest.approx(8.0 - 1e-3)
    assert checks["Si_width"].angle_limit == 80.0
    # the script's layer numbers come from the active PDK: only check its structure here
    text = foundry_drc.write_deck(foundry_drc.deck("generic"))
    assert text.startswith("# tapmesh DRC deck") and "source($input)" in text and "$report" in text


def test_batch_foundry_deck_keeps_rules():
    macro = ('<?xml version="1.0"?><klayout-macro><text>report("EBeam DRC")\nL=input(11,0)\n'
             'L.width(3.0-tol, angle_limit(70)).output("M1_width","M1 &lt; 3")</text></klayout-macro>')
    body = foundry_drc.batch_foundry_deck(macro)
    assert body.splitlines()[:2] == ["source($input)", 'report("EBeam DRC", $report)']
    assert 'L.width(3.0-tol, angle_limit(70)).output("M1_width","M1 < 3")' in body


def test_role_kwargs_caller_wins():
    r = pcells.active_roles().with_roles(layout={"pitch": 99.0, "lane_width": 4.0})
    out = roles.role_kwargs(r, {"pitch", "lane_width", "cross_section"}, {"pitch": 70.0})
    assert out == {"pitch": 70.0, "lane_width": 4.0, "cross_section": "strip"}


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tapmesh", *args], capture_output=True, text=True, timeout=300)


def _one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_cli_unknown_pdk_lists_known(tmp_path):
    line = _one_line(_cli("layout", "--pdk", "nopdk", "--out", str(tmp_path)))
    assert "nopdk" in line and "cspdk, generic, ubcpdk" in line
    assert not any(tmp_path.iterdir())


def test_cli_missing_pdk_names_its_extra(tmp_path):
    name = next((n for n in ("ubcpdk", "cspdk") if importlib.util.find_spec(n) is None), None)
    if name is None:
        pytest.skip("both foundry PDKs are installed here")
    line = _one_line(_cli("layout", "--pdk", name, "--out", str(tmp_path)))
    assert f"pip install 'tapmesh[{name}]'" in line
