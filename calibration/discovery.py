"""Heater-law discovery: where each heater's fringe lies and where 2π is, found with no hint, before the fine fits.

For one MZI column at a time (all its φ heaters together, then its θ heaters per group, as the progressive
stage reads them) the heaters are swept over windows of the drive's square growing 4× from a tiny one to
the bench's full allowed range (half the stage's frames per setting); the first window holding one to four clean fringe periods gives each heater's
α (rad per V² or mA²), which the fine sweeps then centre on. The derivation and what it costs are in
docs/calibration.md ("Heater-law discovery").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tapmesh.calibration.fringes import fit_fringes

if TYPE_CHECKING:
    from tapmesh.calibration.progressive import Progressive

WINDOW_POINTS = 12
"""Settings per discovery window (uniform in drive², 0 included)."""
GROWTH = 4.0
"""Ratio of successive window sizes."""
FIRST_WINDOW = GROWTH**-5
"""The first window of column 0, as a fraction of the full range: resolves α·range up to ~2·10⁴ rad."""
MIN_SPAN = 0.9 * 2 * np.pi
"""Fewest radians a window must span to count as holding a fringe (a bit less than one period)."""


def _grid_fit(x, y, spans):
    """Best single-frequency fit of each column of ``y`` (S, M) over α = spans / x[-1] (grid, rad):
    returns α (M,), the fitted modulation amplitude (M,) and the residual RMS (M,)."""
    width = x[-1]
    best = np.full(y.shape[1], np.inf)
    alpha = np.zeros(y.shape[1])
    amp = np.zeros(y.shape[1])
    for span in spans:
        a = span / width
        design = np.stack([np.ones_like(x), np.cos(a * x), np.sin(a * x)], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        cost = np.sum((design @ coef - y) ** 2, axis=0)
        better = cost < best
        best = np.where(better, cost, best)
        alpha = np.where(better, a, alpha)
        amp = np.where(better, np.hypot(coef[1], coef[2]), amp)
    return alpha, amp, np.sqrt(best / len(x))


def resolve(x, y, noise: float):
    """Which columns of ``y`` (S, M), read over the window ``x`` (S,) of drive² from 0, hold a clean fringe
    of at least :data:`MIN_SPAN`: returns (found (M,) bool, α (M,), amplitude (M,)). ``noise`` is the
    reading noise of one averaged reading (mW). Clean: the fit leaves less than a fifth of the modulation's
    variance unexplained and the modulation is 6× the noise."""
    nyquist = 0.8 * np.pi * (len(x) - 1)
    spans = np.geomspace(MIN_SPAN, nyquist, 120)
    alpha, amp, rms = _grid_fit(x, y, spans)
    # polish α, then accept
    fine = fit_fringes(x, y, alpha, span=(0.93, 1.07))
    alpha, amp, rms = fine.alpha, fine.amplitude, fine.rms
    clean = (rms < 0.45 * amp / np.sqrt(2)) & (amp > 6 * noise)
    return clean & (alpha * x[-1] >= MIN_SPAN * 0.95), alpha, amp


def partial_span(x, y, noise: float):
    """For columns that never showed a full fringe: the largest phase (rad) a modulation of less than one
    period fits over ``x`` (or 0 where the readings do not move beyond noise)."""
    spans = np.linspace(0.3, MIN_SPAN, 40)
    alpha, amp, rms = _grid_fit(x, y, spans)
    moved = (amp > 6 * noise) & (rms < 0.45 * amp / np.sqrt(2))
    return np.where(moved, alpha * x[-1], 0.0)


def discover_column(stage: Progressive, c: int, noise: float) -> dict:
    """Discover the law of the φ and θ heaters of column ``c``: coarse sweeps over growing windows of the
    bench's allowed range (module doc), the readings of the stage's own frames (φ: equal in-phase light on
    both inputs, read at the θ tap; θ: light on the top input, per group, read at the first tap downstream).
    Writes each found α into ``stage.alpha_guess`` and returns {heater: α or None} (None: no full fringe
    within the limits; such heaters are listed in ``stage.short_reach`` with the phase they reach)."""
    top, k_all, n = stage.top, stage.k_all, stage.n
    members = list(top.columns[c])
    tops = np.array([top.mzis[k][1] for k in members])
    amp = np.sqrt(stage.power)
    jobs = []  # (heaters, field, read taps)
    f_both = np.zeros(n, dtype=np.complex128)
    f_both[tops] = f_both[tops + 1] = amp / np.sqrt(2)
    phi = [(k_all + k, k) for k in members if stage.usable[0, k]]
    if phi:
        jobs.append(([h for h, _ in phi], f_both, [t for _, t in phi]))
    for g in (0, 1):
        group = members[g::2]
        if not group:
            continue
        f_g = np.zeros(n, dtype=np.complex128)
        f_g[[top.mzis[k][1] for k in group]] = amp
        reads = []
        for k in group:
            m = top.mzis[k][1]
            tap = stage._channel(c, m + 1)
            tap = stage._channel(c, m) if tap is None else tap
            reads.append((k, tap))
        reads = [(k, t) for k, t in reads if t is not None]
        if reads:
            jobs.append(([k for k, _ in reads], f_g, [t for _, t in reads]))
    found: dict[int, float | None] = {}
    x_top = stage.x_top
    known = np.array([a for a in stage.discovered.values() if a is not None])
    hinted = list(stage.discovered) == [-1]
    for heaters, field, taps in jobs:
        heaters, taps = np.array(heaters), np.array(taps)
        full = float(np.min(x_top[heaters]))
        if len(known):  # later columns: start where the chip's known laws span ~1.3 fringes (a mere
            # hint, key -1, is trusted less: 16× below, so that a hint 10× off still cannot alias)
            window = min(full, 2.6 * np.pi / float(np.median(known))) / (GROWTH**2 if hinted else 1.0)
        else:
            window = full * FIRST_WINDOW
        todo = np.ones(len(heaters), dtype=bool)
        x = y = None
        x_delivered = stage.deliver(np.repeat(field[None], max(1, stage.r // 2), axis=0))
        while todo.any():
            x = np.linspace(0.0, window, WINDOW_POINTS)
            y = []
            for xs in x:
                v = stage.base_v.copy()
                v[heaters[todo]] = np.sqrt(xs)
                y.append(stage.mean_taps(v, x_delivered)[taps[todo]])
            y = np.asarray(y)
            ok, alpha, _ = resolve(x, y, noise)
            idx = np.flatnonzero(todo)
            for j, i in enumerate(idx):
                if ok[j]:
                    found[int(heaters[i])] = float(alpha[j])
            todo[idx[ok]] = False
            if window >= full or not todo.any():
                break
            window = min(full, window * GROWTH)
        if todo.any():
            reach = partial_span(x, y, noise)
            for j, i in enumerate(np.flatnonzero(todo)):
                heater = int(heaters[i])
                found[heater] = None
                stage.short_reach[heater] = float(reach[j])
    for heater, alpha in found.items():
        stage.discovered[heater] = alpha
        if alpha is not None:
            stage.alpha_guess[heater] = alpha
    return found
