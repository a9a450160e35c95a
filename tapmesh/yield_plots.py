"""Figures of a yield study (matplotlib, Agg): yield against the fidelity spec, fidelity distributions per
σδ, and the wafer map of fidelity. Each takes the study's table (:func:`tapmesh.yield_dask.read_table`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLOOR = 1e-6
"""Smallest infidelity drawn (1 − F is clipped to it on log axes)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import io

    from tapmesh.circuits.io import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_yield_curves(table, spec: float, path) -> Path:
    """Yield (fraction of chips with mean corrected F ≥ spec) against the spec, one curve per (n, σδ);
    the dashed curves are the uncorrected (plain decomposition) yield."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    infidelity = np.logspace(-5, -0.3, 200)
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(table["sigma_delta"].nunique(), 1)))
    sigmas = sorted(table["sigma_delta"].unique())
    styles = ["-", "-.", ":", (0, (5, 1))]
    for j, n in enumerate(sorted(table["n"].unique())):
        for color, sigma in zip(colors, sigmas):
            group = table[(table["n"] == n) & (table["sigma_delta"] == sigma)]
            f = group["f_mean"].to_numpy()
            ax.plot(infidelity, [np.mean(1 - f <= x) * 100 for x in infidelity], color=color,
                    linestyle=styles[j % len(styles)], label=f"n = {n}, σδ = {sigma:g} rad")
            if j == 0:
                fu = group["f_uncorrected"].to_numpy()
                ax.plot(infidelity, [np.mean(1 - fu <= x) * 100 for x in infidelity], color=color, linestyle="--",
                        alpha=0.5, linewidth=1)
    ax.axvline(1 - spec, color="0.4", linewidth=0.8)
    ax.text(1 - spec, 3, f" spec F = {spec:g}", color="0.3", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("infidelity spec 1 − F (a chip passes when 1 − F is below it)")
    ax.set_ylabel("yield (%)")
    ax.set_ylim(0, 102)
    ax.set_title("Yield after calibration and correction (dashed: uncorrected, first n)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, Path(path))


def plot_distributions(table, path) -> Path:
    """Histograms of the corrected infidelity 1 − F per σδ, one panel per n (log axis)."""
    plt = _pyplot()
    ns = sorted(table["n"].unique())
    fig, axes = plt.subplots(1, len(ns), figsize=(4.4 * len(ns), 3.6), squeeze=False)
    sigmas = sorted(table["sigma_delta"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(len(sigmas), 1)))
    values = np.clip(1 - table["f_mean"].to_numpy(), FLOOR, None)
    bins = np.logspace(np.log10(values.min()) - 0.1, np.log10(values.max()) + 0.1, 30)
    for ax, n in zip(axes[0], ns):
        for color, sigma in zip(colors, sigmas):
            group = table[(table["n"] == n) & (table["sigma_delta"] == sigma)]
            ax.hist(np.clip(1 - group["f_mean"], FLOOR, None), bins=bins, histtype="step", color=color, linewidth=1.5,
                    label=f"σδ = {sigma:g} rad ({len(group)} chips)")
        ax.set_xscale("log")
        ax.set_xlabel("corrected infidelity 1 − F (mean of K targets)")
        ax.set_ylabel("chips")
        ax.set_title(f"n = {n}", fontsize=10)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_wafer_map(table, path, n: int | None = None, wafer: int = 0, radius_mm: float = 100.0,
                   die_mm: tuple[float, float] = (10.0, 5.0)) -> Path:
    """Dies of wafer ``wafer`` (``die_mm`` rectangles) coloured by the corrected infidelity 1 − F, one panel
    per σδ, at mesh size ``n`` (default the largest), inside the wafer outline of ``radius_mm``."""
    plt = _pyplot()
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    n = max(table["n"].unique()) if n is None else n
    sigmas = sorted(table["sigma_delta"].unique())
    fig, axes = plt.subplots(1, len(sigmas), figsize=(3.6 * len(sigmas) + 1.2, 3.9), squeeze=False, sharey=True)
    chosen = table[(table["n"] == n) & (table["wafer"] == wafer)]
    values = np.clip(1 - chosen["f_mean"].to_numpy(), FLOOR, None)
    norm = LogNorm(vmin=values.min(), vmax=max(values.max(), values.min() * 1.01)) if values.size else None
    radius, (dx, dy) = float(radius_mm), die_mm
    patches = None
    for j, (ax, sigma) in enumerate(zip(axes[0], sigmas)):
        group = chosen[chosen["sigma_delta"] == sigma]
        ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="0.5"))
        dies = [Rectangle((x - dx / 2, y - dy / 2), dx, dy) for x, y in zip(group["x_mm"], group["y_mm"])]
        patches = PatchCollection(dies, cmap="magma_r", norm=norm, linewidths=0)
        patches.set_array(np.clip(1 - group["f_mean"].to_numpy(), FLOOR, None))
        ax.add_collection(patches)
        ax.set_aspect("equal")
        ax.set_xlim(-radius * 1.05, radius * 1.05)
        ax.set_ylim(-radius * 1.05, radius * 1.05)
        ax.set_xlabel("x on wafer (mm)")
        if j == 0:
            ax.set_ylabel("y on wafer (mm)")
        ax.set_title(f"n = {n}, σδ = {sigma:g} rad", fontsize=9)
    if patches is not None:
        fig.colorbar(patches, ax=axes[0].tolist(), label=f"corrected infidelity 1 − F (wafer {wafer})", shrink=0.85)
    return _save(fig, Path(path))


def plot_all(table, spec: float, out, radius_mm: float = 100.0, die_mm: tuple[float, float] = (10.0, 5.0)) -> list[Path]:
    """The three figures into ``out``: yield_vs_spec.png, fidelity_distributions.png, wafer_map.png."""
    out = Path(out)
    return [plot_yield_curves(table, spec, out / "yield_vs_spec.png"),
            plot_distributions(table, out / "fidelity_distributions.png"),
            plot_wafer_map(table, out / "wafer_map.png", radius_mm=radius_mm, die_mm=die_mm)]
