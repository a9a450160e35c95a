"""Dense heater routing: vertical top-metal tracks over the mesh at the process pitch, and a one-layer escape from
the tracks to a grid of pads or bumps.

Over the mesh every heater lane (lower metal, running east inside its MZI) drops through a via onto its own
vertical track (top metal) in a slot of its column; tracks of the upper half of a column run to the top edge,
the lower half's to the bottom edge, and the two halves share slots (their tracks never overlap in y). Each
group of ``return_group`` heaters shares one return track. Beyond the mesh edge a staircase jog (order-
preserving, so planar in one metal) moves the tracks into the channels between the pad columns of a
per-column pad grid. The geometry and why it is crossing-free are in docs/pcells.md ("Dense routing").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gdsfactory as gf

from .cells import _rect
from .errors import RuleError


@dataclass(frozen=True)
class Track:
    """One vertical track at the mesh edge: ``name`` (port name), x (µm), and the heaters it serves."""

    name: str
    x: float
    heaters: tuple


def slot_pitch(track_width: float, via_size: float, space: float) -> float:
    """Smallest slot pitch (µm): a via square next to a neighbour's track, ``space`` apart."""
    return round(via_size / 2 + track_width / 2 + space, 3)


def _assign(items: list, slots: list[float]) -> dict:
    """Greedy slot assignment: every item ``(key, x_min)`` gets a distinct slot ``≥ x_min``, eastmost first."""
    free = sorted(slots)
    out = {}
    for key, x_min in sorted(items, key=lambda it: -it[1]):
        if not free or free[-1] < x_min:
            return {}
        out[key] = free.pop()
    return out


def dense_tracks(
    c: gf.Component,
    heaters_by_col: dict,
    col_x0: dict,
    col_len: float,
    y_top: float,
    y_bot: float,
    *,
    track_width: float,
    via_size: float,
    track_pitch: float,
    return_group: int,
    via_c,
    lane_layer,
    track_layer,
) -> dict[str, list[Track]]:
    """Draw the vias and vertical tracks of every column; add ports ``e{h+1}`` and ``gnd_<top|bot><col>_<g>``.

    ``heaters_by_col[col]`` lists ``(h, sig_port, ret_port, sig_x0, ret_x0)``: the lane end ports (east edge of the
    cell) and the x where each lane starts, in mesh coordinates. Returns the tracks per ``"top<col>"`` /
    ``"bot<col>"`` group, sorted by x.
    """
    margin = via_size / 2 + 1.0
    out: dict[str, list[Track]] = {}
    for col, entries in heaters_by_col.items():
        x0 = col_x0[col]
        n_slots = int((col_len - 2 * margin) // track_pitch) + 1
        slots = [round(x0 + margin + k * track_pitch, 3) for k in range(n_slots)]
        entries = sorted(entries, key=lambda e: -e[1].dcenter[1])
        n_up = math.ceil(len(entries) / 2)
        for side, group in (("top", entries[:n_up]), ("bot", entries[n_up:])):
            if not group:
                continue
            # the return groups: contiguous runs of heaters, nearest the edge first
            order = group if side == "top" else group[::-1]
            rgroups = [order[i:i + return_group] for i in range(0, len(order), return_group)]
            items = [(("s", e[0]), e[3] + margin) for e in group]
            items += [(("r", g), max(e[4] for e in rg) + margin) for g, rg in enumerate(rgroups)]
            slot_of = _assign(items, slots)
            if not slot_of:
                need = len(items)
                raise RuleError(
                    f"column {col}: {need} tracks at {track_pitch} µm pitch do not fit the {col_len:.0f} µm column "
                    f"({n_slots} slots); use a larger return_group or a longer heater"
                )
            y_edge = y_top if side == "top" else y_bot
            orient = 90 if side == "top" else 270
            tracks = []
            for h, sig, _ret, _, _ in group:
                xs = slot_of[("s", h)]
                _via_on_lane(c, via_c, sig, xs, lane_layer)
                _track(c, xs, sig.dcenter[1], y_edge, track_width, via_size, track_layer)
                name = f"e{h + 1}"
                c.add_port(name, center=(xs, y_edge), width=track_width, orientation=orient, layer=track_layer,
                           port_type="electrical")
                tracks.append(Track(name, xs, (h,)))
            for g, rg in enumerate(rgroups):
                xs = slot_of[("r", g)]
                ys = []
                for _h, _sig, ret, _, _ in rg:
                    _via_on_lane(c, via_c, ret, xs, lane_layer)
                    ys.append(ret.dcenter[1])
                far = min(ys) if side == "top" else max(ys)
                _track(c, xs, far, y_edge, track_width, via_size, track_layer)
                name = f"gnd_{side}{col}_{g}"
                c.add_port(name, center=(xs, y_edge), width=track_width, orientation=orient, layer=track_layer,
                           port_type="electrical")
                tracks.append(Track(name, xs, tuple(e[0] for e in rg)))
            out[f"{side}{col}"] = sorted(tracks, key=lambda t: t.x)
    return out


def _via_on_lane(c, via_c, port, x: float, lane_layer) -> None:
    """A lane-to-track via at ``x`` on the lane ending in ``port`` (the lane is widened under the via)."""
    y = port.dcenter[1]
    v = c << via_c
    v.dmove((x, y))


def _track(c, x: float, y_from: float, y_edge: float, width: float, via_size: float, layer) -> None:
    y0, y1 = sorted((y_from, y_edge))
    if y_from < y_edge:
        y0 -= via_size / 2
    else:
        y1 += via_size / 2
    _rect(c, x - width / 2, x + width / 2, y0, y1, layer)


def stair_levels(sources: list[float], targets: list[float], pitch: float) -> dict[tuple[float, float], int]:
    """The level (0 nearest the sources) of every moving (source, target) pair of :func:`staircase`."""
    pairs = sorted(zip(sources, targets))
    east = sorted((p for p in pairs if p[1] - p[0] > 1e-6), key=lambda p: -p[0])
    west = sorted((p for p in pairs if p[0] - p[1] > 1e-6), key=lambda p: p[0])
    level_of: dict[tuple[float, float], int] = {}
    for movers, reach in ((east, lambda t, s2: s2 <= t + pitch - 1e-6), (west, lambda t, s2: s2 >= t - pitch + 1e-6)):
        done: list[tuple[float, float]] = []
        for s, t in movers:  # every earlier mover lies beyond s in the direction of travel
            under = [level_of[q] for q in done if reach(t, q[0])]
            level_of[(s, t)] = 1 + max(under, default=-1)
            done.append((s, t))
    return level_of


def staircase(c, sources: list[float], targets: list[float], y0: float, sign: int, pitch: float, width: float,
              layer) -> float:
    """Order-preserving jogs from x ``sources`` (at ``y0``) to x ``targets``, one metal, no crossings.

    A track moving east must turn above every track east of it whose source lies under its horizontal (within a
    ``pitch``), a track moving west above every such track west of it; tracks whose spans are apart share a
    level, so the staircase is as tall as the longest chain of overlapping jogs, not the number of tracks
    (docs/pcells.md). ``sign`` is +1 (going up) or −1. Returns the y (µm) where every track continues vertically
    at its target x.
    """
    if len(sources) != len(targets):
        raise ValueError("staircase needs as many targets as sources")
    pairs = sorted(zip(sources, targets))
    level_of = stair_levels(sources, targets, pitch)
    levels = 1 + max(level_of.values(), default=-1)
    y_end = y0 + sign * (levels + 1) * pitch
    hw = width / 2
    for p in pairs:
        s, t = p
        if p not in level_of:
            _rect(c, s - hw, s + hw, *sorted((y0, y_end)), layer)
            continue
        yl = y0 + sign * (level_of[p] + 1) * pitch
        _rect(c, s - hw, s + hw, *sorted((y0, yl + sign * hw)), layer)
        _rect(c, min(s, t) - hw, max(s, t) + hw, yl - hw, yl + hw, layer)
        _rect(c, t - hw, t + hw, *sorted((yl - sign * hw, y_end)), layer)
    return y_end


@dataclass(frozen=True)
class PadGrid:
    """Per-stripe pad grid: ``columns`` pad columns of pitch ``px`` in a stripe, rows of pitch ``py`` (µm)."""

    columns: int
    px: float
    py: float
    size: float


def pad_grid(stripe: float, pitch: float, size: float, n_tracks: int, track_pitch: float, track_width: float,
             space: float) -> tuple[PadGrid, int]:
    """The pad grid of one column stripe for ``n_tracks`` tracks, and its row count.

    Raises :class:`RuleError` when the channels between pad columns cannot carry the tracks of the rows.
    """
    cols = int(stripe // pitch)
    if cols < 1:
        raise RuleError(f"pad pitch {pitch} µm larger than the column stripe ({stripe:.0f} µm)")
    rows = math.ceil(n_tracks / cols)
    px = stripe / cols
    channel = px - size - 2 * space - track_width
    need = (rows - 1) * track_pitch
    if channel < need:
        raise RuleError(
            f"{rows} pad rows need {need + size + 2 * space + track_width:.0f} µm between pad centres, the stripe "
            f"gives {px:.0f} µm: use pads ≤ {px - need - 2 * space - track_width:.0f} µm, a larger pitch or bumps"
        )
    return PadGrid(cols, px, pitch, size), rows


def grid_targets(x0: float, grid: PadGrid, rows: int, n_tracks: int, track_pitch: float, track_width: float,
                 space: float) -> list[tuple[float, float, int]]:
    """(channel x, pad centre x, row) for ``n_tracks`` tracks of the stripe starting at ``x0``, sorted by x.

    Pads sit at the east end of their pitch cell, so every channel lies inside the stripe (no jog crosses a
    neighbouring stripe's tracks); pad column j's channel runs west of it with row 0 (nearest the mesh) on the
    channel's east side, so each stub into a pad crosses only tracks that have already ended.
    """
    out = []
    k = 0
    for j in range(grid.columns):
        xc = x0 + (j + 1) * grid.px - space - grid.size / 2
        for r in range(rows):
            if k == n_tracks:
                break
            out.append((round(xc - grid.size / 2 - space - track_width / 2 - r * track_pitch, 3), xc, r))
            k += 1
    return sorted(out)


def pad_on_trace(c, pad, name: str, x: float, y_from: float, y_pad: float, trace_width: float, trace_layer,
                 label: str | None, layer_label, opening=None) -> None:
    """A bond pad centred at (``x``, ``y_pad``) µm, fed by a vertical trace from ``y_from``; its port and
    reference are named ``name``, with an optional text label on the pad and an optional opening window
    ``opening = (layer, (w, h))`` centred on it."""
    _rect(c, x - trace_width / 2, x + trace_width / 2, *sorted((y_from, y_pad)), trace_layer)
    ref = c.add_ref(pad, name=name)
    ref.dmove((x, y_pad))
    c.ports.add_port(port=ref.ports["pad"], name=name)
    if opening is not None:
        layer, (w, h) = opening
        _rect(c, x - w / 2, x + w / 2, y_pad - h / 2, y_pad + h / 2, layer)
    if label is not None:
        c.add_label(label, position=(x, y_pad), layer=layer_label)
