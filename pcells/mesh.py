"""The tapped mesh: MZI columns at a constant waveguide pitch, output phase shifters, heater tracks to the edges.

Geometry (µm): mode m runs at ``y = (n − 1 − m)·pitch`` (mode 0 on top). Column c starts at ``x = c·column_pitch``
with its optical section (MZIs, and equal-length pass-through paths for modes that skip an MZI), followed
— when ``route_heaters`` — by a track zone: every heater's lanes continue east into the zone, drop through a
via onto a vertical track (``cross_section_track``) on a slot of the pad pitch, and the track runs to the top
edge (heaters in the upper half of the column) or to the bottom edge (lower half). Slot 0 of each zone carries
the shared return (ground) track of that column and edge. The output phase shifters γ form the last column.

Ports: optical inputs ``o1..on`` (west, mode 0..n−1) and outputs ``o{n+1}..o{2n}`` (east, mode 0..n−1); tap
gratings ``tap_<theta|phi|gamma><index>_<fwd|bwd>``; heater tracks ``e{h+1}`` for shifter h in the canonical
order of :func:`tapmesh.pcells.schedule.shifters`, and return tracks ``gnd_top<c>`` / ``gnd_bot<c>``. With
``route_heaters=False`` the heater ports are the lane ends ``e{h+1}`` (signal) and ``r{h+1}`` (return).
"""

from __future__ import annotations

import math

import gdsfactory as gf

from . import schedule
from .cells import _rect, coupler_pair, dummy_segment, mzi_tapped, phase_shifter_tapped, tapped_segment, xs_layer
from .errors import LayoutError, PitchError, ProcessError, RuleError
from .process import get_process
from .routing import dense_tracks, slot_pitch
from .roles import with_roles

PDK_CELLS = ("mzi_passthrough", "mesh", "heater_trenches")


@gf.cell
def heater_trenches(cell_name: str, boxes: tuple, layer="DEEPTRENCH") -> gf.Component:
    """Deep thermal-isolation trenches: one rectangle per ``(x0, y0, x1, y1)`` µm box (drawn over a cell)."""
    c = gf.Component()
    for x0, y0, x1, y1 in boxes:
        _rect(c, x0, x1, y0, y1, layer)
    c.info["of"] = cell_name
    return c


def _trench_boxes(cell, gap: float, width: float, inset: float) -> tuple:
    """A trench ``gap`` µm beside (+y) every heater of ``cell``, ``inset`` µm shorter at each end than the heater."""
    boxes = []
    for seg in cell.insts:
        if seg.name not in ("phi", "theta", "segment"):
            continue
        for h in seg.cell.insts:
            if h.name != "heater":
                continue
            t = seg.dcplx_trans * h.dcplx_trans
            length = float(h.cell.info["length"])
            p0, p1 = t * gf.kdb.DPoint(inset, 0), t * gf.kdb.DPoint(length - inset, 0)
            boxes.append((round(min(p0.x, p1.x), 3), round(p0.y + gap, 3), round(max(p0.x, p1.x), 3),
                          round(p0.y + gap + width, 3)))
    return tuple(boxes)


@gf.cell
def mzi_passthrough(
    pitch: float = 50.0,
    coupler: str = "dc",
    segment_length: float = 129.0,
    dc_gap: float = 0.236,
    dc_length: float = 20.0,
    coupler_dx: float = 60.0,
    cross_section="strip",
    balanced_taps: bool = False,
    tap_fraction: float = 0.02,
) -> gf.Component:
    """A single waveguide with the drawn length of one MZI path: straight, coupler twin, straight, coupler twin.

    ``balanced_taps``: both straights carry a dummy tap of ``tap_fraction`` (:func:`tapmesh.pcells.dummy_segment`),
    so a mode passing a column without an MZI loses what an MZI path loses to its two taps."""
    _, twin = coupler_pair(coupler, pitch, cross_section, dc_gap, dc_length, coupler_dx)
    if balanced_taps:
        st = dummy_segment(length=segment_length, tap_fraction=tap_fraction, cross_section=cross_section)
    else:
        st = gf.components.straight(length=segment_length, cross_section=cross_section)
    c = gf.Component()
    prev = None
    first = None
    for comp in (st, twin, st, twin):
        r = c << comp
        if prev is not None:
            r.connect("o1", prev.ports["o2"])
        else:
            first = r
        prev = r
    c.ports.add_port(port=first.ports["o1"], name="o1")
    c.ports.add_port(port=prev.ports["o2"], name="o2")
    return c


@gf.cell
def mesh(
    n: int = 4,
    kind: str = "rectangular",
    pitch: float = 50.0,
    coupler: str = "dc",
    heater_length: float = 100.0,
    tap_fraction: float = 0.02,
    dc_gap: float = 0.236,
    dc_length: float = 20.0,
    coupler_dx: float = 60.0,
    route_heaters: bool = True,
    routing: str = "zone",
    track_pitch: float | None = None,
    track_width: float | None = None,
    via_size: float | None = None,
    return_group: int = 8,
    trenches: bool = False,
    trench_gap: float = 6.0,
    trench_width: float = 3.0,
    process="generic",
    cross_section="strip",
    cross_section_heater="heater_metal",
    cross_section_lane="metal2",
    cross_section_track="metal3",
    via="via_stack_m2_m3",
    lane_top: float = 18.0,
    lane_pitch: float = 8.0,
    lane_width: float = 3.0,
    contact_size: float = 10.0,
    contact_clearance: float = 4.0,
    via_heater="via_stack_heater_m2",
    shared_return: bool = True,
    balanced_taps: bool = False,
) -> gf.Component:
    """Rectangular (Clements) or triangular (Reck) mesh of tapped MZIs with tapped output phase shifters.

    Args:
        n: number of modes, 2..64.
        kind: ``"rectangular"`` (n columns) or ``"triangular"`` (2n − 3 columns).
        pitch: waveguide pitch between adjacent modes, µm (must fit the tapped MZI: :class:`PitchError`).
        coupler: ``"dc"`` or ``"mmi"``.
        heater_length: heater length, µm.
        tap_fraction: power fraction of every grating tap (0.01–0.05).
        route_heaters: draw tracks carrying every heater to the top/bottom edge.
        routing: ``"zone"`` — a track zone after every column, one track per heater at ``track_pitch`` (default
            100 µm; :func:`tapmesh.pcells.chip` with ``pads="direct"`` puts one pad per slot); ``"dense"`` — tracks
            over the column's optical section at the process's minimum pitch, so the column pitch does not grow
            with n (:mod:`tapmesh.pcells.routing`).
        track_pitch: slot pitch of the tracks, µm (``"dense"``: default and minimum from ``process``;
            :class:`RuleError` below it).
        track_width: width of a vertical track, µm (default 5; ``"dense"``: the track metal's minimum width).
        via_size: lane-to-track via size, µm (default 5; ``"dense"``: 4).
        return_group: ``"dense"``: heaters sharing one return track.
        trenches: draw a deep trench (the process's ``deep_trench`` layer) beside every heater, ``trench_gap`` µm
            from the waveguide axis on the side away from its contacts, ``trench_width`` wide (shortens the
            thermal path to the neighbours: :mod:`tapmesh.circuits.thermal`).
        process: process rules (:func:`tapmesh.pcells.get_process` name or :class:`ProcessRules`).
        cross_section*: waveguide, heater, lane (lower metal) and track (top metal) cross-sections.
        via: component spec of the lane-to-track via (takes ``size``); ``None`` where lane and track are one
            metal or contact by overlap (a square of each metal is drawn).
        lane_top, lane_pitch, lane_width, contact_size, contact_clearance, via_heater: heater lanes and contacts
            (see :func:`tapmesh.pcells.mzi_tapped`).
        shared_return: one return track per column and edge (its lanes cross the signal tracks: a process with
            vias); ``False`` gives every return its own track ``r{h+1}`` and orders the slots so that no two
            nets' metals cross (planar routing, for processes that contact by overlap).
        balanced_taps: a dummy tap beside every monitor tap — on each MZI's bottom input and bottom arm, and
            two on every pass-through path — so every path loses the same power per column and the mesh is a
            scaled unitary (model: ``Calibration.nominal(balanced_taps=True)``; docs/calibration.md). The
            dummies export no ports; ``info["dummy_taps"]`` counts them.
    """
    schedule.check_size(n, kind)
    if routing not in ("zone", "dense"):
        raise LayoutError(f"unknown routing {routing!r}; expected 'zone' or 'dense'")
    rules = get_process(process)
    dense = route_heaters and routing == "dense"
    if dense:
        if rules.contact != "via":
            raise ProcessError(f"dense routing crosses lanes with tracks: process {rules.name!r} connects metals "
                               "that overlap (contact='overlap'); use routing='zone'")
        track_width = rules.min_width(rules.track_metal) if track_width is None else track_width
        via_size = 4.0 if via_size is None else via_size
        min_pitch = slot_pitch(track_width, via_size, rules.min_space(rules.track_metal))
        if track_width < rules.min_width(rules.track_metal):
            raise RuleError(f"track_width {track_width} µm below the process minimum "
                            f"{rules.min_width(rules.track_metal)} µm")
        track_pitch = min_pitch if track_pitch is None else track_pitch
        if track_pitch < min_pitch - 1e-9:
            raise RuleError(f"track_pitch {track_pitch} µm below the process minimum {min_pitch} µm "
                            f"(a {via_size} µm via beside a {track_width} µm track, "
                            f"{rules.min_space(rules.track_metal)} µm apart)")
        if not isinstance(return_group, int) or return_group < 1:
            raise LayoutError(f"return_group={return_group!r}: need a positive int (heaters per return track)")
    track_pitch = 100.0 if track_pitch is None else track_pitch
    track_width = 5.0 if track_width is None else track_width
    via_size = 5.0 if via_size is None else via_size
    heater_kw = dict(lane_top=lane_top, lane_pitch=lane_pitch, lane_width=lane_width, contact_size=contact_size,
                     contact_clearance=contact_clearance, via_heater=via_heater)
    mzi = mzi_tapped(
        pitch=pitch,
        coupler=coupler,
        heater_length=heater_length,
        tap_fraction=tap_fraction,
        dc_gap=dc_gap,
        dc_length=dc_length,
        coupler_dx=coupler_dx,
        cross_section=cross_section,
        cross_section_heater=cross_section_heater,
        cross_section_lane=cross_section_lane,
        balanced_taps=balanced_taps,
        **heater_kw,
    )
    l_mzi = mzi.info["length"]
    lanes = mzi.info["lane_start"]
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
    passthrough = mzi_passthrough(
        pitch=pitch,
        coupler=coupler,
        segment_length=seg.info["length"],
        dc_gap=dc_gap,
        dc_length=dc_length,
        coupler_dx=coupler_dx,
        cross_section=cross_section,
        balanced_taps=balanced_taps,
        tap_fraction=tap_fraction,
    )
    gamma = phase_shifter_tapped(
        length=l_mzi,
        heater_length=heater_length,
        tap_fraction=tap_fraction,
        cross_section=cross_section,
        cross_section_heater=cross_section_heater,
        cross_section_lane=cross_section_lane,
        **heater_kw,
    )
    glanes = gamma.info["lane_start"]
    if trenches:
        if rules.deep_trench is None:
            raise ProcessError(f"process {rules.name!r} has no deep-trench layer")
        t_mzi = heater_trenches(cell_name=mzi.name, boxes=_trench_boxes(mzi, trench_gap, trench_width, 10.0),
                                layer=rules.deep_trench)
        t_gamma = heater_trenches(cell_name=gamma.name, boxes=_trench_boxes(gamma, trench_gap, trench_width, 10.0),
                                  layer=rules.deep_trench)
    xs_layer(cross_section_lane)
    xt = xs_layer(cross_section_track)
    lane_layer = gf.get_cross_section(cross_section_lane).layer
    mzis = schedule.mzis(n, kind)
    n_mzi = len(mzis)
    ncols = schedule.n_columns(n, kind)

    # slots per zone: the largest number of heaters one edge of one column carries, plus the return track.
    k_slots = schedule.zone_slots(n, kind, shared_return)
    if route_heaters and not dense:
        if track_pitch < track_width + 2.0 or track_pitch < via_size + 2.0:
            raise PitchError(f"track pitch {track_pitch} µm smaller than a track ({track_width} µm) plus spacing")
        zone = k_slots * track_pitch
    else:
        zone = 0.0
    col_pitch = l_mzi + zone
    y = [(n - 1 - m) * pitch for m in range(n)]
    y_top = y[0] + pitch
    y_bot = y[-1] - pitch

    c = gf.Component()
    zone_straight = gf.components.straight(length=zone, cross_section=cross_section) if zone > 0 else None
    via_c = gf.get_component(via, size=(via_size, via_size)) if route_heaters and via is not None else None

    heaters_by_col: dict[int, list] = {}
    inputs: dict[int, object] = {}
    last: dict[int, object] = {}

    def _chain(m, ref, pin, pout):
        if m not in inputs:
            inputs[m] = ref.ports[pin]
        last[m] = ref.ports[pout]

    for col in range(ncols):
        x0 = col * col_pitch
        covered = set()
        for k, (cc, m) in enumerate(mzis):
            if cc != col:
                continue
            r = c.add_ref(mzi, name=f"mzi_c{col}_m{m}")
            r.dmove((x0, y[m + 1]))
            if trenches:
                (c << t_mzi).dmove((x0, y[m + 1]))
            covered.update((m, m + 1))
            _chain(m, r, "o2", "o3")
            _chain(m + 1, r, "o1", "o4")
            for ps, name, idx in (("o7", "theta", k), ("o8", "theta", k), ("o5", "phi", k), ("o6", "phi", k)):
                suffix = "fwd" if ps in ("o5", "o7") else "bwd"
                c.ports.add_port(port=r.ports[ps], name=f"tap_{name}{idx}_{suffix}")
            heaters_by_col.setdefault(col, []).extend(
                [(k, r.ports["e3"], r.ports["e4"], x0 + lanes[2], x0 + lanes[3]),
                 (n_mzi + k, r.ports["e1"], r.ports["e2"], x0 + lanes[0], x0 + lanes[1])]
            )
        for m in range(n):
            if m not in covered:
                r = c.add_ref(passthrough, name=f"pass_c{col}_m{m}")
                r.dmove((x0, y[m]))
                _chain(m, r, "o1", "o2")
            if zone_straight is not None:
                r = c.add_ref(zone_straight, name=f"zone_c{col}_m{m}")
                r.dmove((x0 + l_mzi, y[m]))
                _chain(m, r, "o1", "o2")
    xg = ncols * col_pitch
    for m in range(n):
        r = c.add_ref(gamma, name=f"gamma_m{m}")
        r.dmove((xg, y[m]))
        if trenches:
            (c << t_gamma).dmove((xg, y[m]))
        _chain(m, r, "o1", "o2")
        c.ports.add_port(port=r.ports["o3"], name=f"tap_gamma{m}_fwd")
        c.ports.add_port(port=r.ports["o4"], name=f"tap_gamma{m}_bwd")
        heaters_by_col.setdefault(ncols, []).append(
            (2 * n_mzi + m, r.ports["e1"], r.ports["e2"], xg + glanes[0], xg + glanes[1])
        )
        if zone_straight is not None:
            z = c.add_ref(zone_straight, name=f"zone_c{ncols}_m{m}")
            z.dmove((xg + l_mzi, y[m]))
            _chain(m, z, "o1", "o2")
    for m in range(n):
        c.ports.add_port(port=inputs[m], name=f"o{m + 1}")
    for m in range(n):
        c.ports.add_port(port=last[m], name=f"o{n + m + 1}")

    if dense:
        col_x0 = {col: col * col_pitch for col in heaters_by_col}
        dense_tracks(c, heaters_by_col, col_x0, l_mzi, y_top, y_bot, track_width=track_width, via_size=via_size,
                     track_pitch=track_pitch, return_group=return_group, via_c=via_c, lane_layer=lane_layer,
                     track_layer=xt.layer)
    elif not route_heaters:
        for col, entries in heaters_by_col.items():
            for h, sig, gnd, _, _ in entries:
                c.ports.add_port(port=sig, name=f"e{h + 1}")
                c.ports.add_port(port=gnd, name=f"r{h + 1}")
    elif not shared_return:
        _planar_tracks(c, heaters_by_col, col_pitch, l_mzi, track_pitch, track_width, y_top, y_bot, lane_layer,
                       xt.layer)
    else:
        tw = track_width
        for col, entries in heaters_by_col.items():
            xz = col * col_pitch + l_mzi
            entries = sorted(entries, key=lambda e: -e[1].dcenter[1])
            n_up = math.ceil(len(entries) / 2)
            for side, group in (("top", entries[:n_up]), ("bot", entries[n_up:])):
                if not group:
                    continue
                gnd_ys = []
                for slot, (h, sig, gnd, _, _) in enumerate(group, start=1):
                    xs = xz + (slot + 0.5) * track_pitch
                    ys = sig.dcenter[1]
                    _rect(c, sig.dcenter[0], xs + via_size / 2, ys - sig.dwidth / 2, ys + sig.dwidth / 2, lane_layer)
                    v = c << via_c
                    v.dmove((xs, ys))
                    xg0 = xz + 0.5 * track_pitch
                    yg = gnd.dcenter[1]
                    _rect(c, gnd.dcenter[0], xg0 + via_size / 2, yg - gnd.dwidth / 2, yg + gnd.dwidth / 2, lane_layer)
                    v = c << via_c
                    v.dmove((xg0, yg))
                    gnd_ys.append(yg)
                    if side == "top":
                        _rect(c, xs - tw / 2, xs + tw / 2, ys - via_size / 2, y_top, xt.layer)
                        c.add_port(
                            f"e{h + 1}", center=(xs, y_top), width=tw, orientation=90, layer=xt.layer,
                            port_type="electrical",
                        )
                    else:
                        _rect(c, xs - tw / 2, xs + tw / 2, y_bot, ys + via_size / 2, xt.layer)
                        c.add_port(
                            f"e{h + 1}", center=(xs, y_bot), width=tw, orientation=270, layer=xt.layer,
                            port_type="electrical",
                        )
                xg0 = xz + 0.5 * track_pitch
                if side == "top":
                    _rect(c, xg0 - tw / 2, xg0 + tw / 2, min(gnd_ys) - via_size / 2, y_top, xt.layer)
                    c.add_port(f"gnd_top{col}", center=(xg0, y_top), width=tw, orientation=90, layer=xt.layer,
                               port_type="electrical")
                else:
                    _rect(c, xg0 - tw / 2, xg0 + tw / 2, y_bot, max(gnd_ys) + via_size / 2, xt.layer)
                    c.add_port(f"gnd_bot{col}", center=(xg0, y_bot), width=tw, orientation=270, layer=xt.layer,
                               port_type="electrical")
    c.info["n"] = n
    c.info["kind"] = kind
    c.info["pitch"] = pitch
    c.info["column_pitch"] = col_pitch
    c.info["n_mzis"] = n_mzi
    c.info["n_heaters"] = 2 * n_mzi + n
    c.info["y_top"] = y_top
    c.info["y_bot"] = y_bot
    c.info["shared_return"] = shared_return
    c.info["balanced_taps"] = balanced_taps
    n_pass = sum(1 for col in range(ncols) for m in range(n) if not any(cc == col and m in (t, t + 1) for cc, t in mzis))
    c.info["dummy_taps"] = (2 * n_mzi + 2 * n_pass) if balanced_taps else 0
    c.info["routing"] = routing if route_heaters else "none"
    c.info["track_pitch"] = track_pitch
    c.info["track_width"] = track_width
    return c


mesh_cell = mesh
mesh = with_roles(mesh_cell)
"""``mesh(n, kind, ..., pdk=None)``: :func:`mesh_cell` with its cross-sections, vias and layout defaults from
``pdk``'s roles (default: the active PDK)."""


def _planar_tracks(c, heaters_by_col, col_pitch, l_mzi, track_pitch, track_width, y_top, y_bot, lane_layer,
                   track_layer) -> None:
    """Every heater lane (signal ``e{h+1}`` and return ``r{h+1}``) on its own track, with no two nets crossing.

    In each column's zone the lanes are sorted by height: the upper half runs to the top edge, the lane nearest
    the edge taking the slot nearest the column, so a lane only passes slots whose tracks start beyond it; the
    lower half mirrors that towards the bottom edge. Lane and track meet in one square of each metal.
    """
    tw = track_width
    for col, entries in heaters_by_col.items():
        xz = col * col_pitch + l_mzi
        lanes = [(f"e{e[0] + 1}", e[1]) for e in entries] + [(f"r{e[0] + 1}", e[2]) for e in entries]
        lanes.sort(key=lambda e: -e[1].dcenter[1])
        n_up = math.ceil(len(lanes) / 2)
        for side, group in (("top", lanes[:n_up]), ("bot", lanes[n_up:][::-1])):
            for slot, (name, p) in enumerate(group):
                xs = xz + (slot + 0.5) * track_pitch
                x0, ys = p.dcenter
                lw = p.dwidth
                _rect(c, x0, xs + tw / 2, ys - lw / 2, ys + lw / 2, lane_layer)
                _rect(c, xs - tw / 2, xs + tw / 2, ys - lw / 2, ys + lw / 2, track_layer)
                if side == "top":
                    _rect(c, xs - tw / 2, xs + tw / 2, ys - lw / 2, y_top, track_layer)
                    c.add_port(name, center=(xs, y_top), width=tw, orientation=90, layer=track_layer,
                               port_type="electrical")
                else:
                    _rect(c, xs - tw / 2, xs + tw / 2, y_bot, ys + lw / 2, track_layer)
                    c.add_port(name, center=(xs, y_bot), width=tw, orientation=270, layer=track_layer,
                               port_type="electrical")
