"""Thermal crosstalk from heater positions: a separable exponential heat-spreading kernel over the drawn heaters.

Heater i (length L_i along x, centre (x_i, y_i), µm) dissipating power P spreads a temperature rise
``∝ (P/L_i) ∫ exp(−|x − x'|/ℓ) dx' · exp(−|y − y_i|/ℓ)`` with thermal length ℓ; the phase of heater j is the
integral of that rise over its own length. The crosstalk ``X[j, i]`` is heater j's phase per unit power in
heater i over its phase per unit power in itself (so ``φ_j = φ0_j + α_j (P_j + Σ_i X[j, i] P_i)``, the
``AsBuilt`` convention); every deep trench the straight line between the two heaters crosses multiplies it by
``trench_transmission``. Derivation and the parameter's range: docs/pcells.md ("Thermal crosstalk").
Pure NumPy, positions as arrays: no layout import.
"""

from __future__ import annotations

import numpy as np

THERMAL_LENGTH = 25.0
"""Default thermal length ℓ (µm): oxide-clad SOI, no undercut; neighbours 100 µm apart couple ≈ 2 %."""


def _phi(t: np.ndarray, ell: float) -> np.ndarray:
    """Second antiderivative of ``exp(−|t|/ℓ)`` with Φ(0) = Φ'(0) = 0: ``ℓ|t| − ℓ²(1 − e^{−|t|/ℓ})``."""
    a = np.abs(t)
    return ell * a - ell * ell * (1.0 - np.exp(-a / ell))


def overlap_integral(a1, b1, a2, b2, ell: float) -> np.ndarray:
    """``∫_{a1}^{b1} ∫_{a2}^{b2} exp(−|x − y|/ℓ) dy dx`` (µm²), closed form, elementwise."""
    a1, b1, a2, b2 = (np.asarray(v, dtype=float) for v in (a1, b1, a2, b2))
    return _phi(b1 - a2, ell) + _phi(a1 - b2, ell) - _phi(b1 - b2, ell) - _phi(a1 - a2, ell)


def _trench_crossings(p: np.ndarray, q: np.ndarray, trenches: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per segment p→q (arrays (P, 2)), how many axis-aligned trench rectangles (x0, y0, x1, y1) it crosses."""
    out = np.zeros(len(p), dtype=int)
    if trenches is None or len(trenches) == 0 or len(p) == 0:
        return out
    t = np.asarray(trenches, dtype=float)
    tx0, ty0 = np.minimum(t[:, 0], t[:, 2]), np.minimum(t[:, 1], t[:, 3])
    tx1, ty1 = np.maximum(t[:, 0], t[:, 2]), np.maximum(t[:, 1], t[:, 3])
    for s in range(0, len(p), chunk):
        a, b = p[s:s + chunk, None, :], q[s:s + chunk, None, :]
        d = b - a
        # Liang–Barsky clip of the segment against each rectangle: it crosses when the clipped interval is non-empty
        shape = (len(a), len(t))
        t0 = np.zeros(shape)
        t1 = np.ones(shape)
        ok = np.ones(shape, dtype=bool)
        for k, (lo, hi) in enumerate(((tx0, tx1), (ty0, ty1))):
            dk, ak = np.broadcast_to(d[..., k], shape), np.broadcast_to(a[..., k], shape)
            par = np.abs(dk) < 1e-12
            ok &= ~par | ((ak >= lo) & (ak <= hi))
            with np.errstate(divide="ignore", invalid="ignore"):
                u0 = np.where(par, -np.inf, (lo - ak) / dk)
                u1 = np.where(par, np.inf, (hi - ak) / dk)
            t0 = np.maximum(t0, np.minimum(u0, u1))
            t1 = np.minimum(t1, np.maximum(u0, u1))
        out[s:s + chunk] = (ok & (t0 <= t1)).sum(axis=1)
    return out


def crosstalk_pairs(
    positions,
    lengths,
    *,
    thermal_length: float = THERMAL_LENGTH,
    cutoff: float | None = None,
    trenches=None,
    trench_transmission: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse crosstalk ``(rows j, cols i, X[j, i])`` of heaters along x at ``positions`` (H, 2) µm.

    Args:
        positions: heater centres (H, 2), µm.
        lengths: heater lengths (H,), µm.
        thermal_length: ℓ, µm (> 0).
        cutoff: pairs whose centres are farther apart (in y, or in x beyond the heater ends) than this are
            dropped, µm (default 8ℓ: below e⁻⁸ ≈ 3·10⁻⁴).
        trenches: deep trenches as rectangles (K, 4) ``(x0, y0, x1, y1)`` µm, or ``None``.
        trench_transmission: factor per trench crossed by the line between two heater centres (0..1].
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    length = np.broadcast_to(np.asarray(lengths, dtype=float), (len(pos),))
    if not thermal_length > 0:
        raise ValueError(f"thermal_length={thermal_length!r}: need > 0 µm")
    if not 0 < trench_transmission <= 1:
        raise ValueError(f"trench_transmission={trench_transmission!r}: need 0 < t ≤ 1")
    if np.any(length <= 0):
        raise ValueError("heater lengths must be > 0 µm")
    ell = float(thermal_length)
    cut = 8 * ell if cutoff is None else float(cutoff)
    order = np.argsort(pos[:, 1], kind="stable")
    ys = pos[order, 1]
    rows, cols = [], []
    lo = np.searchsorted(ys, ys - cut, side="left")
    hi = np.searchsorted(ys, ys + cut, side="right")
    half = length / 2
    for k in range(len(pos)):  # candidates within the y cutoff, then the x test, vectorised per heater
        cand = order[lo[k]:hi[k]]
        i = order[k]
        gap = np.abs(pos[cand, 0] - pos[i, 0]) - half[cand] - half[i]
        keep = cand[(gap <= cut) & (cand != i)]
        rows.append(keep)
        cols.append(np.full(len(keep), i))
    j = np.concatenate(rows) if rows else np.zeros(0, int)
    i = np.concatenate(cols) if cols else np.zeros(0, int)
    xi0, xi1 = pos[i, 0] - half[i], pos[i, 0] + half[i]
    xj0, xj1 = pos[j, 0] - half[j], pos[j, 0] + half[j]
    cross = overlap_integral(xj0, xj1, xi0, xi1, ell) / length[i]
    self_ = overlap_integral(xj0, xj1, xj0, xj1, ell) / length[j]
    vals = cross / self_ * np.exp(-np.abs(pos[j, 1] - pos[i, 1]) / ell)
    if trenches is not None and len(trenches):
        vals = vals * trench_transmission ** _trench_crossings(pos[i], pos[j], np.asarray(trenches, float))
    keep = vals > 0
    return j[keep], i[keep], vals[keep]


def crosstalk_matrix(positions, lengths, **kwargs) -> np.ndarray:
    """Dense (H, H) crosstalk ``X[j, i]`` with a zero diagonal (:func:`crosstalk_pairs`; small H only)."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    j, i, v = crosstalk_pairs(pos, lengths, **kwargs)
    x = np.zeros((len(pos), len(pos)))
    x[j, i] = v
    return x


def neighbour_pairs(positions, lengths, *, thermal_length: float = THERMAL_LENGTH, threshold: float = 1e-3,
                    **kwargs) -> np.ndarray:
    """(P, 2) ordered pairs ``(j, i)`` whose crosstalk ``X[j, i]`` is at least ``threshold`` (the heaters a
    calibration must treat as coupled), from drawn positions."""
    j, i, v = crosstalk_pairs(positions, lengths, thermal_length=thermal_length, **kwargs)
    keep = v >= threshold
    return np.stack([j[keep], i[keep]], axis=1)


def crosstalk_from_chip_map(chip_map, *, thermal_length: float = THERMAL_LENGTH, trench_transmission: float = 0.3,
                            cutoff: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`crosstalk_pairs` of a chip map's drawn heaters and deep trenches (``chip_map.heater_positions()``,
    ``chip_map.trench_rects()``: a :class:`tapmesh.pcells.ChipMap`, or anything with those two methods)."""
    pos, lengths = chip_map.heater_positions()
    trenches = chip_map.trench_rects() if hasattr(chip_map, "trench_rects") else None
    return crosstalk_pairs(pos, lengths, thermal_length=thermal_length, cutoff=cutoff, trenches=trenches,
                           trench_transmission=trench_transmission)


def neighbour_pairs_from_chip_map(chip_map, *, thermal_length: float = THERMAL_LENGTH, threshold: float = 1e-3,
                                  trench_transmission: float = 0.3) -> np.ndarray:
    """(P, 2) pairs ``(j, i)`` of a chip map's heaters coupled by at least ``threshold`` (calibration's
    neighbour list read from the layout)."""
    j, i, v = crosstalk_from_chip_map(chip_map, thermal_length=thermal_length,
                                      trench_transmission=trench_transmission)
    keep = v >= threshold
    return np.stack([j[keep], i[keep]], axis=1)
