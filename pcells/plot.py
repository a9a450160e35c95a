"""Matplotlib picture of a layout, drawn from its polygons, optionally with the chip map overlaid."""

from __future__ import annotations

import gdsfactory as gf

_COLORS = {
    "WG": "#1f77b4",
    "HEATER": "#d62728",
    "M2": "#ff7f0e",
    "M3": "#9467bd",
    "MTOP": "#9467bd",
    "VIA1": "#2ca02c",
    "VIA2": "#2ca02c",
    "PADOPEN": "#8c564b",
    "SLAB150": "#17becf",
}
_DEFAULT = "#7f7f7f"


def plot_layout(component: gf.Component, path_png=None, chip_map=None, ax=None, dpi: int = 150, bbox=None):
    """Draw ``component``'s polygons layer by layer; save to ``path_png`` when given; return the matplotlib axes.

    Args:
        component: the layout.
        path_png: output PNG path (``None``: do not save).
        chip_map: a :class:`tapmesh.pcells.ChipMap` to overlay (pads labelled with their shifter, taps as markers).
        ax: axes to draw into (default: a new figure).
        dpi: resolution of the PNG.
        bbox: ``(xmin, ymin, xmax, ymax)`` µm to zoom into.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 6))
    else:
        fig = ax.figure
    polys = component.get_polygons_points(merge=False, by="name")
    order = ["M3", "MTOP", "M2", "HEATER", "WG"]
    names = sorted(polys, key=lambda n: order.index(n) if n in order else -1)
    for name in names:
        pts = [p for p in polys[name] if len(p)]
        if not pts:
            continue
        color = _COLORS.get(name, _DEFAULT)
        alpha = 0.9 if name == "WG" else 0.45
        ax.add_collection(
            PolyCollection(pts, facecolors=color, edgecolors=color, linewidths=0.3, alpha=alpha, label=name)
        )
    if chip_map is not None:
        symbol = {"theta": "θ", "phi": "φ", "gamma": "γ"}
        for pad in chip_map.pads:
            if pad.kind == "ground":
                text = "gnd"
            elif pad.kind == "gamma":
                text = f"γ{pad.mode}"
            else:
                text = f"{symbol[pad.kind]}{tuple(pad.mzi)}"
            ax.annotate(text, pad.position, fontsize=4, ha="center", va="center")
        for tap in chip_map.taps:
            marker = ">" if tap.direction == "fwd" else "<"
            ax.plot(*tap.position, marker=marker, color="k", markersize=3)
    b = component.dbbox() if bbox is None else None
    if bbox is None:
        ax.set_xlim(b.left, b.right)
        ax.set_ylim(b.bottom, b.top)
    else:
        ax.set_xlim(bbox[0], bbox[2])
        ax.set_ylim(bbox[1], bbox[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.legend(loc="upper right", fontsize=6)
    if path_png is not None:
        fig.savefig(path_png, dpi=dpi, bbox_inches="tight")
    return ax
