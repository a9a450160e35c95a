"""Plots of a calibration: the residuals of every fit (with the normalization each step uses), the
coupler errors δ with their 1σ error bars, and the heater sweeps with their fitted curves drawn smoothly.
The fits and their residual definitions are derived in docs/calibration.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tapmesh.calibration.calibration import Calibration

RESIDUAL_UNITS = {
    "stages": "tap reading − model, ÷ (mean tap fraction × power per lit MZI)",
    "sweeps": "tap reading − fringe fit, ÷ (input power × nominal tap fraction)",
    "refine": "reading − model, ÷ (mean tap fraction × mean power per mode); outputs ÷ mean output",
}
"""What each step's residuals are divided by (the refinement's unit is n × smaller per lit mode than the
stages', so the same camera noise reads larger there; docs/calibration.md)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    if path is None:
        return fig
    plt = _pyplot()
    path = Path(path)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_residuals(cal: Calibration, path=None):
    """Histogram of each step's normalized residuals (the normalization in the axis label, the RMS in
    the title) and the coupler errors δ (rad) of every MZI with 1σ error bars where the fit gave them.
    Writes a PNG to ``path`` and returns the path; with ``path=None`` returns the figure."""
    plt = _pyplot()
    steps = [name for name, r in cal.residuals.items() if np.size(r)]
    fig, axes = plt.subplots(1, len(steps) + 1, figsize=(4.6 * (len(steps) + 1), 3.9), squeeze=False)
    axes = axes[0]
    for ax, name in zip(axes, steps):
        r = np.asarray(cal.residuals[name], dtype=float).ravel()
        r = r[np.isfinite(r)]
        ax.hist(r, bins=60, color="tab:blue", alpha=0.8)
        ax.set_title(f"{name}: {r.size:,} residuals, RMS {np.sqrt(np.mean(r**2)):.3g}", fontsize=9)
        unit = RESIDUAL_UNITS.get(name, "normalized residual")
        ax.set_xlabel(unit.replace(", ÷", ",\n÷").replace("; ", ";\n"), fontsize=7.5)
        ax.set_ylabel("count")
    ax = axes[-1]
    k = np.arange(cal.topology.n_mzis)
    sigma = cal.uncertainties.get("delta")
    for j, (label, shift) in enumerate((("input coupler δ1", -0.12), ("output coupler δ2", 0.12))):
        err = None if sigma is None else np.asarray(sigma, dtype=float)[:, j]
        ax.errorbar(k + shift, 1e3 * cal.delta[:, j], yerr=None if err is None else 1e3 * err, fmt="o", ms=3,
                    capsize=2, elinewidth=0.8, label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("MZI index")
    ax.set_ylabel("δ (mrad)")
    ax.set_title("coupler splitting errors" + (", ±1σ" if sigma is not None else " (no σ computed)"), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _finish(fig, path)


def _smooth_model(x: np.ndarray, model: np.ndarray, alpha_guess: float):
    """The fitted curve through the model's values at the sweep points, on a fine grid: a straight line
    (a γ phase fit) or the fringe ``A + Bc·cos(αx) + Bs·sin(αx)`` (a tap fit), recovered exactly from the
    model's own values. ``None`` if neither form reproduces them (then the model points are drawn)."""
    from tapmesh.calibration.fringes import fit_fringes

    fine = np.linspace(x.min(), x.max(), 400)
    scale = max(np.ptp(model), 1e-30)
    line = np.polyfit(x, model, 1)
    if np.max(np.abs(np.polyval(line, x) - model)) < 1e-6 * scale:
        return fine, np.polyval(line, fine), "phase"
    if alpha_guess > 0:
        fringe = fit_fringes(x, model[:, None], alpha_guess, iterations=30)
        a, bc, bs, alpha = fringe.offset[0], fringe.cos[0], fringe.sin[0], fringe.alpha[0]
        curve = a + bc * np.cos(alpha * fine) + bs * np.sin(alpha * fine)
        if np.max(np.abs(a + bc * np.cos(alpha * x) + bs * np.sin(alpha * x) - model)) < 1e-3 * scale:
            return fine, curve, "power"
    return None


def plot_fits(cal: Calibration, path=None, heaters=None, max_panels: int = 12):
    """Sweep readings of some heaters (points) and the fitted curve through them (smooth): tap power (mW)
    for θ/φ heaters, output phase (rad) for γ, against the heater's V². Writes a PNG to ``path``; with
    ``path=None`` returns the figure."""
    plt = _pyplot()
    readings = np.asarray(cal.fits.get("sweep_readings", np.zeros((0, 0))), dtype=float)
    model = np.asarray(cal.fits.get("sweep_model", np.zeros((0, 0))), dtype=float)
    x = np.asarray(cal.fits.get("sweep_x", np.zeros(0)), dtype=float)
    if heaters is None:
        have = [i for i in range(readings.shape[0]) if np.isfinite(readings[i]).any()]
        heaters = have[:: max(1, len(have) // max_panels)][:max_panels]
    heaters = list(heaters)
    cols = min(4, max(len(heaters), 1))
    rows = max(1, int(np.ceil(len(heaters) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    names = cal.topology.phase_shifters
    for ax, i in zip(axes.ravel(), heaters):
        keep = np.isfinite(readings[i]) & np.isfinite(model[i])
        xs, ys, ms = x[: readings.shape[1]][keep], readings[i][keep], model[i][keep]
        ax.plot(xs, ys, "o", ms=2.5, label="measured")
        smooth = _smooth_model(xs, ms, float(cal.alpha[i])) if xs.size > 4 else None
        if smooth is not None:
            fine, curve, quantity = smooth
            ax.plot(fine, curve, "-", lw=1.2, label="fit")
        else:
            quantity = "power"
            ax.plot(xs, ms, "-", lw=1.0, label="model at the sweep points")
        name = names[i]
        symbol = {"theta": "θ", "phi": "φ", "gamma": "γ"}.get(name.kind, name.kind)
        ax.set_title(f"{symbol}{name.index}: α = {cal.alpha[i]:.3f} rad/V², φ0 = {cal.phase_offsets[i]:.2f} rad", fontsize=7.5)
        ax.set_xlabel("heater V² (V²)", fontsize=8)
        ax.set_ylabel("output phase (rad)" if quantity == "phase" else "tap power (mW)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(heaters):]:
        ax.axis("off")
    if heaters:
        axes.ravel()[0].legend(fontsize=6.5)
    fig.tight_layout()
    return _finish(fig, path)
