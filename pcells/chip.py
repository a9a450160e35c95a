"""Chips: a tapped mesh with fiber-array I/O, an alignment loopback, a bond pad for every heater, and labels.

Pads sit on the mesh's track slots (one pad per heater, at ``pad_pitch``) in a row above and a row below the
mesh; each row has a return (ground) bus in the lower metal that collects the column return tracks, and one
ground pad. Fiber gratings sit on ``fiber_pitch`` (127 µm) in a vertical array on the west (inputs) and the
east (outputs); the two outermost gratings of each array are joined by an alignment loopback.
"""

from __future__ import annotations

import gdsfactory as gf

from . import fanout, schedule
from .cells import mzi_tapped, xs_layer
from .die import PAD_KINDS, check_pads, die_outline, direct_pads, fits, pad_fields, reticle_check, stagger_plan
from .errors import LayoutError, PitchError, ProcessError, ReticleError, StaggerError
from .mesh import mesh_cell
from .process import get_process
from .roles import with_roles

PDK_CELLS = ("chip", "demo_chip", "edge_coupler")


@gf.cell
def edge_coupler(length: float = 100.0, width_tip: float = 0.2, cross_section="strip") -> gf.Component:
    """Inverse-taper edge coupler: ``o1`` the waveguide end, ``o2`` the tip at the chip facet (faces +x)."""
    xs = xs_layer(cross_section)
    c = gf.Component()
    t = c << gf.components.taper(length=length, width1=xs.width, width2=width_tip, cross_section=cross_section)
    c.ports.add_port(port=t.ports["o1"], name="o1")
    c.ports.add_port(port=t.ports["o2"], name="o2")
    c.info["length"] = length
    return c

DEMO_ROLES: dict[str, tuple[tuple[int, int], ...]] = {
    # 6×6 triangular mesh, 15 MZIs (schedule.mzis(6, "triangular")), after Pai et al., Science 380, 398 (2023).
    # Write MZI (c, m) as (a, b) = ((c − k)/2, (c + k)/2) with k = 4 − m: the MZIs fill the triangle
    # 0 ≤ a ≤ b ≤ 4. The first diagonal a = 0 (b = 0..3) splits the light entering at the bottom into the
    # four input amplitudes/phases; the inner triangle 1 ≤ a ≤ b ≤ 3 is a 4×4 triangular core; the last
    # diagonal b = 4 (a = 1..4) interferes the core's outputs with the reference for coherent readout; the
    # corner where the two diagonals meet, (a, b) = (0, 4), i.e. MZI (4, 0), routes the reference beam.
    "generator": ((0, 4), (1, 3), (2, 2), (3, 1)),
    "core": ((2, 4), (3, 3), (4, 2), (4, 4), (5, 3), (6, 4)),
    "analyzer": ((5, 1), (6, 2), (7, 3), (8, 4)),
    "reference": ((4, 0),),
}
"""Roles of the demo chip's 15 MZIs, keyed by ``(column, top_mode)``."""


def _fan_in(c, gc_ports, mesh_ports, side: str, radius: float, separation: float, cross_section) -> None:
    """Non-crossing Manhattan routes from a grating array (pitch p) to the mesh ports (pitch < p), in order.

    Each route is straight – bend – vertical – bend – straight; in each group (routes going down, routes going
    up) the route that starts farthest from the array's middle turns closest to the mesh, so none cross.
    """
    sgn = 1 if side == "w" else -1  # direction from the array towards the mesh
    x0 = gc_ports[0].dcenter[0]
    bend = gf.components.bend_euler(radius=radius, cross_section=cross_section)
    down = [k for k, (g, m) in enumerate(zip(gc_ports, mesh_ports)) if g.dcenter[1] - m.dcenter[1] > 1e-3]
    up = [k for k, (g, m) in enumerate(zip(gc_ports, mesh_ports)) if m.dcenter[1] - g.dcenter[1] > 1e-3]
    rank = {}
    for k, j in enumerate(sorted(down, reverse=True)):  # lowest of the downward routes turns first
        rank[j] = k
    for k, j in enumerate(sorted(up)):  # highest of the upward routes turns first
        rank[j] = k
    for k, (g, m) in enumerate(zip(gc_ports, mesh_ports)):
        dy = m.dcenter[1] - g.dcenter[1]
        if abs(dy) <= 1e-3:
            length = abs(m.dcenter[0] - g.dcenter[0])
            r = c << gf.components.straight(length=length, cross_section=cross_section)
            r.connect("o1", g)
            continue
        if abs(dy) < 2 * radius:
            raise PitchError(f"fiber route {k} needs a vertical offset of at least {2 * radius} µm, got {abs(dy):.1f}")
        xv = x0 + sgn * (radius + 5.0 + rank[k] * (separation + 0.5))
        turn_right = (dy < 0) == (side == "w")
        r1 = c << gf.components.straight(length=abs(xv - x0) - radius, cross_section=cross_section)
        r1.connect("o1", g)
        b1 = c << bend
        b1.connect("o1", r1.ports["o2"], mirror=turn_right)
        r2 = c << gf.components.straight(length=abs(dy) - 2 * radius, cross_section=cross_section)
        r2.connect("o1", b1.ports["o2"])
        b2 = c << bend
        b2.connect("o1", r2.ports["o2"], mirror=not turn_right)
        length = abs(m.dcenter[0] - b2.ports["o2"].dcenter[0])
        r3 = c << gf.components.straight(length=length, cross_section=cross_section)
        r3.connect("o1", b2.ports["o2"])


def fiber_io(c, mr, mports, n: int, gc, *, fiber_pitch: float, io_margin: float, route_separation: float,
             cross_section, with_labels: bool, layer_label, wg_port: str = "o1",
             out_port: str | None = "o2") -> tuple[list, list]:
    """Fiber couplers on ``fiber_pitch`` west (inputs) and east (outputs) of the mesh instance ``mr``, each array
    with a two-coupler alignment loopback on top, joined to the mesh by a non-crossing fan-in. ``wg_port`` is
    the coupler's waveguide port (turned to face the mesh), ``out_port`` its fiber port (``None``: the coupler
    has none, a vertical port is placed at its centre).

    Returns the (input, output) chip port names, mode order.
    """
    y_mid = (mports["o1"].dcenter[1] + mports[f"o{n}"].dcenter[1]) / 2
    ys_io = [y_mid + (n - 1) / 2 * fiber_pitch - k * fiber_pitch for k in range(n)]
    ys = [ys_io[0] + 2 * fiber_pitch, ys_io[0] + fiber_pitch, *ys_io]
    radius = float(gf.get_cross_section(cross_section).radius or 10.0)
    fan = io_margin + n * route_separation
    x_w = mr.dxmin - fan
    x_e = mr.dxmax + fan
    inputs, outputs = [], []
    for side, x, rot in (("w", x_w, 180), ("e", x_e, 0)):
        refs = []
        for i, y in enumerate(ys):
            r = c.add_ref(gc, name=f"gc_{side}{i}")
            r.drotate((rot - 180 - gc.ports[wg_port].orientation) % 360)  # waveguide port faces the mesh
            r.dmove((x - r.ports[wg_port].dcenter[0], y - r.ports[wg_port].dcenter[1]))
            refs.append(r)
        gf.routing.route_single(c, refs[0].ports[wg_port], refs[1].ports[wg_port], cross_section=cross_section)
        for j in (0, 1):
            _add_fiber_port(c, refs[j], out_port, f"loopback_{side}{j + 1}")
        io_refs = refs[2:]
        mesh_ports = [mports[f"o{k + 1}"] if side == "w" else mports[f"o{n + k + 1}"] for k in range(n)]
        _fan_in(c, [r.ports[wg_port] for r in io_refs], mesh_ports, side, radius, route_separation, cross_section)
        for k, r in enumerate(io_refs):
            name = f"fiber_in{k}" if side == "w" else f"fiber_out{k}"
            fp = _add_fiber_port(c, r, out_port, name)
            (inputs if side == "w" else outputs).append(name)
            if with_labels:
                c.add_label(name, position=fp.dcenter, layer=layer_label)
    return inputs, outputs


def _add_fiber_port(c, ref, port: str | None, name: str):
    """Export the fiber port of coupler ``ref`` as ``name``; a coupler without one (``port=None``) gets a
    vertical port at its centre. Returns the exported port."""
    if port is not None:
        c.ports.add_port(port=ref.ports[port], name=name)
    else:
        b = ref.dbbox()
        c.add_port(name, center=(b.center().x, b.center().y), width=10.0, orientation=0,
                   layer=ref.ports[0].layer, port_type="vertical_te")
    return c.ports[name]


@gf.cell
def chip(
    n: int = 4,
    kind: str = "rectangular",
    pitch: float = 50.0,
    coupler: str = "dc",
    heater_length: float = 100.0,
    tap_fraction: float = 0.02,
    pads: str = "direct",
    pad_pitch: float | None = None,
    pad_size: tuple | None = None,
    pad_gap: float = 150.0,
    pad_stagger: float | str | None = None,
    coupler_dx: float | None = None,
    return_group: int = 8,
    die_margin: float = 100.0,
    check_reticle: bool = True,
    process="generic",
    bus_width: float = 10.0,
    fiber_pitch: float = 127.0,
    io: str = "grating",
    grating_coupler="grating_coupler_elliptical_te",
    edge_coupler="edge_coupler",
    io_margin: float = 300.0,
    route_separation: float = 5.0,
    with_labels: bool = True,
    cross_section="strip",
    cross_section_heater="heater_metal",
    cross_section_lane="metal2",
    cross_section_track="metal3",
    via="via_stack_m2_m3",
    layer_label="TEXT",
    pad="pad",
    pad_open=None,
    fiber_wg_port: str = "o1",
    fiber_port: str | None = "o2",
    lane_top: float = 18.0,
    lane_pitch: float = 8.0,
    lane_width: float = 3.0,
    track_width: float = 5.0,
    contact_size: float = 10.0,
    contact_clearance: float = 4.0,
    via_heater="via_stack_heater_m2",
    shared_return: bool = True,
    balanced_taps: bool = False,
    dc_gap: float = 0.236,
    pdk: str = "generic",
) -> gf.Component:
    """A tapped ``n``-mode mesh with fiber gratings on ``fiber_pitch``, a loopback, a pad per heater, a die outline.

    Ports: ``fiber_in{m}`` / ``fiber_out{m}`` (vertical grating ports, mode m), ``loopback_w1/w2/e1/e2``;
    ``pad_e{h+1}`` for shifter h (canonical order); grounds ``pad_gnd_top`` / ``pad_gnd_bot`` (direct) or
    ``pad_gnd_<top|bot><column>_<group>`` (edge/bumps).

    Args:
        n, kind, pitch, coupler, heater_length, tap_fraction: the mesh (see :func:`tapmesh.pcells.mesh`).
        pads: ``"direct"`` — one pad per heater on a zone track of the pad pitch (the column pitch grows with n);
            ``"fanout"`` — zone tracks at the metal's minimum pitch, fanned out in one metal (no crossings, so
            also on overlap-contact processes) to a staggered pad field above and below (:mod:`tapmesh.pcells.fanout`);
            ``"bumps"`` — dense tracks over the mesh to a flip-chip area array above and below it;
            ``"edge"`` — dense tracks to a multi-row bond-pad field on the top and bottom die edges
            (:mod:`tapmesh.pcells.die`).
        pad_pitch: pad or bump pitch, µm (default 100; :class:`RuleError` below the process minimum).
        pad_size: pad size, µm (default 80 × 80 direct, 50 × 50 edge/bumps).
        pad_gap: ``"direct"``: distance from the mesh edge to the pad row, µm.
        pad_stagger: ``pads="edge"``: ``None`` — aligned rows, tracks in channels between pad columns;
            ``"auto"`` — staggered rows, row k offset by k·pitch/rows, pad columns and rows chosen for the smallest
            field; a number — that row offset, µm. Every staggered pad has its own line: its track comes straight
            up between the pads of the rows below, its bond wire leaves between the pads of the rows above
            (:mod:`tapmesh.pcells.stagger`; :class:`StaggerError` before drawing when a track would pass a pad
            closer than the metal space, or the stripe cannot carry its tracks). ``pad_size`` may be
            (width along the edge, height): narrow pads fit more staggered rows.
        coupler_dx: s-bend length of the MZI couplers, µm (default 60 direct, 40 edge/bumps: the n = 64
            column fits the reticle).
        return_group: heaters per shared return track (edge/bumps).
        die_margin: die outline margin around the drawing, µm.
        check_reticle: raise :class:`ReticleError` (before drawing) when the die would exceed the process's
            reticle field; the message lists the pad options that fit.
        process: process rules (name or :class:`tapmesh.pcells.ProcessRules`).
        bus_width: width of the return bus, µm.
        fiber_pitch: fiber-array pitch, µm (127 for a standard array).
        io: ``"grating"`` (vertical fiber array on grating couplers) or ``"edge"`` (edge couplers at the chip
            facets: inverse tapers whose tips are the fiber ports).
        grating_coupler: fiber grating coupler spec (port ``o1`` waveguide, ``o2`` fiber).
        edge_coupler: edge coupler spec (port ``o1`` waveguide, ``o2`` the tip at the facet).
        io_margin: extra distance between the grating arrays and the mesh, µm.
        route_separation: waveguide separation in the fan-in bundles, µm.
        with_labels: add text labels to pads and gratings.
        cross_section*, via: as in :func:`tapmesh.pcells.mesh`.
        layer_label: layer of the text labels.
        pad: bond-pad component (takes ``size`` and ``layer``); pad_open: opening layer drawn 2 µm inside each
            pad (``None``: none, or the pad cell draws its own).
        fiber_wg_port, fiber_port: the fiber coupler's waveguide port and fiber port (``None``: the coupler has
            none; a vertical port is placed at its centre).
        lane_*, track_width, contact_*, via_heater, shared_return, dc_gap: ``"direct"`` routing and couplers
            (see :func:`tapmesh.pcells.mesh`); with ``shared_return=False`` every heater return gets its own pad
            ``pad_r{h+1}`` and there are no ground buses (planar routing for overlap-contact processes).
        balanced_taps: a dummy tap beside every monitor tap (see :func:`tapmesh.pcells.mesh`); recorded in
            ``info`` and in the :class:`ChipMap`, from which ``calibrate`` takes the matching model.
        pdk: name of the PDK the chip was drawn on (recorded in ``info``; :func:`tapmesh.pcells.chip` fills
            every part from that PDK's roles, :mod:`tapmesh.pcells.roles`).
    """
    rules = get_process(process)
    if pads not in PAD_KINDS:
        raise LayoutError(f"unknown pads {pads!r}; expected one of {PAD_KINDS}")
    dense = pads in ("edge", "bumps")
    if dense and rules.contact == "overlap":
        raise ProcessError(f"pads={pads!r} routes tracks across the heater lanes: process {rules.name!r} connects "
                          "metals that overlap; use pads='fanout' (planar) or 'direct'")
    alt_dx = coupler_dx  # the other pad options are estimated at the same couplers when they were chosen
    if coupler_dx is None:
        coupler_dx = 40.0 if dense else 60.0
    if pad_pitch is None:
        pad_pitch = 100.0
    if pad_size is None:
        pad_size = (50.0, 50.0) if dense else (80.0, 80.0)
    if pads != "direct":
        check_pads(pads, pad_pitch, pad_size[0], rules)
    elif pad_size[0] + 10 > pad_pitch:
        raise PitchError(f"pad pitch {pad_pitch} µm smaller than a pad ({pad_size[0]} µm) plus 10 µm spacing")
    if pad_stagger is not None and pads != "edge":
        raise StaggerError(f"pad_stagger={pad_stagger!r} applies to pads='edge' only, got pads={pads!r}")
    if io not in ("grating", "edge"):
        raise LayoutError(f"unknown io {io!r}; expected 'grating' or 'edge'")
    gc = gf.get_component(grating_coupler if io == "grating" else edge_coupler)
    wg_port = fiber_wg_port if io == "grating" else "o1"
    out_port = fiber_port if io == "grating" else "o2"
    gc_width = gc.dbbox().height()
    if fiber_pitch < gc_width + 5:
        raise PitchError(f"fiber pitch {fiber_pitch} µm smaller than the grating coupler ({gc_width:.1f} µm)")
    mesh_kw = dict(n=n, kind=kind, pitch=pitch, coupler=coupler, heater_length=heater_length,
                   tap_fraction=tap_fraction, cross_section=cross_section, cross_section_heater=cross_section_heater,
                   cross_section_lane=cross_section_lane, cross_section_track=cross_section_track, via=via)
    if coupler_dx != 60.0:
        mesh_kw["coupler_dx"] = coupler_dx
    if balanced_taps:
        mesh_kw["balanced_taps"] = True
    planar = dict(lane_top=lane_top, lane_pitch=lane_pitch, lane_width=lane_width, contact_size=contact_size,
                  contact_clearance=contact_clearance, via_heater=via_heater, dc_gap=dc_gap)
    defaults = dict(lane_top=18.0, lane_pitch=8.0, lane_width=3.0, contact_size=10.0, contact_clearance=4.0,
                    via_heater="via_stack_heater_m2", dc_gap=0.236)
    mesh_kw.update({k: v for k, v in planar.items() if v != defaults[k]})  # generic cells keep their keys
    plan = None
    if check_reticle or pad_stagger is not None:
        mzi = mzi_tapped(pitch=pitch, coupler=coupler, heater_length=heater_length, tap_fraction=tap_fraction,
                         coupler_dx=coupler_dx, cross_section=cross_section,
                         cross_section_heater=cross_section_heater, cross_section_lane=cross_section_lane,
                         **{k: v for k, v in planar.items() if v != defaults[k] and k != "dc_gap"})
    if pad_stagger is not None:  # the dense column stripe is one MZI long
        plan = stagger_plan(n, kind, pad_stagger, stripe=float(mzi.info["length"]), pad_pitch=pad_pitch,
                            pad_size=pad_size, rules=rules, return_group=return_group)
    if check_reticle:  # before drawing: the die from the parameters, against the reticle
        estimate = reticle_check(n, kind, pads, col_length=float(mzi.info["length"]), coupler_dx=coupler_dx,
                                 alt_dx=alt_dx,
                                 rules=rules, plan=plan, track_width=track_width, shared_return=shared_return,
                                 pad_width=pad_size[0], stagger=pad_stagger, pitch=pitch, pad_pitch=pad_pitch,
                                 fiber_pitch=fiber_pitch, fiber_len=gc.dbbox().width(), io_margin=io_margin,
                                 route_separation=route_separation, die_margin=die_margin, pad_gap=pad_gap,
                                 pad_size=pad_size[1])
    if dense:
        m = mesh_cell(**mesh_kw, routing="dense", return_group=return_group, process=rules)
    elif pads == "fanout":
        m = mesh_cell(**mesh_kw, track_pitch=fanout.zone_pitch(rules, track_width, shared_return),
                      track_width=track_width, shared_return=shared_return, process=rules)
    else:
        extra = {} if shared_return else dict(shared_return=False, track_width=track_width, process=rules)
        m = mesh_cell(**mesh_kw, track_pitch=pad_pitch, **extra)
    c = gf.Component()
    mr = c.add_ref(m, name="mesh")
    mports = {p.name: p for p in mr.ports}  # one pass: instance port lookup by name is linear in kfactory
    n_heaters = m.info["n_heaters"]
    labels = [f"{name}{idx}" for name, idx in schedule.shifters(n, kind)]
    if pads == "direct":
        direct_pads(c, mr, mports, m, pad_size=pad_size, pad_gap=pad_gap, bus_width=bus_width, via=via,
                     cross_section_lane=cross_section_lane, cross_section_track=cross_section_track,
                     with_labels=with_labels, layer_label=layer_label, labels=labels, pad=pad, pad_open=pad_open,
                     track_width=m.info["track_width"], shared_return=shared_return)
    inputs, outputs = fiber_io(c, mr, mports, n, gc, fiber_pitch=fiber_pitch, io_margin=io_margin,
                               route_separation=route_separation, cross_section=cross_section,
                               with_labels=with_labels, layer_label=layer_label, wg_port=wg_port,
                               out_port=out_port)
    if pads == "fanout":
        _fanout(c, mr, mports, m, rules, pad=pad, pad_size=pad_size, pad_pitch=pad_pitch, pad_open=pad_open,
                track_width=track_width, cross_section_track=cross_section_track, labels=labels,
                with_labels=with_labels, layer_label=layer_label)
    if dense:
        b = c.dbbox()
        if plan is not None and abs(plan.px * plan.columns - m.info["column_pitch"]) > 1e-3:
            raise LayoutError(f"column pitch {m.info['column_pitch']} µm differs from the planned stripe")
        field = pad_fields(c, mr, mports, pads=pads, pad_pitch=pad_pitch, pad_size=pad_size,
                           track_pitch=m.info["track_pitch"], track_width=m.info["track_width"], rules=rules,
                           y_outer=(b.top, b.bottom) if pads == "edge" else None, with_labels=with_labels,
                           layer_label=layer_label, labels=labels, stagger=plan)
        c.info["pad_rows"] = field["rows"]
        c.info["pad_field_height"] = field["height"]
        if plan is not None:
            c.info["pad_stagger"] = round(plan.offset, 3)
            c.info["pad_row_pitch"] = plan.row_pitch
            c.info["pad_columns"] = plan.columns
    n_pads = sum(1 for p in c.ports if p.name.startswith("pad_"))
    w, h = die_outline(c, rules, die_margin, facets=io == "edge")
    if check_reticle and not fits((w, h), rules.reticle):
        raise ReticleError(f"drawn die {w / 1e3:.1f} × {h / 1e3:.1f} mm exceeds the reticle field")
    c.info["die_size"] = [round(w, 1), round(h, 1)]
    if check_reticle:
        c.info["die_estimate"] = estimate  # what the reticle check judged, before drawing
    c.info["pads"] = pads
    c.info["process"] = rules.name
    c.info["n"] = n
    c.info["kind"] = kind
    c.info["input_ports"] = inputs
    c.info["output_ports"] = outputs
    c.info["n_heaters"] = n_heaters
    c.info["n_pads"] = n_pads
    c.info["io"] = io
    c.info["pdk"] = pdk
    c.info["shared_return"] = shared_return
    c.info["balanced_taps"] = balanced_taps
    return c


def _fanout(c, mr, mports, m, rules, *, pad, pad_size, pad_pitch, pad_open, track_width, cross_section_track,
            labels, with_labels, layer_label) -> None:
    """``pads="fanout"``: the staggered lattice for the busier edge and the fan-out above and below the mesh, its
    staircases starting a space beyond whatever is drawn (the mesh and the fiber arrays)."""
    layer = xs_layer(cross_section_track).layer
    ports = [p for p in mports.values() if p.port_type == "electrical"]
    tracks = max(sum(1 for p in ports if round(p.orientation) == o) for o in (90, 270))
    space = rules.min_space(rules.track_metal)
    plan = fanout.lattice(tracks, mr.dxsize, pitch=pad_pitch, size=tuple(pad_size), track_width=track_width,
                          space=space, pad_space=rules.min_space(rules.pad_metal))
    b = c.dbbox()
    opening = None if pad_open is None else (pad_open, (pad_size[0] - 4.0, pad_size[1] - 4.0))
    field = fanout.fanout_pads(c, mports, x_mid=mr.dbbox().center().x, y_clear=(b.top + space, b.bottom - space),
                               plan=plan, pad=gf.get_component(pad, size=pad_size, layer=layer), pad_pitch=pad_pitch,
                               track_pitch=float(m.info["track_pitch"]), track_width=track_width, layer=layer,
                               labels=labels, with_labels=with_labels, layer_label=layer_label, opening=opening)
    c.info["pad_rows"] = field["rows"]
    c.info["pad_span"] = field["span"]
    c.info["pad_stagger"] = round(plan.offset, 3)


@gf.cell
def demo_chip(pad_pitch: float = 100.0, coupler: str = "dc", tap_fraction: float = 0.02) -> gf.Component:
    """The demo chip of the seed paper: a 6×6 triangular tapped mesh with fiber I/O and pads.

    Its 15 MZIs take the roles in :data:`DEMO_ROLES` (4-MZI input generator, 6-MZI 4×4 core, 4-MZI coherent
    analyzer, 1 reference); ``info["roles"]`` records them.
    """
    c = gf.Component()
    r = c.add_ref(
        chip(n=6, kind="triangular", pad_pitch=pad_pitch, coupler=coupler, tap_fraction=tap_fraction), name="chip"
    )
    c.add_ports(r.ports)
    inner = r.cell
    for key in ("n", "kind", "input_ports", "output_ports", "n_heaters", "n_pads"):
        c.info[key] = inner.info[key]
    c.info["roles"] = {role: [list(x) for x in mzis] for role, mzis in DEMO_ROLES.items()}
    return c


chip_cell = chip
chip = with_roles(chip_cell)
"""``chip(n, kind, ..., pdk=None)``: :func:`chip_cell` with every layer, cross-section and component (and the
process's layout defaults) taken from ``pdk``'s :class:`~tapmesh.pcells.roles.Roles` (default: the active PDK);
arguments passed explicitly win."""
