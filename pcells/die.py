"""Dies: pad or bump fields fed by the dense tracks of a mesh (or the direct-drive pad rows), the die outline,
and the reticle check.

``pads="bumps"`` puts a flip-chip area array right above and below the mesh (pitch 100–150 µm typical);
``pads="edge"`` puts a multi-row bond-pad field on the top and bottom die edges (probe or wire-bond pitch): aligned
rows, a grid per mesh column stripe whose channels carry the stripe's tracks (:mod:`tapmesh.pcells.routing`), or
staggered rows (``stagger``), each pad on a line of its own between the pads of the other rows
(:mod:`tapmesh.pcells.stagger`).
The die outline is a rectangle on the process's floorplan layer; :func:`estimate_die` sizes a chip from its
parameters before anything is drawn, so an oversize die fails early (docs/pcells.md, "Dies").
"""

from __future__ import annotations

import math

import gdsfactory as gf

from . import fanout, schedule
from . import stagger as stag
from .cells import _rect, xs_layer
from .errors import ReticleError, RuleError, StaggerError
from .routing import grid_targets, pad_grid, pad_on_trace, staircase

PAD_KINDS = ("direct", "fanout", "edge", "bumps")


def pad_cell(size, rules, layer) -> gf.Component:
    """A pad (bond pad or bump landing) of ``size`` µm (a side, or (width, height)) on ``layer`` with its opening
    inset by the rule."""
    size = (float(size), float(size)) if isinstance(size, (int, float)) else tuple(map(float, size))
    if rules.pad_open is None:
        return gf.components.pad(size=size, layer=layer)
    return gf.components.pad(size=size, layer=layer, bbox_layers=(rules.pad_open,),
                             bbox_offsets=(-rules.pad_open_inset,))


def stripe_tracks(n: int, kind: str, return_group: int = 8) -> int:
    """Most tracks one column stripe sends to one die edge (signals of half its heaters + their shared returns)."""
    out = 0
    for h in schedule.heaters_per_column(n, kind):
        for k in (math.ceil(h / 2), h // 2):
            out = max(out, k + math.ceil(k / return_group))
    return out


def stagger_plan(n: int, kind: str, stagger, *, stripe: float, pad_pitch: float, pad_size: tuple, rules,
                 return_group: int = 8) -> stag.StaggerPlan:
    """The staggered pad lattice of an ``n``-mode chip from its parameters (checked before anything is drawn)."""
    tw = rules.min_width(rules.track_metal)
    space = rules.min_space(rules.track_metal)
    return stag.plan(stripe, stripe_tracks(n, kind, return_group), pitch=pad_pitch, size=tuple(pad_size),
                     track_width=tw, space=space, pad_space=rules.min_space(rules.pad_metal), stagger=stagger)


def check_pads(pads: str, pad_pitch: float, pad_size, rules) -> None:
    """Named errors for a pad kind, pitch or size the process does not allow (before anything is drawn);
    ``pad_size`` is a side or (width, height) µm."""
    if pads not in PAD_KINDS:
        raise ValueError(f"pads={pads!r}; expected one of {PAD_KINDS}")
    floor = rules.min_bump_pitch if pads == "bumps" else rules.min_pad_pitch
    what = "bump" if pads == "bumps" else "pad"
    if pad_pitch < floor:
        raise RuleError(f"{what} pitch {pad_pitch} µm below the process minimum {floor} µm ({rules.name})")
    space = rules.min_space(rules.pad_metal)
    sizes = (pad_size,) if isinstance(pad_size, (int, float)) else tuple(pad_size)
    if max(sizes) + space > pad_pitch:
        raise RuleError(f"{what} size {max(sizes)} µm leaves less than {space} µm at pitch {pad_pitch} µm")


def pad_fields(c, mesh_ref, mports, *, pads: str, pad_pitch: float, pad_size, track_pitch: float,
               track_width: float, rules, y_outer: tuple[float, float] | None, with_labels: bool, layer_label,
               labels: list[str], stagger=None) -> dict:
    """Escape every mesh track (ports ``e*``/``gnd_*`` on the mesh's top and bottom edges) to a pad of its own.

    Per column stripe and edge: a staircase jog into the channels of that stripe's pad grid, then straight up to
    the pad's row and a stub into the pad. ``y_outer`` (top, bottom) puts the field at the die edges
    (``pads="edge"``); ``None`` puts it right after the jogs (``pads="bumps"``). Pads are named ``pad_<port>``.
    ``pad_size`` is a side or (width along the edge, height) µm. ``stagger`` (``None``: aligned rows) is a row
    offset in µm, ``"auto"`` or a ready :class:`~tapmesh.pcells.stagger.StaggerPlan`: one staggered lattice for all stripes (:func:`tapmesh.pcells.stagger.plan`), each
    track straight up its pad's centre line. Returns ``{"rows": max rows, "field": (y_top_outer, y_bot_outer),
    "plan": the StaggerPlan or None, "height": the pad field's height µm}``.
    """
    mesh = mesh_ref.cell
    col_pitch = float(mesh.info["column_pitch"])
    y_edges = {"top": float(mesh.info["y_top"]), "bot": float(mesh.info["y_bot"])}
    space = rules.min_space(rules.track_metal)
    layer = gf.get_layer(rules.track_metal)
    size = (float(pad_size), float(pad_size)) if isinstance(pad_size, (int, float)) else tuple(map(float, pad_size))
    pad = pad_cell(size, rules, layer)
    x_mesh0 = mesh_ref.dxmin
    groups: dict[tuple, list] = {}
    for p in mports.values():
        if p.port_type != "electrical" or not (p.name.startswith("e") or p.name.startswith("gnd_")):
            continue
        side = "top" if p.orientation == 90 else "bot"
        col = int((p.dcenter[0] - x_mesh0) // col_pitch)
        groups.setdefault((side, col), []).append(p)
    plans = {}
    rows_max = 0
    jog_max = 0
    lattice = None
    if stagger is not None:
        if pads != "edge":
            raise StaggerError(f"pad_stagger applies to pads='edge' only, got pads={pads!r}")
        lattice = stagger if isinstance(stagger, stag.StaggerPlan) else stag.plan(
            col_pitch, max(len(v) for v in groups.values()), pitch=pad_pitch, size=size, track_width=track_width,
            space=space, pad_space=rules.min_space(rules.pad_metal), stagger=stagger)
    for key, ports in groups.items():
        ports.sort(key=lambda p: p.dcenter[0])
        x0 = x_mesh0 + key[1] * col_pitch
        if lattice is None:
            grid, rows = pad_grid(col_pitch, pad_pitch, size[0], len(ports), track_pitch, track_width, space)
            targets = grid_targets(x0, grid, rows, len(ports), track_pitch, track_width, space)
        else:
            targets = stag.sites(x0, lattice, len(ports))
            grid, rows = None, max(t[2] for t in targets) + 1
        src = [p.dcenter[0] for p in ports]
        east = sum(1 for s, t in zip(src, targets) if t[0] - s > 1e-6)
        west = sum(1 for s, t in zip(src, targets) if s - t[0] > 1e-6)
        plans[key] = (ports, grid, rows, targets, x0)
        rows_max = max(rows_max, rows)
        jog_max = max(jog_max, (max(east, west) + 1) * track_pitch)
    dy = pad_pitch if lattice is None else lattice.row_pitch
    field_h = (rows_max - 1) * dy + pad_pitch
    out = {}
    for side, sign in (("top", 1), ("bot", -1)):
        y_jog = y_edges[side] + sign * jog_max
        if y_outer is None:
            y0 = y_jog + sign * (space + track_width)
        else:
            y0 = (y_outer[0] if side == "top" else y_outer[1]) - sign * field_h
            if sign * (y0 - y_jog) < 0:
                y0 = y_jog
        out[side] = y0 + sign * field_h
        for (s, _col), (ports, grid, rows, targets, x0) in plans.items():
            if s != side:
                continue
            y_end = staircase(c, [p.dcenter[0] for p in ports], [t[0] for t in targets], y_edges[side], sign,
                              track_pitch, track_width, layer)
            hw = track_width / 2
            for p, (xt, xc, r) in zip(ports, targets):
                yr = y0 + sign * (pad_pitch / 2 + r * dy)
                _rect(c, xt - hw, xt + hw, *sorted((y_end, yr + sign * hw)), layer)
                if xc - xt > 1e-6:  # aligned rows: a stub from the channel into the pad
                    _rect(c, xt - hw, xc, yr - hw, yr + hw, layer)
                name = f"pad_{p.name}"
                ref = c.add_ref(pad, name=name)
                ref.dmove((xc, yr))
                c.ports.add_port(port=ref.ports["pad"], name=name)
                if with_labels:
                    text = p.name if p.name.startswith("gnd") else f"{p.name} {labels[int(p.name[1:]) - 1]}"
                    c.add_label(text, position=(xc, yr), layer=layer_label)
    return {"rows": rows_max, "field": (out["top"], out["bot"]), "plan": lattice, "height": round(field_h, 3)}


def die_outline(c, rules, margin: float, facets: bool = False) -> tuple[float, float]:
    """Draw the die outline (floorplan layer) ``margin`` µm around everything drawn (flush with the west and east
    drawing when ``facets``: edge couplers end on the diced facet); return its (width, height) µm."""
    b = c.dbbox()
    mx = 0.0 if facets else margin
    _rect(c, b.left - mx, b.right + mx, b.bottom - margin, b.top + margin, rules.floorplan)
    return b.width() + 2 * mx, b.height() + 2 * margin


def fits(size: tuple[float, float], reticle: tuple[float, float]) -> bool:
    """Does a (width, height) µm die fit the reticle field in either orientation?"""
    a, b = sorted(size)
    r0, r1 = sorted(reticle)
    return a <= r0 + 1e-6 and b <= r1 + 1e-6


def estimate_die(n: int, kind: str, *, pads: str, col_length: float, pitch: float, pad_pitch: float,
                 fiber_pitch: float, fiber_len: float, io_margin: float, route_separation: float, die_margin: float,
                 track_pitch: float, pad_gap: float = 150.0, pad_size: float = 80.0,
                 stagger: stag.StaggerPlan | None = None, shared_return: bool = True) -> tuple[float, float]:
    """(width, height) µm of a chip from its parameters, within a few hundred µm of the drawn die; ``stagger`` is
    the staggered edge field's plan (:func:`stagger_plan`; ``None``: aligned rows); ``shared_return=False``
    (direct pads) gives every heater lane its own zone slot."""
    per_col = schedule.heaters_per_column(n, kind)
    ncols = len(per_col)
    fan = io_margin + n * route_separation
    mesh_h = (n + 1) * pitch
    fiber_h = (n + 2) * fiber_pitch + 30.0
    if pads == "direct":
        col = col_length + schedule.zone_slots(n, kind, shared_return) * pad_pitch
        height = max(fiber_h, mesh_h + 2 * (pad_gap + pad_size))
    else:
        col = col_length
        tracks = max(math.ceil(h / 2) for h in per_col) + math.ceil(max(per_col) / 2 / 8)
        if stagger is None:
            rows = math.ceil(tracks / max(1, int(col_length // pad_pitch)))
            row_pitch = pad_pitch
        else:
            rows, row_pitch = stagger.rows, stagger.row_pitch
        # the jog, half a pitch to the first row's centre, the rows, half a pad beyond the last row's centre
        pad_field = pad_pitch / 2 + (rows - 1) * row_pitch + pad_size / 2
        field = (tracks + 1) * track_pitch + pad_field + 10.0
        height = max(fiber_h, mesh_h + 2 * field)
    width = ncols * col + 2 * (fan + fiber_len)
    return width + 2 * die_margin, height + 2 * die_margin


def reticle_error(n: int, kind: str, size: tuple, reticle: tuple, pads: str, alternatives: dict,
                  stagger=None) -> ReticleError:
    """The error for a die that does not fit, listing the alternatives that would."""
    ok = [f"{k} ({w / 1e3:.1f} × {h / 1e3:.1f} mm)" for k, (w, h) in alternatives.items() if fits((w, h), reticle)]
    hint = "; fits: " + ", ".join(ok) if ok else "; no pad option fits: use a smaller n or a shorter heater"
    what = f"pads={pads!r}" + ("" if stagger is None else f", pad_stagger={stagger!r}")
    return ReticleError(
        f"n={n} {kind} with {what} needs a {size[0] / 1e3:.1f} × {size[1] / 1e3:.1f} mm die, the reticle "
        f"field is {reticle[0] / 1e3:.0f} × {reticle[1] / 1e3:.0f} mm" + hint
    )


def reticle_check(n: int, kind: str, pads: str, *, col_length: float, coupler_dx: float, rules, plan=None,
                  alt_dx: float | None = None, stagger=None, track_width: float = 5.0, shared_return: bool = True,
                  pad_width: float = 80.0, **params) -> list[float]:
    """The estimated (width, height) µm of the chosen chip; :class:`ReticleError` (before anything is drawn) when
    it exceeds the process's reticle field, listing the pad options (direct, fanout, and on a via process edge
    and bumps) that would fit.

    ``col_length`` is the MZI length at ``coupler_dx``; the alternatives are estimated at ``alt_dx`` (``None``:
    each option's default coupler, 60 µm direct and fanout, 40 µm edge and bumps); ``plan`` the staggered field's
    plan (``None``: aligned); ``track_width``, ``shared_return``, ``pad_width`` the fan-out's
    (:func:`tapmesh.pcells.fanout.estimate_die`); ``params`` the rest of :func:`estimate_die`'s arguments.
    """
    options = [("direct", alt_dx or 60.0), ("fanout", alt_dx or 60.0)]
    if rules.contact == "via":
        options += [("edge", alt_dx or 40.0), ("bumps", alt_dx or 40.0)]
    est = {}
    for kind_, dx in options + [(pads, coupler_dx)]:
        chosen = (kind_, dx) == (pads, coupler_dx)
        l_col = col_length if dx == coupler_dx else col_length - 4 * (coupler_dx - dx)
        key = "chosen" if chosen else f"pads={kind_!r}"
        if kind_ == "fanout":
            keep = ("pitch", "pad_pitch", "fiber_pitch", "fiber_len", "io_margin", "route_separation", "die_margin")
            est[key] = fanout.estimate_die(n, kind, rules=rules, col_length=l_col, pad_width=pad_width,
                                           track_width=track_width, shared_return=shared_return,
                                           **{k: params[k] for k in keep})
        else:
            est[key] = estimate_die(n, kind, pads=kind_, col_length=l_col, track_pitch=6.5,
                                    stagger=plan if chosen else None, shared_return=shared_return, **params)
    size = est.pop("chosen")
    if not fits(size, rules.reticle):
        raise reticle_error(n, kind, size, rules.reticle, pads, est, stagger=stagger)
    return [round(v, 1) for v in size]


def direct_pads(c, mr, mports, m, *, pad_size, pad_gap, bus_width, via, cross_section_lane, cross_section_track,
                with_labels, layer_label, labels, pad="pad", pad_open=None, track_width: float = 5.0,
                shared_return: bool = True) -> None:
    """``pads="direct"``: one pad per heater on its zone track, a row above and below the mesh, a return bus per
    row in the lower metal with one ground pad; with ``shared_return=False`` one return pad per heater instead
    (``pad_r{h+1}``, no buses: nothing crosses). ``pad`` is the pad component (takes ``size`` and ``layer``),
    ``pad_open`` an opening layer drawn 2 µm inside each pad (``None``: none, or the pad cell draws its own)."""
    xt = xs_layer(cross_section_track)
    xl = xs_layer(cross_section_lane)
    y_top, y_bot = m.info["y_top"], m.info["y_bot"]
    tw = track_width
    pad = gf.get_component(pad, size=pad_size, layer=xt.layer)
    n_heaters = m.info["n_heaters"]
    ph = pad_size[1]
    opening = None if pad_open is None else (pad_open, (pad_size[0] - 4.0, pad_size[1] - 4.0))
    # ---- pads and return buses
    for side, sign, y_edge in (("top", 1, y_top), ("bot", -1, y_bot)) if shared_return else ():
        via_c = gf.get_component(via, size=(tw, tw))
        y_bus = y_edge + sign * pad_gap / 2
        y_pad = y_edge + sign * (pad_gap + ph / 2)
        gnd_x = []
        for p in mports.values():
            if p.name.startswith(f"gnd_{side}"):
                x = p.dcenter[0]
                gnd_x.append(x)
                _rect(c, x - tw / 2, x + tw / 2, *sorted((y_edge, y_bus)), xt.layer)
                v = c << via_c
                v.dmove((x, y_bus))
        # ground pad over the first column's optical section (no signal pads there)
        x_gpad = mr.dxmin + pad_size[0]
        gnd_x.append(x_gpad)
        _rect(c, min(gnd_x) - tw, max(gnd_x) + tw, y_bus - bus_width / 2, y_bus + bus_width / 2, xl.layer)
        v = c << via_c
        v.dmove((x_gpad, y_bus))
        pad_on_trace(c, pad, f"pad_gnd_{side}", x_gpad, y_bus, y_pad, tw, xt.layer,
                      f"GND_{side.upper()}" if with_labels else None, layer_label, opening)
    for h in range(n_heaters):
        for prefix in ("e",) if shared_return else ("e", "r"):
            p = mports[f"{prefix}{h + 1}"]
            x, y = p.dcenter
            sign = 1 if p.orientation == 90 else -1
            y_pad = y + sign * (pad_gap + ph / 2)
            text = f"e{h + 1} {labels[h]}" if prefix == "e" else f"r{h + 1}"
            pad_on_trace(c, pad, f"pad_{prefix}{h + 1}", x, y, y_pad, tw, xt.layer,
                          text if with_labels else None, layer_label, opening)
