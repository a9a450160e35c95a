"""pcells: gdsfactory cells of tapped MZI meshes (grating taps, MZIs, meshes, chips) and their chip map.

Importing ``pcells`` activates the ``tapmesh`` PDK (the generic PDK plus these cells) unless another PDK is
already active; :func:`activate_pdk` activates it explicitly (needed for ``gf.read.from_yaml``).
"""

from __future__ import annotations

import gdsfactory as gf

from . import errors, schedule
from .cells import grating_tap, mzi_tapped, phase_shifter_tapped
from .pdk import activate_pdk, get_pdk


def _ensure_pdk() -> None:
    try:
        active = gf.get_active_pdk()
    except ValueError:
        active = None
    if active is None or active.name == "generic":
        activate_pdk()


_ensure_pdk()

__all__ = [
    "activate_pdk",
    "errors",
    "get_pdk",
    "grating_tap",
    "mzi_tapped",
    "phase_shifter_tapped",
    "schedule",
]
