"""Matplotlib pictures of a layout, drawn from its polygons: one view (:func:`plot_layout`) or a chip sheet
(:func:`plot_chip`: the whole die with its outline, and a zoom on one tapped MZI with its routing and pads).
"""

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
    "DEEPTRENCH": "#bcbd22",
}
_DEFAULT = "#7f7f7f"
_OUTLINE = ("FLOORPLAN",)
_SKIP = ("TEXT",)
_ORDER = ["M3", "MTOP", "M2", "HEATER", "DEEPTRENCH", "WG"]


def _polygons_by_name(component) -> dict:
    """Polygon points per layer name; layers the active PDK has no name for (a foundry's fixed cells carry
    some, e.g. 998/0 in ubcpdk's grating) are keyed ``"layer/datatype"``."""
    import gdsfactory as gf

    out = {}
    info = component.kcl.layout
    pdk = gf.get_active_pdk()
    for index, pts in component.get_polygons_points(merge=False, by="index").items():
        try:
            name = pdk.get_layer_name(index)
        except ValueError:
            li = info.get_info(index)
            name = f"{li.layer}/{li.datatype}"
        out.setdefault(name, []).extend(pts)
    return out


def _draw_polygons(ax, component, bbox=None) -> None:
    from matplotlib.collections import PolyCollection

    polys = _polygons_by_name(component)
    names = sorted(polys, key=lambda n: _ORDER.index(n) if n in _ORDER else -1)
    for name in names:
        if name in _SKIP:
            continue
        pts = [p for p in polys[name] if len(p)]
        if bbox is not None:
            x0, y0, x1, y1 = bbox
            pts = [p for p in pts if p[:, 0].max() >= x0 and p[:, 0].min() <= x1 and p[:, 1].max() >= y0
                   and p[:, 1].min() <= y1]
        if not pts:
            continue
        color = _COLORS.get(name, _DEFAULT)
        if name in _OUTLINE:
            ax.add_collection(PolyCollection(pts, facecolors="none", edgecolors="k", linewidths=1.0,
                                             label="die outline"))
            continue
        alpha = 0.9 if name == "WG" else 0.45
        ax.add_collection(
            PolyCollection(pts, facecolors=color, edgecolors=color, linewidths=0.3, alpha=alpha, label=name)
        )


def _pad_text(pad) -> str:
    symbol = {"theta": "θ", "phi": "φ", "gamma": "γ"}
    if pad.kind == "ground":
        return "gnd"
    if pad.kind == "gamma":
        return f"γ{pad.mode}"
    return f"{symbol[pad.kind]}{tuple(pad.mzi)}"


def plot_layout(component: gf.Component, path_png=None, chip_map=None, ax=None, dpi: int = 150, bbox=None,
                label_pads: bool | None = None, fontsize: float = 4.0):
    """Draw ``component``'s polygons layer by layer; save to ``path_png`` when given; return the matplotlib axes.

    Args:
        component: the layout.
        path_png: output PNG path (``None``: do not save).
        chip_map: a :class:`tapmesh.pcells.ChipMap` to overlay (pads labelled with their shifter, taps as markers).
        ax: axes to draw into (default: a new figure).
        dpi: resolution of the PNG.
        bbox: ``(xmin, ymin, xmax, ymax)`` µm to zoom into.
        label_pads: write each pad's shifter on it (only the pads inside ``bbox``); ``None``: only when the
            labels are legible at the figure's scale (:func:`labels_legible`).
        fontsize: pad label size, pt.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 6))
    else:
        fig = ax.figure
    _draw_polygons(ax, component, bbox)
    b = component.dbbox()
    x0, y0, x1, y1 = (b.left, b.bottom, b.right, b.top) if bbox is None else bbox

    def inside(p):
        return x0 <= p[0] <= x1 and y0 <= p[1] <= y1

    if label_pads is None:
        label_pads = labels_legible(x1 - x0, ax)
    if chip_map is not None:
        if label_pads:
            for pad in chip_map.pads:
                if inside(pad.position):
                    ax.annotate(_pad_text(pad), pad.position, fontsize=fontsize, ha="center", va="center",
                                clip_on=True)
        # tap markers (3 pt) only where neighbouring taps (~50 µm apart) stay apart on paper
        show_taps = labels_legible(x1 - x0, ax, pitch_um=50.0, need_pt=4.0)
        taps = [t for t in chip_map.taps if show_taps and inside(t.position)]
        for direction, marker in (("fwd", ">"), ("bwd", "<")):
            pts = [t.position for t in taps if t.direction == direction]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker, color="k", markersize=3, linestyle="none")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, borderaxespad=0.0)
    if path_png is not None:
        fig.savefig(path_png, dpi=dpi, bbox_inches="tight")
    return ax


def labels_legible(width_um: float, ax, pitch_um: float = 100.0, need_pt: float = 16.0) -> bool:
    """Would 4 pt pad labels ``pitch_um`` apart stay apart when ``width_um`` µm fill the axes' width?"""
    fig = ax.figure
    width_pt = fig.get_figwidth() * 72 * ax.get_position().width
    return width_pt / max(width_um, 1.0) * pitch_um > need_pt


def mzi_zoom_box(component: gf.Component, chip_map, column: int = 0, margin: float = 40.0) -> tuple:
    """A box (µm) around the top MZI of ``column`` and the pads its heaters reach (the zoom of :func:`plot_chip`)."""
    mzi = min((h for h in chip_map.heaters if h.mzi is not None and h.mzi[0] == column), key=lambda h: h.mzi[1])
    k = [h for h in chip_map.heaters if h.mzi == mzi.mzi]
    pads = [p for p in chip_map.pads if p.shifter in {h.shifter for h in k}]
    xs = [h.position[0] - h.length / 2 for h in k] + [h.position[0] + h.length / 2 for h in k]
    ys = [h.position[1] for h in k]
    xs += [p.position[0] for p in pads]
    ys += [p.position[1] for p in pads]
    return (min(xs) - 2 * margin, min(ys) - 2 * margin, max(xs) + 3 * margin, max(ys) + margin)


def plot_chip(component: gf.Component, path_png=None, chip_map=None, column: int = 0, dpi: int = 200):
    """The chip sheet: the whole die (outline, every layer; pad labels only when they are legible at that scale)
    and a zoom on the top tapped MZI of ``column`` with its taps, lanes, tracks and pads, labelled.

    Returns the matplotlib figure; saves it to ``path_png`` when given.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .chip_map import chip_map as make_map

    cmap = make_map(component) if chip_map is None else chip_map
    b = component.dbbox()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1.6, 1]})
    plot_layout(component, None, chip_map=cmap, ax=ax0)
    ax0.get_legend().remove()  # one legend, beside the zoom
    w, h = (component.info.get("die_size") or [b.width(), b.height()])[:2]
    ax0.set_title(f"n = {cmap.n} {cmap.kind}: die {w / 1e3:.2f} × {h / 1e3:.2f} mm, {len(cmap.pads)} pads, "
                  f"{len(cmap.taps)} tap gratings", fontsize=9)
    box = mzi_zoom_box(component, cmap, column)
    plot_layout(component, None, chip_map=cmap, ax=ax1, bbox=box, fontsize=6)
    ax0.add_patch(matplotlib.patches.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                               edgecolor="r", linewidth=1.0))
    ax1.set_title(f"zoom: MZI ({column}, top) with its heaters, taps and routing", fontsize=9)
    fig.tight_layout()
    if path_png is not None:
        fig.savefig(path_png, dpi=dpi, bbox_inches="tight")
    return fig
