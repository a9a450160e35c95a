"""Leaf and MZI cells of a tapped mesh: grating tap, contacted heater, 2x2 couplers and their path twins, MZI.

Conventions (shared with ``circuits.models``): lengths in µm; 2x2 ports ``o1`` bottom-left, ``o2`` top-left,
``o3`` top-right, ``o4`` bottom-right; straight elements ``o1`` west → ``o2`` east; a grating tap has ``o1``/``o2``
on the bus and ``o3`` (forward: light travelling o1→o2 leaves here) / ``o4`` (backward) at its two gratings.
Heaters have electrical contacts ``e1`` (west, signal) and ``e2`` (east, return).

Every cell records in ``info`` what the layout-extracted model needs (``length``, ``path_length``,
``tap_fraction`` …), so the SAX model is built from the drawn geometry.
"""

from __future__ import annotations

import math

import gdsfactory as gf

from .couplers import COUPLER_KINDS, coupler_dc, coupler_mmi, coupler_pair, coupler_twin  # noqa: F401 (re-exported)
from .errors import PitchError, TapFractionError
from .geometry import _rect, xs_layer  # noqa: F401 (re-exported: the other cell modules import them from here)

PDK_CELLS = (
    "tap_grating",
    "grating_tap",
    "heater",
    "coupler_dc",
    "coupler_mmi",
    "coupler_twin",
    "tapped_segment",
    "dummy_segment",
    "mzi_tapped",
    "phase_shifter_tapped",
    "via_stack_m2_m3",
)


@gf.cell
def tap_grating(
    n_periods: int = 8,
    period: float = 0.63,
    width_grating: float = 4.0,
    length_taper: float = 8.0,
    cross_section="strip",
) -> gf.Component:
    """Compact camera-monitor grating (a short rectangular grating, no slab): port ``o1`` waveguide, ``o2`` vertical."""
    xs_layer(cross_section)
    return gf.components.grating_coupler_rectangular(
        n_periods=n_periods,
        period=period,
        width_grating=width_grating,
        length_taper=length_taper,
        layer_slab=None,
        cross_section=cross_section,
    )


@gf.cell
def grating_tap(
    tap_fraction: float = 0.02,
    gap: float = 0.3,
    coupling_rate: float = 0.02,
    radius: float = 10.0,
    cross_section="strip",
    grating="tap_grating",
) -> gf.Component:
    """Bidirectional grating tap: a weak directional coupler whose drop guide ends in two gratings.

    The drop guide runs parallel to the bus (above it, +y) over the coupling length
    ``L = asin(√t) / coupling_rate``; each of its ends turns north into a grating. Light on the bus going
    west→east couples into the drop guide going east and leaves through the east grating (``o3``, forward);
    light going east→west leaves through the west grating (``o4``, backward).

    Args:
        tap_fraction: tapped power fraction t at the design wavelength (0.01–0.05).
        gap: bus–drop edge-to-edge gap, µm.
        coupling_rate: nominal field coupling rate of the gap, rad/µm (calibrate per process).
        radius: bend radius of the drop guide, µm.
        cross_section: waveguide cross-section.
        grating: component spec of the monitor grating (port ``o1`` waveguide, ``o2`` vertical).
    """
    if not 0.01 <= tap_fraction <= 0.05:
        raise TapFractionError(f"tap_fraction={tap_fraction} outside 0.01..0.05")
    xs = xs_layer(cross_section)
    width = xs.width
    kappa = math.asin(math.sqrt(tap_fraction))
    lc = round(kappa / coupling_rate, 3)
    x1 = radius + 3.0
    length = round(lc + 2 * radius + 6.0, 3)
    c = gf.Component()
    bus = c << gf.components.straight(length=length, cross_section=cross_section)
    drop = c << gf.components.straight(length=lc, cross_section=cross_section)
    drop.dmove((x1, width + gap))
    bend = gf.components.bend_euler(radius=radius, cross_section=cross_section)
    b_fwd = c << bend
    b_fwd.connect("o1", drop.ports["o2"])
    b_bwd = c << bend
    b_bwd.connect("o2", drop.ports["o1"])
    g = gf.get_component(grating)
    g_fwd = c << g
    g_fwd.connect("o1", b_fwd.ports["o2"])
    g_bwd = c << g
    g_bwd.connect("o1", b_bwd.ports["o1"])
    c.add_port("o1", port=bus.ports["o1"])
    c.add_port("o2", port=bus.ports["o2"])
    c.add_port("o3", port=g_fwd.ports["o2"])
    c.add_port("o4", port=g_bwd.ports["o2"])
    c.info["length"] = length
    c.info["tap_fraction"] = tap_fraction
    c.info["coupling_length"] = lc
    return c


@gf.cell
def heater(
    length: float = 100.0,
    contact_size: float = 10.0,
    contact_clearance: float = 4.0,
    cross_section="strip",
    cross_section_heater="heater_metal",
    via_stack="via_stack_heater_m2",
    cross_section_contact="metal2",
) -> gf.Component:
    """Thermo-optic phase shifter: a straight waveguide under a heater strip, contacted from below (−y).

    The heater strip covers the waveguide over ``length``; at each end a heater-metal leg drops to a via
    stack (``contact_size`` square, its top ``contact_clearance`` µm below the waveguide) whose bottom edge
    carries the electrical port: ``e1`` west (signal), ``e2`` east (return). With ``via_stack=None`` (a process
    that contacts by overlap) the contact is a heater-metal square under a square of the metal of
    ``cross_section_contact``.
    """
    xs = xs_layer(cross_section)
    xh = xs_layer(cross_section_heater)
    if length < 2 * contact_size + 2:
        raise PitchError(f"heater length {length} µm shorter than its two contacts ({2 * contact_size + 2} µm)")
    c = gf.Component()
    wg = c << gf.components.straight(length=length, cross_section=xs)
    hw = xh.width
    _rect(c, 0, length, -hw / 2, hw / 2, xh.layer)
    drop = contact_clearance + contact_size / 2
    if via_stack is not None:
        vs = gf.get_component(via_stack, size=(contact_size, contact_size))
    else:  # overlap contact: the router metal drawn over a heater-metal square of the same size
        port_layer = gf.get_layer(xs_layer(cross_section_contact).layer)
    for name, x in (("e1", contact_size / 2), ("e2", length - contact_size / 2)):
        _rect(c, x - hw / 2, x + hw / 2, -drop, 0, xh.layer)
        if via_stack is not None:
            v = c << vs
            v.dmove((x, -drop))
            port_layer = v.ports["e4"].layer
        else:
            s = contact_size / 2
            for layer in (xh.layer, port_layer):
                _rect(c, x - s, x + s, -drop - s, -drop + s, layer)
        c.add_port(
            name,
            center=(x, -drop - contact_size / 2),
            width=contact_size,
            orientation=270,
            layer=port_layer,
            port_type="electrical",
        )
    c.add_port("o1", port=wg.ports["o1"])
    c.add_port("o2", port=wg.ports["o2"])
    c.info["length"] = length
    return c


def _add_lanes(
    c: gf.Component,
    contacts: list,
    x_end: float,
    y_first: float,
    lane_pitch: float,
    lane_width: float,
    layer,
) -> None:
    """Route heater contacts (ports facing −y) to the east edge on lanes below them, as a non-crossing staircase.

    The westmost contact takes the deepest lane; lane i ends in port ``e{i+1}`` at ``x_end``. Returns the x
    (µm) where each lane starts (its contact), the west end of the span a router may tap it in.
    """
    k = len(contacts)
    starts = []
    for i, p in enumerate(contacts):
        x, y = p.dcenter
        y_lane = y_first - (k - 1 - i) * lane_pitch
        _rect(c, x - lane_width / 2, x + lane_width / 2, y_lane - lane_width / 2, y + lane_width / 2, layer)
        _rect(c, x - lane_width / 2, x_end, y_lane - lane_width / 2, y_lane + lane_width / 2, layer)
        starts.append(round(x + lane_width / 2, 3))
        c.add_port(
            f"e{i + 1}",
            center=(x_end, y_lane),
            width=lane_width,
            orientation=0,
            layer=layer,
            port_type="electrical",
        )
    return starts


@gf.cell
def tapped_segment(
    heater_length: float = 100.0,
    tap_fraction: float = 0.02,
    cross_section="strip",
    cross_section_heater="heater_metal",
    tap="grating_tap",
    contact_size: float = 10.0,
    contact_clearance: float = 4.0,
    via_heater="via_stack_heater_m2",
    cross_section_contact="metal2",
) -> gf.Component:
    """A heated waveguide segment with its grating tap: [tap][heater], ports o1/o2 bus, o3/o4 tap, e1/e2 heater.

    ``contact_size``, ``contact_clearance``, ``via_heater`` and ``cross_section_contact`` go to :func:`heater`.
    """
    c = gf.Component()
    t = c.add_ref(gf.get_component(tap, tap_fraction=tap_fraction, cross_section=cross_section), name="tap")
    h = c.add_ref(
        heater(
            length=heater_length, contact_size=contact_size, contact_clearance=contact_clearance,
            cross_section=cross_section, cross_section_heater=cross_section_heater, via_stack=via_heater,
            cross_section_contact=cross_section_contact,
        ),
        name="heater",
    )
    h.connect("o1", t.ports["o2"])
    for name, ref, pname in (("o1", t, "o1"), ("o2", h, "o2"), ("o3", t, "o3"), ("o4", t, "o4")):
        c.add_port(name, port=ref.ports[pname])
    c.add_port("e1", port=h.ports["e1"])
    c.add_port("e2", port=h.ports["e2"])
    c.info["length"] = round(t.ports["o2"].dcenter[0] - t.ports["o1"].dcenter[0] + heater_length, 6)
    return c


@gf.cell
def dummy_segment(
    length: float = 129.0,
    tap_fraction: float = 0.02,
    cross_section="strip",
    tap="grating_tap",
) -> gf.Component:
    """An unheated waveguide segment ``length`` µm long carrying a dummy grating tap of ``tap_fraction``.

    It takes the same power as a monitor tap so that a balanced-tap mesh loses the same power on every path
    (docs/calibration.md, "Balanced taps"); its gratings are not monitored, so it exports only ``o1``/``o2``.
    ``info["dummy_tap"]`` marks it for :class:`tapmesh.pcells.ChipMap` and the layout-extracted model.
    """
    c = gf.Component()
    t = c.add_ref(gf.get_component(tap, tap_fraction=tap_fraction, cross_section=cross_section), name="dummy_tap")
    pad = length - t.ports["o2"].dcenter[0] + t.ports["o1"].dcenter[0]
    if pad < 0:
        raise PitchError(f"dummy segment length {length} µm shorter than its tap ({length - pad:.1f} µm)")
    s = c.add_ref(gf.components.straight(length=round(pad, 6), cross_section=cross_section), name="pad_straight")
    s.connect("o1", t.ports["o2"])
    c.add_port("o1", port=t.ports["o1"])
    c.add_port("o2", port=s.ports["o2"])
    c.info["length"] = length
    c.info["tap_fraction"] = tap_fraction
    c.info["dummy_tap"] = True
    return c


@gf.cell
def mzi_tapped(
    pitch: float = 50.0,
    coupler: str = "dc",
    heater_length: float = 100.0,
    tap_fraction: float = 0.02,
    dc_gap: float = 0.236,
    dc_length: float = 20.0,
    coupler_dx: float = 60.0,
    lane_top: float = 18.0,
    lane_pitch: float = 8.0,
    lane_width: float = 3.0,
    cross_section="strip",
    cross_section_heater="heater_metal",
    cross_section_lane="metal2",
    contact_size: float = 10.0,
    contact_clearance: float = 4.0,
    via_heater="via_stack_heater_m2",
    balanced_taps: bool = False,
) -> gf.Component:
    """Balanced MZI T(θ, φ) with a heater and a grating tap on its top input (φ) and top arm (θ).

    Layout, west to east: [φ segment | straight] → coupler → [θ segment | straight] → coupler, the top path at
    ``y = pitch``, the bottom one at ``y = 0``; every segment is drawn with the same length on both paths.
    Heater contacts hang into the MZI's interior and run east on four lanes (``cross_section_lane``) to
    electrical ports on the east edge: ``e1`` φ signal, ``e2`` φ return, ``e3`` θ signal, ``e4`` θ return.

    Ports: optical ``o1`` bottom-in, ``o2`` top-in, ``o3`` top-out, ``o4`` bottom-out; tap gratings ``o5`` φ
    forward, ``o6`` φ backward, ``o7`` θ forward, ``o8`` θ backward (``port_type`` vertical).

    Args:
        pitch: waveguide pitch (distance between the MZI's two modes), µm.
        coupler: ``"dc"`` (directional coupler) or ``"mmi"``.
        heater_length: heater length, µm.
        tap_fraction: power fraction each tap takes (0.01–0.05).
        dc_gap, dc_length: directional-coupler gap and coupling length, µm.
        coupler_dx: length of each fan-in/fan-out s-bend, µm.
        lane_top, lane_pitch, lane_width: depth of the first lane below the top path, lane pitch and width, µm.
        contact_size, contact_clearance, via_heater: heater contacts (see :func:`heater`; ``via_heater=None``
            contacts the lane metal by overlap).
        balanced_taps: a dummy tap (:func:`dummy_segment`) on the bottom input and bottom arm, so both paths
            lose the tap's power (``info["dummy_taps"]`` counts them).
    """
    xl = xs_layer(cross_section_lane)
    seg = tapped_segment(
        heater_length=heater_length,
        tap_fraction=tap_fraction,
        cross_section=cross_section,
        cross_section_heater=cross_section_heater,
        contact_size=contact_size,
        contact_clearance=contact_clearance,
        via_heater=via_heater,
        cross_section_contact=cross_section_lane,
    )
    seg_top = seg.ymax
    needed = max(seg_top + 5.0, lane_top + 3 * lane_pitch + lane_width + 5.0)
    if pitch < needed:
        raise PitchError(f"pitch {pitch} µm smaller than the tapped MZI needs ({needed:.1f} µm)")
    cp, _ = coupler_pair(coupler, pitch, cross_section, dc_gap, dc_length, coupler_dx)
    lseg = seg.info["length"]
    if balanced_taps:
        bottom = dummy_segment(length=lseg, tap_fraction=tap_fraction, cross_section=cross_section)
    else:
        bottom = gf.components.straight(length=lseg, cross_section=cross_section)
    c = gf.Component()
    phi = c.add_ref(seg, name="phi")
    phi.dmove((0, pitch))
    b_in = c.add_ref(bottom, name="bottom_in")
    c_in = c.add_ref(cp, name="coupler_in")
    c_in.dmove((lseg, 0))
    theta = c.add_ref(seg, name="theta")
    theta.connect("o1", c_in.ports["o3"])
    b_arm = c.add_ref(bottom, name="bottom_arm")
    b_arm.connect("o1", c_in.ports["o4"])
    c_out = c.add_ref(cp, name="coupler_out")
    c_out.connect("o1", b_arm.ports["o2"])
    c.add_port("o1", port=b_in.ports["o1"])
    c.add_port("o2", port=phi.ports["o1"])
    c.add_port("o3", port=c_out.ports["o3"])
    c.add_port("o4", port=c_out.ports["o4"])
    for name, ref, p in (("o5", phi, "o3"), ("o6", phi, "o4"), ("o7", theta, "o3"), ("o8", theta, "o4")):
        c.add_port(name, port=ref.ports[p])
    x_end = c_out.ports["o3"].dcenter[0]
    contacts = [phi.ports["e1"], phi.ports["e2"], theta.ports["e1"], theta.ports["e2"]]
    c.info["lane_start"] = _add_lanes(c, contacts, x_end, pitch - lane_top, lane_pitch, lane_width, xl.layer)
    c.info["length"] = x_end
    c.info["pitch"] = pitch
    c.info["coupler"] = coupler
    c.info["dummy_taps"] = 2 if balanced_taps else 0
    return c


@gf.cell
def phase_shifter_tapped(
    length: float = 300.0,
    heater_length: float = 100.0,
    tap_fraction: float = 0.02,
    lane_top: float = 18.0,
    lane_pitch: float = 8.0,
    lane_width: float = 3.0,
    cross_section="strip",
    cross_section_heater="heater_metal",
    cross_section_lane="metal2",
    contact_size: float = 10.0,
    contact_clearance: float = 4.0,
    via_heater="via_stack_heater_m2",
) -> gf.Component:
    """Output phase shifter γ: a tapped heated segment padded with straight waveguide to ``length`` µm.

    Ports: ``o1`` west, ``o2`` east, ``o3``/``o4`` tap gratings (forward/backward), ``e1`` signal and ``e2``
    return on the east edge (lanes below the waveguide).
    """
    xl = xs_layer(cross_section_lane)
    seg = tapped_segment(
        heater_length=heater_length,
        tap_fraction=tap_fraction,
        cross_section=cross_section,
        cross_section_heater=cross_section_heater,
        contact_size=contact_size,
        contact_clearance=contact_clearance,
        via_heater=via_heater,
        cross_section_contact=cross_section_lane,
    )
    pad = length - seg.info["length"]
    if pad < 0:
        raise PitchError(f"phase shifter length {length} µm shorter than its tapped segment {seg.info['length']}")
    c = gf.Component()
    s = c.add_ref(seg, name="segment")
    p = c.add_ref(gf.components.straight(length=pad, cross_section=cross_section), name="pad_straight")
    p.connect("o1", s.ports["o2"])
    c.add_port("o1", port=s.ports["o1"])
    c.add_port("o2", port=p.ports["o2"])
    c.add_port("o3", port=s.ports["o3"])
    c.add_port("o4", port=s.ports["o4"])
    c.info["lane_start"] = _add_lanes(c, [s.ports["e1"], s.ports["e2"]], length, -lane_top, lane_pitch, lane_width,
                                      xl.layer)
    c.info["length"] = length
    return c


@gf.cell
def via_stack_m2_m3(size: tuple = (5.0, 5.0), layers: tuple = ("M2", "MTOP"), vias: tuple = ("via2", None)) -> gf.Component:
    """Lane-to-track via: a lower-metal square, a top-metal square and the vias between them."""
    return gf.components.via_stack(size=size, layers=layers, vias=vias)
