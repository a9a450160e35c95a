"""Plots of a calibration: residuals of every fit and the fitted sweep curves, written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tapmesh.calibration.calibration import Calibration


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.subplots(*args, **kwargs)


def plot_residuals(cal: Calibration, path) -> Path:
    """Histogram of the normalized residuals of each step (sweeps, refinement), and the refined δ with
    their 1σ error bars when the refinement computed them. Writes a PNG to ``path``."""
    steps = [name for name, r in cal.residuals.items() if np.size(r)]
    plt, (fig, axes) = _figure(1, max(len(steps), 1) + 1, figsize=(4 * (len(steps) + 1), 3.2))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, steps):
        r = np.asarray(cal.residuals[name]).ravel()
        ax.hist(r, bins=60, color="tab:blue", alpha=0.8)
        ax.set_title(f"{name}: rms {np.sqrt(np.mean(r**2)):.3g}")
        ax.set_xlabel("normalized residual")
    ax = axes[-1]
    k = np.arange(cal.topology.n_mzis)
    sigma = cal.uncertainties.get("delta")
    for j, label in enumerate(("input coupler", "output coupler")):
        err = None if sigma is None else np.asarray(sigma)[:, j]
        ax.errorbar(k, cal.delta[:, j], yerr=err, fmt="o", ms=3, label=label)
    ax.set_xlabel("MZI")
    ax.set_ylabel("δ (rad)")
    ax.set_title("coupler splitting errors")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fits(cal: Calibration, path, heaters=None, max_panels: int = 12) -> Path:
    """Sweep readings and the fitted sin² (or, for γ, phase) curves of some heaters. Writes a PNG."""
    readings = np.asarray(cal.fits.get("sweep_readings", np.zeros((0, 0))))
    model = np.asarray(cal.fits.get("sweep_model", np.zeros((0, 0))))
    x = np.asarray(cal.fits.get("sweep_x", np.zeros(0)))
    if heaters is None:
        have = [i for i in range(readings.shape[0]) if np.isfinite(readings[i]).any()]
        heaters = have[:: max(1, len(have) // max_panels)][:max_panels]
    heaters = list(heaters)
    cols = min(4, max(len(heaters), 1))
    rows = max(1, int(np.ceil(len(heaters) / cols)))
    plt, (fig, axes) = _figure(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    names = cal.topology.phase_shifters
    for ax, i in zip(axes.ravel(), heaters):
        ax.plot(x, readings[i], "o", ms=3, label="measured")
        ax.plot(x, model[i], "-", label="fit")
        ax.set_title(f"{names[i].name}: α={cal.alpha[i]:.3f}, φ0={cal.phase_offsets[i]:.2f}", fontsize=8)
        ax.set_xlabel("V² (V²)", fontsize=8)
    for ax in axes.ravel()[len(heaters):]:
        ax.axis("off")
    if heaters:
        axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
