"""The tapmesh PDK: gdsfactory's generic PDK plus the ``pcells`` cells, so YAML netlists round-trip."""

from __future__ import annotations

import functools

import gdsfactory as gf

from . import compat


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
    return derived_pdk(compat.generic_pdk(), name="tapmesh")


def derived_pdk(base: gf.Pdk, name: str) -> gf.Pdk:
    """``base`` (a foundry or the generic PDK) with every ``pcells`` cell registered, named ``name``."""
    return gf.Pdk(name=name, cells={**base.cells, **_cells()}, **compat.pdk_fields(base))


def activate_pdk() -> gf.Pdk:
    """Activate the tapmesh PDK (generic PDK + pcells cells) and return it."""
    pdk = get_pdk()
    pdk.activate()
    return pdk
