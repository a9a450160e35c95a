"""The foundry PDKs tapmesh lays out on: ubcpdk (SiEPIC EBeam) and cspdk (CORNERSTONE si220) — their roles,
their process rules and the layout parameters that satisfy those rules.

Both processes contact by overlap (EBeam: M2 on M1; si220: PAD on HEATER) and have no via layer, so their
routing must be planar: every heater gets its own signal and return track and pad, and no two nets' metals
cross. Rule sources are listed per process below and in docs/pcells.md ("Foundry PDKs").
"""

from __future__ import annotations

from .process import EnclosureRule, LayerRule, ProcessRules, register_process
from .roles import Roles, register_roles

# ---- SiEPIC EBeam (ubcpdk 3.3): rules of the public SiEPIC EBeam KLayout deck
# (SiEPIC/SiEPIC_EBeam_PDK, klayout/EBeam/drc/SiEPIC_EBeam_DRC.lydrc), transcribed as data.
EBEAM_TOL = 1e-3
"""The deck subtracts 1 nm from every minimum ("users typically shoot for exactly the min features")."""


def ubcpdk_process() -> ProcessRules:
    """SiEPIC EBeam: Si 1/0, M1 heater 11/0, M2 router 12/0 (contacts M1 by overlap), pad opening 13/0, floorplan 99/0."""
    return ProcessRules(
        name="ubcpdk",
        waveguide="WG",
        heater="M1_HEATER",
        routers=("M2_ROUTER",),
        vias=(),
        heater_via=None,
        contact="overlap",
        contact_overlap=3.0,
        layer_rules=(
            LayerRule("WG", 0.06, 0.07),
            LayerRule("M1_HEATER", 3.0, 3.0),
            LayerRule("M2_ROUTER", 5.0, 8.0),
            LayerRule("PAD_OPEN", 10.0, 10.0),
        ),
        enclosures=(EnclosureRule("M2_ROUTER", "PAD_OPEN", 0.0),),
        pad_open="PAD_OPEN",
        pad_open_inset=1.8,
        floorplan="FLOORPLAN",
        deep_trench=None,
        min_pad_pitch=125.0,
        min_bump_pitch=125.0,
        cross_section_heater="heater_metal",
        cross_section_lane="metal_routing",
        cross_section_track="metal_routing",
        via_heater=None,
        via_track=None,
        notes=(
            "SiEPIC_EBeam_DRC.lydrc: Si width 60 nm (angle_limit 80), space 70 nm; M1 3/3 µm (width angle_limit 70);"
            " M2 5 µm width (angle_limit 70) / 8 µm space; MLOpen 10/10 µm; M2 overlaps M1 by ≥ 3 µm;"
            " Si outside the floorplan (99) is an error; all minima less 1 nm",
        ),
    )


def ubcpdk_roles() -> Roles:
    """ubcpdk's parts: strip, M1 heater (4 µm), M2 ``metal_routing`` for lanes and tracks, its 90 µm pad with
    a PAD_OPEN window, the ``ebeam_gc_te1550`` fiber grating (no fiber port: the chip places one), floorplan."""
    return Roles(
        pdk="ubcpdk",
        process="ubcpdk",
        waveguide="strip",
        heater="heater_metal",
        lane="metal_routing",
        track="metal_routing",
        via_heater=None,
        via_track=None,
        pad="pad",
        pad_open=None,  # ubcpdk's pad draws its own 86.4 µm PAD_OPEN window
        fiber_coupler="ebeam_gc_te1550",
        fiber_wg_port="o1",
        fiber_port=None,
        edge_coupler="edge_coupler",
        floorplan="FLOORPLAN",
        label="TEXT",
        layers=("WG", "M1_HEATER", "M2_ROUTER", "PAD_OPEN", "FLOORPLAN"),
        shared_return=False,
        layout=dict(
            pads="fanout",  # planar: direct drive is wider than a reticle from n = 16 (46 mm), fan-out is 16 mm
            pitch=127.0,  # = the fiber pitch: straight fan-in
            coupler_dx=90.0,
            contact_size=10.0,
            contact_clearance=6.0,  # heater strip (±2 µm) to contact: 4 µm ≥ M1 space 3
            lane_width=6.0,
            lane_pitch=16.0,  # 10 µm M2 space ≥ 8
            lane_top=30.0,  # contact bottom (16 µm) to the first lane's edge: 11 µm ≥ 8
            track_width=6.0,
            via_size=6.0,
            pad_pitch=125.0,
            track_pitch=125.0,
            pad_size=(90.0, 90.0),
            fiber_pitch=127.0,
        ),
    )


# ---- CORNERSTONE si220 (cspdk 1.4): cspdk ships no DRC deck. The values below are the PDK's own drawn minima
# (cspdk.si220.cband.tech.TECH: strip width 0.45 µm, coupler gap 0.27 µm, heater 2.5 µm, metal 10 µm), used as
# width and space rules; CORNERSTONE's design manual was not available here to confirm them.


def cspdk_process() -> ProcessRules:
    """CORNERSTONE si220: WG 3/0, SLAB 5/0, TiN HEATER 39/0, PAD 41/0 (the only routing metal, contacts the
    heater by overlap), floorplan 99/0, no pad-opening layer."""
    return ProcessRules(
        name="cspdk",
        waveguide="WG",
        heater="HEATER",
        routers=("PAD",),
        vias=(),
        heater_via=None,
        contact="overlap",
        contact_overlap=3.0,
        layer_rules=(
            LayerRule("WG", 0.2, 0.25),
            LayerRule("HEATER", 2.5, 2.5),
            LayerRule("PAD", 10.0, 10.0),
        ),
        enclosures=(),
        pad_open=None,
        pad_open_inset=0.0,
        floorplan="FLOORPLAN",
        deep_trench=None,
        min_pad_pitch=150.0,
        min_bump_pitch=150.0,
        cross_section_heater="heater_metal",
        cross_section_lane="metal_routing",
        cross_section_track="metal_routing",
        via_heater=None,
        via_track=None,
        notes=(
            "no public deck: widths/spaces are cspdk's TECH minima (heater 2.5, metal 10 µm), WG 0.2 µm width and"
            " 0.25 µm space (below TECH.gap_strip 0.27), heater–pad overlap 3 µm; all assumed, not from the manual",
        ),
    )


def cspdk_roles() -> Roles:
    """cspdk's parts: strip, TiN ``heater_metal`` (2.5 µm), PAD ``metal_routing`` for lanes, tracks and pads, its
    90 µm pad, ``grating_coupler_elliptical`` (fiber port ``o2``), floorplan, label layer LBL."""
    return Roles(
        pdk="cspdk",
        process="cspdk",
        waveguide="strip",
        heater="heater_metal",
        lane="metal_routing",
        track="metal_routing",
        via_heater=None,
        via_track=None,
        pad="pad",
        pad_open=None,
        fiber_coupler="grating_coupler_elliptical",
        fiber_wg_port="o1",
        fiber_port="o2",
        edge_coupler="edge_coupler",
        floorplan="FLOORPLAN",
        label="LBL",
        layers=("WG", "HEATER", "PAD", "FLOORPLAN"),
        shared_return=False,
        layout=dict(
            pads="fanout",
            pitch=150.0,
            coupler_dx=120.0,
            dc_gap=0.27,
            contact_size=14.0,
            contact_clearance=5.0,  # heater strip (±1.25 µm) to contact: 3.75 µm ≥ 2.5
            lane_width=12.0,
            lane_pitch=24.0,  # 12 µm PAD space ≥ 10
            lane_top=36.0,  # contact bottom (19 µm) to the first lane's edge: 11 µm ≥ 10
            track_width=12.0,
            via_size=12.0,
            pad_pitch=150.0,
            track_pitch=150.0,
            pad_size=(90.0, 90.0),
            fiber_pitch=127.0,
        ),
    )


register_process(ubcpdk_process, "ubcpdk")
register_process(cspdk_process, "cspdk")
register_roles("ubcpdk", ubcpdk_roles)
register_roles("cspdk", cspdk_roles)
