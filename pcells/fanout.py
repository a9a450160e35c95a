"""Planar fan-out pads: every zone track of a mesh to a staggered bond-pad field above and below it, in one
metal with no crossings — the pad option that scales past n = 8 on processes whose metals contact wherever they
overlap (SiEPIC EBeam's M1/M2, CORNERSTONE's heater/pad metal), where dense routing would short.

The zone router packs each column's tracks at the track metal's minimum pitch (so the column pitch no longer
grows with the pad pitch); above the fiber arrays one order-preserving staircase per edge
(:func:`tapmesh.pcells.routing.staircase`) spreads all of that edge's tracks onto the lines of one staggered pad
lattice (:mod:`tapmesh.pcells.stagger`) centred on the mesh. The lattice's span is set by the pads' clearance
(every pad its own line, half a pad + half a track + a space from the next), not by the mesh's length
(docs/pcells.md, "Planar fan-out pads").
"""

from __future__ import annotations

import math

from . import schedule
from . import stagger as stag
from .cells import _rect
from .errors import StaggerError
from .routing import pad_on_trace, slot_pitch, stair_levels, staircase

ZONE_VIA = 5.0
"""Via size (µm) of the zone's lane-to-track vias on a via process (:func:`tapmesh.pcells.mesh`'s default)."""


def zone_pitch(rules, track_width: float, shared_return: bool) -> float:
    """Smallest zone slot pitch (µm): a track beside the next one a space apart (overlap contacts: lane and track
    meet in one square of the track's width), or a via beside a track (via processes)."""
    space = rules.min_space(rules.track_metal)
    if shared_return:
        return slot_pitch(track_width, ZONE_VIA, space)
    return round(track_width + space, 3)


def lattice(n_tracks: int, span: float, *, pitch: float, size: tuple, track_width: float, space: float,
            pad_space: float) -> stag.StaggerPlan:
    """The staggered lattice carrying ``n_tracks`` pads along one edge: the shortest span ≥ ``span`` µm (the
    mesh's length) whose field :func:`tapmesh.pcells.stagger.plan` can stagger, every pad on a line of its own."""
    clear = stag.clearance(size[0], track_width, space)
    width = max(span, n_tracks * clear, pitch)
    for _ in range(400):
        try:
            return stag.plan(width, n_tracks, pitch=pitch, size=tuple(size), track_width=track_width, space=space,
                             pad_space=pad_space, stagger=stag.AUTO)
        except StaggerError:
            width *= 1.005
    raise StaggerError(f"no staggered field of {n_tracks} pads of {size[0]} µm at pitch {pitch} µm up to "
                       f"{width / 1e3:.1f} mm")


def fanout_pads(c, mports, *, x_mid: float, y_clear: tuple[float, float], plan: stag.StaggerPlan, pad, pad_pitch:
                float, track_pitch: float, track_width: float, layer, labels: list[str], with_labels: bool,
                layer_label, opening=None) -> dict:
    """Fan the mesh's electrical ports (``e*``, ``r*``, ``gnd_*``; on its top and bottom edges) out to pads.

    Per edge: straight up (down) to ``y_clear`` (clear of the fiber arrays), one staircase onto the lattice's
    sites (the lattice centred on ``x_mid``), then each track straight to its pad's centre. Pads are named
    ``pad_<port>``; ``opening`` = (layer, (w, h)) draws a pad-opening window on each. Returns
    ``{"rows", "field": (outer y top, outer y bottom), "span"}`` µm.
    """
    hw = track_width / 2
    width = plan.columns * plan.px
    x0 = x_mid - width / 2
    out = {}
    for side, sign, orientation in (("top", 1, 90), ("bot", -1, 270)):
        ports = sorted((p for p in mports.values() if p.port_type == "electrical" and round(p.orientation) ==
                        orientation and p.name[0] in "erg"), key=lambda p: p.dcenter[0])
        if not ports:
            continue
        targets = stag.sites(x0, plan, len(ports))
        y_start = y_clear[0 if side == "top" else 1]
        for p in ports:
            _rect(c, p.dcenter[0] - hw, p.dcenter[0] + hw, *sorted((p.dcenter[1], y_start)), layer)
        y_end = staircase(c, [p.dcenter[0] for p in ports], [t[0] for t in targets], y_start, sign, track_pitch,
                          track_width, layer)
        y_row0 = y_end + sign * (track_pitch + pad_pitch / 2)
        for p, (xt, _, row) in zip(ports, targets):
            text = f"{p.name} {labels[int(p.name[1:]) - 1]}" if p.name[0] == "e" else p.name
            pad_on_trace(c, pad, f"pad_{p.name}", xt, y_end, y_row0 + sign * row * plan.row_pitch, track_width,
                         layer, text if with_labels else None, layer_label, opening=opening)
        out[side] = y_row0 + sign * ((plan.rows - 1) * plan.row_pitch + pad_pitch / 2)
    return {"rows": plan.rows, "field": (out.get("top"), out.get("bot")), "span": round(width, 3)}


def zone_sources(n: int, kind: str, *, col_length: float, track_pitch: float, shared_return: bool) -> list[float]:
    """x (µm, from the mesh's west end) of the tracks one die edge gets from the zone router: in every column's
    zone, slots from the column's end at ``track_pitch`` (:func:`tapmesh.pcells.mesh`)."""
    col_pitch = col_length + schedule.zone_slots(n, kind, shared_return) * track_pitch
    out = []
    for col, h in enumerate(schedule.heaters_per_column(n, kind)):
        k = math.ceil(h / 2) + 1 if shared_return else h
        out += [col * col_pitch + col_length + (slot + 0.5) * track_pitch for slot in range(k)]
    return out


def estimate_die(n: int, kind: str, *, rules, col_length: float, pitch: float, pad_pitch: float, pad_width: float,
                 track_width: float, shared_return: bool, fiber_pitch: float, fiber_len: float, io_margin: float,
                 route_separation: float, die_margin: float) -> tuple[float, float]:
    """(width, height) µm of a fan-out chip from its parameters: the lattice and the staircase levels the chip
    will draw, from the zone tracks' positions."""
    tp = zone_pitch(rules, track_width, shared_return)
    sources = zone_sources(n, kind, col_length=col_length, track_pitch=tp, shared_return=shared_return)
    mesh_len = (schedule.n_columns(n, kind) + 1) * (col_length + schedule.zone_slots(n, kind, shared_return) * tp)
    plan = lattice(len(sources), mesh_len, pitch=pad_pitch, size=(pad_width, pad_width), track_width=track_width,
                   space=rules.min_space(rules.track_metal), pad_space=rules.min_space(rules.pad_metal))
    span = plan.columns * plan.px
    targets = [t[0] for t in stag.sites(mesh_len / 2 - span / 2, plan, len(sources))]
    levels = 1 + max(stair_levels(sources, targets, tp).values(), default=-1)
    fan = io_margin + n * route_separation
    optics_h = max((n + 3) * fiber_pitch + 30.0, (n + 1) * pitch)
    field = (levels + 2) * tp + plan.field_height
    width = max(mesh_len + 2 * (fan + fiber_len), span)
    return width + 2 * die_margin, optics_h + 2 * field + 2 * die_margin
