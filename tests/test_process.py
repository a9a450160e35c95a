"""Process rules as data: the generic instance is derived from the active PDK, lookups alias layer names."""

import pytest

from tapmesh import pcells
from tapmesh.pcells import process as P


def test_generic_process_from_pdk():
    r = pcells.get_process("generic")
    assert r.contact == "via"
    assert r.routers == ("M2", "M3") and r.vias == ("VIA2",)
    assert r.min_pitch("MTOP") == r.min_pitch("M3") == 6.0  # MTOP aliases M3 in the generic PDK
    assert r.enclosure("M3", "VIA2") == 1.0  # from the via2 cell
    assert r.connectivity() == (("M2", "M3"), ("VIA2",))
    assert hash(r) == hash(pcells.get_process("generic"))


def test_bad_process_rules():
    with pytest.raises(pcells.ProcessError):
        pcells.get_process("no-such-process")
    with pytest.raises(pcells.ProcessError):
        P.ProcessRules(name="x", contact="glue")
    with pytest.raises(pcells.ProcessError):
        P.ProcessRules(name="x", routers=("M1", "M2"), vias=())
    with pytest.raises(pcells.ProcessError):
        pcells.get_process().rule("WGN")


def test_register_overlap_process():
    r = P.ProcessRules(name="two-metal", heater="M1", routers=("M2",), vias=(), heater_via=None, contact="overlap",
                       contact_overlap=3.0, layer_rules=(P.LayerRule("M2", 5.0, 8.0),))
    pcells.register_process(r)
    assert pcells.get_process("two-metal").connectivity() == (("M2",), ())
    assert pcells.get_process("two-metal").min_pitch("M2") == 13.0
