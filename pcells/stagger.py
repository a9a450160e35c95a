"""Staggered bond-pad rows: the plan (pad columns, rows, row offset, row pitch) and the pad sites of one stripe.

Row ``k`` of a staggered field sits ``k·offset`` (mod the in-row pitch ``px``) east of row 0, so every pad has an
x line of its own: its track comes straight up from the mesh side between the pads of the rows below it, and
the straight line from the pad to the die edge (bond wire, cantilever probe) passes between the pads of the rows
above it. That holds when every pair of rows is offset by at least the *clearance*
``pad_width/2 + track_width/2 + space`` (µm) and at most ``px −`` clearance; a stagger that breaks it raises
:class:`StaggerError` before anything is drawn.

The rows are packed as close as the rules allow: any two pads at least ``pad_pitch`` apart centre to centre (the
probe/bond pitch, in every direction, as the aligned grid has it) and their metal at least the pad metal's space
apart, so two rows offset by half the in-row pitch sit ``pitch·√3/2`` apart (hexagonal packing). All stripes of
a die share one lattice (same columns, rows and phases), so pads and tracks of neighbouring stripes keep the same
clearances as those of one stripe (docs/pcells.md, "Staggered edge pads").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import RuleError, StaggerError

AUTO = "auto"


@dataclass(frozen=True)
class StaggerPlan:
    """One lattice of staggered pad sites for every column stripe of a die (all lengths µm).

    Attributes:
        columns: pad columns per stripe (sites per row per stripe).
        px: in-row pitch (stripe / columns).
        rows: rows of the field.
        offset: x offset of row k+1 from row k (taken mod ``px``).
        phases: x of row k's first site from the stripe's west edge, per row.
        row_pitch: centre-to-centre distance of consecutive rows.
        size: (width along the edge, height across it) of a pad.
        clearance: smallest x distance of a pad centre from another row's track line.
        pitch: the pad pitch (smallest centre-to-centre distance of two pads).
    """

    columns: int
    px: float
    rows: int
    offset: float
    phases: tuple
    row_pitch: float
    size: tuple
    clearance: float
    pitch: float

    @property
    def capacity(self) -> int:
        return self.columns * self.rows

    @property
    def field_height(self) -> float:
        """Height of the field (µm): half a pad pitch beyond the first and the last row's centres."""
        return (self.rows - 1) * self.row_pitch + self.pitch


def clearance(pad_width: float, track_width: float, space: float) -> float:
    """Smallest x distance (µm) from a pad centre to a track line passing it: half pad, half track, one space."""
    return pad_width / 2 + track_width / 2 + space


def _circ(d: float, px: float) -> float:
    d = d % px
    return min(d, px - d)


def row_pitch(px: float, rows: int, offset: float, pitch: float, size: tuple, pad_space: float) -> float:
    """Smallest row pitch (µm): every pad pair ≥ ``pitch`` apart centre to centre, metal ≥ ``pad_space`` apart."""
    w, h = size
    dy = 0.0
    for k in range(1, rows):
        d = _circ(k * offset, px)
        need = math.sqrt(max(0.0, pitch * pitch - d * d))
        if d < w + pad_space:
            need = max(need, h + pad_space)
        dy = max(dy, need / k)
    return round(max(dy, 1e-3), 3)


def check_offset(offset: float, px: float, rows: int, clear: float) -> None:
    """:class:`StaggerError` when some pair of the ``rows`` rows is offset by less than ``clear`` (mod ``px``)."""
    if not math.isfinite(offset) or offset <= 0:
        raise StaggerError(f"pad stagger {offset!r} µm: need a positive row offset (or 'auto')")
    for k in range(1, rows):
        d = _circ(k * offset, px)
        if d < clear - 1e-9:
            raise StaggerError(
                f"pad stagger {offset:g} µm puts rows 0 and {k} {d:.1f} µm apart along the edge (in-row pitch "
                f"{px:.1f} µm): a track passing a pad needs ≥ {clear:g} µm (half pad + half "
                f"track + space); {rows} rows need an offset with every k·offset mod {px:.1f} in [{clear:g}, {px - clear:.1f}] "
                f"µm, e.g. {px / rows:.1f} µm (pitch/rows) if ≥ {clear:g}, or pad_stagger='auto'"
            )


def _phases(offset: float, px: float, rows: int) -> tuple:
    """Row phases: row k at ``c0 + k·offset`` mod ``px``, ``c0`` centring the largest free gap on the cell edge
    (so every site lies inside its stripe, as far from the stripe edges as the lattice allows)."""
    raw = sorted(((k * offset) % px, k) for k in range(rows))
    xs = [x for x, _ in raw]
    gaps = [((xs[(i + 1) % rows] - xs[i]) % px or px, i) for i in range(rows)]
    g, i = max(gaps)
    c0 = -(xs[i] + g / 2)  # the middle of the largest gap goes to x = 0 (mod px)
    return tuple(round((k * offset + c0) % px, 3) for k in range(rows))


def plan(stripe: float, n_tracks: int, *, pitch: float, size: tuple, track_width: float, space: float,
         pad_space: float, stagger) -> StaggerPlan:
    """The staggered lattice for stripes of width ``stripe`` µm carrying up to ``n_tracks`` tracks each.

    ``stagger="auto"``: the pad columns, rows and row offset ``m·px/rows`` (``m`` coprime to ``rows``, so the
    sites of all rows fall on distinct lines ``px/rows`` apart) with the smallest field; a number: that
    row offset (µm) at ``stripe // pitch`` columns. Raises :class:`StaggerError` (a :class:`RuleError`) when the
    offset puts a track within a space of a pad, or when no staggered field of this stripe carries the tracks
    (the message gives the widest pad that would).
    """
    w, h = size
    clear = clearance(w, track_width, space)
    max_cols = int(stripe // pitch)
    if max_cols < 1:
        raise RuleError(f"pad pitch {pitch} µm larger than the column stripe ({stripe:.0f} µm)")
    if stagger == AUTO:
        best = None
        for cols in range(1, max_cols + 1):
            px = stripe / cols
            rows = math.ceil(n_tracks / cols)
            if rows < 1 or px / rows < clear - 1e-9:
                continue
            for m in range(1, max(2, rows)):  # row step m·px/rows, m coprime to rows: every site its own line
                if math.gcd(m, rows) != 1:
                    continue
                off = m * px / rows
                p = StaggerPlan(cols, px, rows, off, _phases(off, px, rows),
                                row_pitch(px, rows, off, pitch, size, pad_space), tuple(size), clear, pitch)
                if best is None or p.field_height < best.field_height - 1e-6:
                    best = p
        if best is None:
            w_fit = 2 * (stripe / n_tracks - track_width / 2 - space)
            raise StaggerError(
                f"{n_tracks} staggered pads per {stripe:.0f} µm column stripe need ≥ {n_tracks * clear:.0f} µm of "
                f"edge (each pad its own line, {clear:g} µm from the next): use pads ≤ {w_fit:.0f} µm wide"
                + (" (none is possible: below the pad opening)" if w_fit < 20 else "")
                + ", aligned rows (pad_stagger=None) or bumps"
            )
        return best
    if isinstance(stagger, bool) or not isinstance(stagger, (int, float)):
        raise StaggerError(f"pad_stagger={stagger!r}: expected None, 'auto' or a row offset in µm")
    px = stripe / max_cols
    rows = max(1, math.ceil(n_tracks / max_cols))
    off = float(stagger)
    check_offset(off, px, rows, clear)
    return StaggerPlan(max_cols, px, rows, off, _phases(off, px, rows), row_pitch(px, rows, off, pitch, size,
                       pad_space), tuple(size), clear, pitch)


def sites(x0: float, p: StaggerPlan, n_tracks: int) -> list[tuple[float, float, int]]:
    """(track x, pad centre x, row) of ``n_tracks`` pads of the stripe starting at ``x0``, sorted by x.

    Pad column by pad column, rows 0 (nearest the mesh) up: the track of a pad is its centre line.
    """
    if n_tracks > p.capacity:
        raise StaggerError(f"{n_tracks} tracks in a stripe of {p.capacity} staggered pad sites")
    out = []
    for j in range(p.columns):
        for r in range(p.rows):
            if len(out) == n_tracks:
                break
            x = round(x0 + j * p.px + p.phases[r], 3)
            out.append((x, x, r))
    return sorted(out)
