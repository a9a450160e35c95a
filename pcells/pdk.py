"""The tapmesh PDK: gdsfactory's generic PDK plus the ``pcells`` cells, so YAML netlists round-trip."""

from __future__ import annotations

import functools

import gdsfactory as gf


def _cells() -> dict:
    import importlib

    out = {}
    # import the modules by name: ``pcells.mesh`` / ``pcells.chip`` are also the cell functions' names
    for mod in (importlib.import_module(f"tapmesh.pcells.{m}") for m in ("cells", "mesh", "chip")):
        for name in getattr(mod, "PDK_CELLS", ()):
            out[name] = getattr(mod, name)
    return out


@functools.cache
def get_pdk() -> gf.Pdk:
    """A PDK named ``tapmesh`` built on the generic PDK with every ``pcells`` cell registered."""
    base = gf.gpdk.get_generic_pdk() if hasattr(gf.gpdk, "get_generic_pdk") else gf.gpdk.PDK
    return gf.Pdk(
        name="tapmesh",
        cells={**base.cells, **_cells()},
        cross_sections=base.cross_sections,
        layers=base.layers,
        layer_stack=base.layer_stack,
        layer_views=base.layer_views,
        layer_transitions=base.layer_transitions,
        routing_strategies=base.routing_strategies,
        constants=base.constants,
        connectivity=base.connectivity,
        models=base.models,
    )


def activate_pdk() -> gf.Pdk:
    """Activate the tapmesh PDK (generic PDK + pcells cells) and return it."""
    pdk = get_pdk()
    pdk.activate()
    return pdk
