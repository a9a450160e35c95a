"""Fringe fitting: the sin² law of a swept heater, and what a fitted fringe says about the heater.

:func:`fit_fringes` fits ``A + Bc cos(α x) + Bs sin(α x)`` to readings against V² (grid search on α, then
Gauss–Newton), vectorized over taps; :func:`fringe_verdict` tells dead, weak and distorted heaters apart;
:func:`delta_from_split_ratio` gives a coupler's δ from a power ratio. See docs/calibration.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass
class Fringe:
    """Fitted fringes ``A + Bc cos(α x) + Bs sin(α x)`` of M readings (arrays of M values)."""

    offset: np.ndarray     # A
    cos: np.ndarray        # Bc
    sin: np.ndarray        # Bs
    alpha: np.ndarray      # α
    rms: np.ndarray        # residual RMS
    residuals: np.ndarray  # (S, M)

    @property
    def amplitude(self):
        return np.hypot(self.cos, self.sin)


def fit_fringes(x, readings, alpha_guess, iterations: int = 12, span: tuple[float, float] = (0.6, 1.4)) -> Fringe:
    """Fit ``readings[:, j] ≈ A_j + Bc_j cos(α_j x) + Bs_j sin(α_j x)`` for every column j.

    ``x`` (S,) is the swept V² (or mA²); ``alpha_guess`` a scalar or one guess per column (M,), rad/V². A
    grid search over α (``span`` times the guess, default ±40 %: the guess comes from the heater-law
    discovery, :mod:`tapmesh.calibration.discovery`) with linear least squares for A, Bc, Bs, then damped
    Gauss–Newton on all four. Vectorized over the M columns."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(readings, dtype=float)
    m = y.shape[1]
    guess = np.broadcast_to(np.asarray(alpha_guess, dtype=float), (m,))
    best_cost = np.full(m, np.inf)
    best = np.zeros((m, 4))
    for g in np.linspace(span[0], span[1], 81):
        a = guess * g  # (M,)
        ax = x[:, None] * a[None, :]
        design = np.stack([np.ones_like(ax), np.cos(ax), np.sin(ax)], axis=2)  # (S, M, 3)
        ata = np.einsum("smi,smj->mij", design, design) + 1e-12 * np.eye(3)
        coef = np.linalg.solve(ata, np.einsum("smi,sm->mi", design, y)[..., None])[..., 0]  # (M, 3)
        cost = np.sum((np.einsum("smi,mi->sm", design, coef) - y) ** 2, axis=0)
        better = cost < best_cost
        best_cost = np.where(better, cost, best_cost)
        best[better, :3] = coef[better]
        best[better, 3] = a[better]
    p = best.copy()  # (M, 4): A, Bc, Bs, α
    lam = np.full(y.shape[1], 1e-3)
    def residual(p):
        ax = p[:, 3][None, :] * x[:, None]
        return p[:, 0] + p[:, 1] * np.cos(ax) + p[:, 2] * np.sin(ax) - y
    cost = np.sum(residual(p) ** 2, axis=0)
    for _ in range(iterations):
        ax = p[:, 3][None, :] * x[:, None]
        c, s = np.cos(ax), np.sin(ax)
        jac = np.stack([np.ones_like(c), c, s, x[:, None] * (-p[:, 1] * s + p[:, 2] * c)], axis=2)  # (S, M, 4)
        r = residual(p)
        jtj = np.einsum("smi,smj->mij", jac, jac)
        jtr = np.einsum("smi,sm->mi", jac, r)
        damp = jtj + lam[:, None, None] * np.eye(4) * np.maximum(np.diagonal(jtj, axis1=1, axis2=2)[:, :, None], 1e-30)
        try:
            step = np.linalg.solve(damp, -jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = p + step
        new_cost = np.sum(residual(trial) ** 2, axis=0)
        ok = new_cost < cost
        p = np.where(ok[:, None], trial, p)
        cost = np.where(ok, new_cost, cost)
        lam = np.where(ok, lam * 0.3, lam * 10)
    r = residual(p)
    return Fringe(p[:, 0], p[:, 1], p[:, 2], p[:, 3], np.sqrt(np.mean(r**2, axis=0)), r)


def delta_from_split_ratio(ratio, max_delta: float) -> np.ndarray:
    """Coupler error δ (rad) from measured cross/bar power ratios ``tan²(π/4 + δ)``; 0 where a ratio is
    unknown (NaN) or the estimate is not below ``max_delta`` (rad)."""
    ratio = np.asarray(ratio, dtype=float)
    estimate = np.arctan(np.sqrt(np.clip(np.nan_to_num(ratio, nan=-1.0), 0, None))) - np.pi / 4
    return np.where(np.isfinite(ratio) & (np.abs(estimate) < max_delta), estimate, 0.0)


def _flat(fringe: Fringe, j: int) -> bool:
    """No fringe at all: the fitted modulation is within noise (3× the fit's residual RMS). A dead heater
    gives this; light that reaches the tap poorly gives a weak fringe that is still well above noise."""
    return bool(fringe.amplitude[j] <= 3 * fringe.rms[j] + 1e-9 * abs(fringe.offset[j]))


def fringe_verdict(fringe: Fringe, j: int, alpha_guess: float, visibility_threshold: float) -> str:
    """What a fitted fringe says about its heater: ``"ok"`` (fit it), ``"dead"`` (no fringe at all),
    ``"weak"`` (low visibility but a real fringe: poorly routed light) or ``"distorted"`` (α far from
    ``alpha_guess``, the heater's law as discovered). Only ``"ok"`` fringes give starting values; the others are left to later fits."""
    vis = fringe.amplitude[j] / (abs(fringe.offset[j]) + fringe.amplitude[j] + 1e-30)
    if vis < visibility_threshold:
        return "dead" if _flat(fringe, j) else "weak"
    if not 0.5 * alpha_guess < fringe.alpha[j] < 1.5 * alpha_guess:
        return "distorted"
    return "ok"
