"""Figures of the flow's own stages (the model's |U|² and spectrum), how they are written, and the check
that keeps every figure legible: no two text labels of a figure overlap (matplotlib's own text
bounding boxes, measured by the renderer that draws them)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tapmesh.circuits.io import atomic_write_bytes

DPI = 130
"""Resolution of every PNG the flow writes (the report shows them at up to 1000 px wide)."""

FLOOR_DB = -50.0
"""Lowest transmission drawn in the spectrum; lower values are clipped there and the caption says so."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, check: bool = False) -> Path:
    """Write a matplotlib figure as PNG atomically and close it; with ``check``, first refuse a figure
    whose text labels overlap (:func:`overlapping_labels`; the tests check every figure of the flow)."""
    plt = _pyplot()
    if check:
        clashes = overlapping_labels(fig)
        if clashes:
            plt.close(fig)
            raise FigureLayoutError(f"{Path(path).name}: overlapping labels {clashes[:3]}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


class FigureLayoutError(RuntimeError):
    """A figure's text labels overlap (a layout mistake of the code that drew it)."""


def text_boxes(fig) -> list[tuple[str, object]]:
    """Every visible, non-empty text of ``fig`` (titles, axis labels, tick labels, legend entries,
    annotations, colorbar labels) with its window extent from the figure's renderer."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # tick labels exist for ticks outside the view too (not drawn): keep only those inside the axis range
    undrawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            pad = 1e-9 * max(abs(high - low), 1e-300)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - pad <= tick.get_loc() <= high + pad:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    boxes = []
    for artist in fig.findobj(Text):
        if id(artist) in undrawn or not artist.get_visible() or not artist.get_text().strip():
            continue
        axes = artist.axes
        if axes is not None and not axes.get_visible():
            continue
        box = artist.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((artist.get_text(), box))
    return boxes


def overlapping_labels(fig, tolerance_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts of ``fig`` whose boxes overlap by more than ``tolerance_px`` in both directions
    (texts inside one legend are laid out by the legend and are checked like any other)."""
    boxes = text_boxes(fig)
    clashes = []
    for i in range(len(boxes)):
        a_text, a = boxes[i]
        for b_text, b in boxes[i + 1 :]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > tolerance_px and dy > tolerance_px:
                clashes.append((a_text, b_text))
    return clashes


def simulation_figure(u: np.ndarray, wavelengths: np.ndarray, sweep: np.ndarray, kind: str):
    """|U|² of the mesh at 1.55 µm and the transmission from input 0 to every output over wavelength.

    ``sweep``: (W, n, n) |U(λ)|². Values below :data:`FLOOR_DB` are drawn at the floor and counted in
    the panel's title."""
    plt = _pyplot()
    n = u.shape[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.35], "wspace": 0.45})
    image = left.imshow(np.abs(u) ** 2, cmap="magma", vmin=0, vmax=1)
    left.set_title(f"|U|² at 1.55 µm\n(as-built {kind} mesh, n = {n})", fontsize=10)
    left.set(xlabel="input mode", ylabel="output mode")
    ticks = range(n) if n <= 16 else range(0, n, max(1, n // 8))
    left.set_xticks(list(ticks))
    left.set_yticks(list(ticks))
    bar = fig.colorbar(image, ax=left, fraction=0.046, pad=0.04)
    bar.set_label("power transmission |Uᵢⱼ|²")
    db = 10 * np.log10(np.maximum(sweep[:, :, 0], 1e-30))
    clipped = int(np.sum(np.any(db < FLOOR_DB, axis=0)))
    for mode in range(n):
        right.plot(wavelengths, np.maximum(db[:, mode], FLOOR_DB), label=f"output {mode}")
    top = max(1.0, float(np.ceil(db.max())))
    bottom = max(FLOOR_DB, float(np.floor(db.min())) - 3.0) if not clipped else FLOOR_DB - 2
    right.set(xlabel="wavelength (µm)", ylabel="transmission from input 0 (dB)", ylim=(bottom, top))
    note = f"\n{clipped} output(s) fall below {FLOOR_DB:g} dB: drawn at that floor" if clipped else ""
    right.set_title(f"transmission spectrum from input 0{note}", fontsize=10)
    right.grid(alpha=0.3)
    if n <= 8:
        right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def hero_image(out: Path, path: Path) -> Path:
    """The README's picture from a flow's own figures in ``out``: the chip's layout on top, the training
    curves and the decision boundary below (``python -c "from tapmesh.figures import hero_image;
    hero_image('out', 'docs/images/flow.png')"`` after ``tapmesh flow``)."""
    plt = _pyplot()
    out = Path(out)
    names = ("chip.png", "training_curves.png", "decision_boundary.png")
    missing = [name for name in names if not (out / name).exists()]
    if missing:
        raise FileNotFoundError(f"{out} lacks {', '.join(missing)}: run `tapmesh flow --out {out}` first")
    chip, curves, boundary = (plt.imread(out / name) for name in names)
    top_h = chip.shape[0] / chip.shape[1]
    bottom_h = max(curves.shape[0] / curves.shape[1] * 0.72, boundary.shape[0] / boundary.shape[1] * 0.28)
    fig = plt.figure(figsize=(12, 12 * (top_h + bottom_h) * 1.02))
    grid = fig.add_gridspec(2, 2, height_ratios=[top_h, bottom_h], width_ratios=[0.72, 0.28], hspace=0.02, wspace=0.02)
    for cell, image in ((grid[0, :], chip), (grid[1, 0], curves), (grid[1, 1], boundary)):
        ax = fig.add_subplot(cell)
        ax.imshow(image)
        ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())
