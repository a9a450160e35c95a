"""Differences between the gdsfactory versions the foundry PDKs pin (ubcpdk 3.3 → 9.23, cspdk 1.4 → 9.34, current).

Every version-dependent call of ``pcells`` goes through this module, so the cells themselves are written once
against one API. Each shim says which versions differ and how (measured in the per-PDK environments that
``.ci/run`` builds; see docs/pcells.md, "Foundry PDKs").
"""

from __future__ import annotations

import gdsfactory as gf

GF_VERSION: tuple[int, ...] = tuple(int(p) for p in gf.__version__.split(".")[:3] if p.isdigit())
"""The installed gdsfactory version as a tuple, e.g. ``(9, 23, 0)``."""


def generic_pdk() -> gf.Pdk:
    """gdsfactory's generic PDK: ``gf.gpdk`` from 9.3x on, ``gdsfactory.generic_tech`` in 9.23."""
    gpdk = getattr(gf, "gpdk", None)
    if gpdk is not None:
        return gpdk.get_generic_pdk() if hasattr(gpdk, "get_generic_pdk") else gpdk.PDK
    from gdsfactory.generic_tech import get_generic_pdk

    return get_generic_pdk()


def clear_cache() -> None:
    """Drop gdsfactory's cell cache (cells cached under one PDK must not be reused under another)."""
    if hasattr(gf, "clear_cache"):
        gf.clear_cache()


def pdk_fields(pdk: gf.Pdk) -> dict:
    """The fields of ``pdk`` that a derived PDK copies, restricted to those this gdsfactory's ``Pdk`` has."""
    names = (
        "cross_sections",
        "layers",
        "layer_stack",
        "layer_views",
        "layer_transitions",
        "routing_strategies",
        "constants",
        "connectivity",
        "models",
        "cross_section_default_names",
    )
    model_fields = getattr(type(pdk), "model_fields", {})
    return {k: getattr(pdk, k) for k in names if k in model_fields and getattr(pdk, k, None) is not None}
