"""The stages of the tapmesh flow, each usable on its own: they read and write files in an output folder
and return a summary dict of the figures they report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from circuits.io import atomic_write_bytes, atomic_write_json

SAX_CHECK_MAX_N = 8
"""Largest mesh the CLI checks against SAX by default (the reference compile grows super-linearly)."""


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def simulate(n: int, kind: str, out: Path, seed: int = 0, wl_span: float = 0.1, sax_check: bool = True) -> dict[str, Any]:
    """Engine vs SAX on a random as-built mesh, decomposition round trip, and a wavelength sweep."""
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import circuits

    topology = circuits.topology(n, kind)
    params = circuits.MeshParams.random(topology, seed=seed, delta_sigma=0.02, loss_db_sigma=0.05, tap_fraction=0.02)
    u = np.asarray(circuits.unitary(topology, params))
    summary: dict[str, Any] = {"n": n, "kind": kind, "n_mzis": topology.n_mzis, "n_heaters": topology.n_shifters}
    summary["insertion_loss_db"] = float(-10 * np.log10(np.mean(np.sum(np.abs(u) ** 2, axis=0))))

    if sax_check and n <= SAX_CHECK_MAX_N:
        start = time.perf_counter()
        reference = np.asarray(circuits.reference_unitary(topology, params))
        summary["engine_vs_sax_max_error"] = float(np.abs(reference - u).max())
        summary["sax_seconds"] = round(time.perf_counter() - start, 2)
    else:
        summary["engine_vs_sax_max_error"] = None

    target = circuits.haar_unitary(n, seed)
    realized = np.asarray(circuits.unitary(topology, circuits.decompose(topology, target)))
    summary["decomposition_max_error"] = float(np.abs(realized - target).max())

    wavelengths = np.linspace(1.55 - wl_span / 2, 1.55 + wl_span / 2, 101)
    sweep = np.abs(np.asarray(circuits.unitary(topology, params, wl=jnp.asarray(wavelengths)))) ** 2
    atomic_write_json(out / "simulation.json", summary)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    image = left.imshow(np.abs(u) ** 2, cmap="magma", vmin=0)
    left.set(title=f"|U|² of a random as-built {kind} mesh, n={n}", xlabel="input mode", ylabel="output mode")
    left.set_xticks(range(n))
    left.set_yticks(range(n))
    fig.colorbar(image, ax=left, fraction=0.046)
    for mode in range(n):
        right.plot(wavelengths, 10 * np.log10(sweep[:, mode, 0] + 1e-12), label=f"out {mode}")
    right.set(title="transmission from input 0", xlabel="wavelength (µm)", ylabel="dB", ylim=(-40, 1))
    if n <= 8:
        right.legend(fontsize=7)
    save_figure(fig, out / "simulation.png")
    summary["files"] = [str(out / "simulation.json"), str(out / "simulation.png")]
    return summary
