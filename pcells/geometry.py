"""Shared geometry helpers of the pcells: cross-section lookup with a named error, axis-aligned rectangles."""

from __future__ import annotations

import gdsfactory as gf

from .errors import CrossSectionError


def xs_layer(cross_section) -> tuple:
    """Resolve a cross-section spec, raising :class:`CrossSectionError` when the active PDK does not know it."""
    try:
        xs = gf.get_cross_section(cross_section)
    except (ValueError, KeyError) as err:
        raise CrossSectionError(f"unknown cross-section {cross_section!r}: {err}") from None
    return xs


def _rect(c: gf.Component, x0: float, x1: float, y0: float, y1: float, layer) -> None:
    """Add an axis-aligned rectangle (µm) on ``layer``."""
    c.add_polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], layer=layer)
