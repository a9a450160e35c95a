"""pcells: gdsfactory cells of tapped MZI meshes (grating taps, MZIs, meshes, chips) and their chip map.

Importing ``pcells`` activates the ``tapmesh`` PDK (the generic PDK plus these cells) unless a PDK other than
the generic one is already active; :func:`activate_pdk` activates it explicitly (``gf.read.from_yaml`` needs it
to rebuild these cells).
"""

from __future__ import annotations

import gdsfactory as gf

from . import errors, schedule
from .cells import grating_tap, mzi_tapped, phase_shifter_tapped
from .chip import DEMO_ROLES, chip, demo_chip
from .chip_map import ChipMap, FiberMap, HeaterMap, PadMap, TapMap, chip_map
from .checks import DRC_RULES, dangling_optical_ports, drc, netlist_summary, overlap_area, write_drc_deck
from .errors import (
    ConnectivityError,
    CouplerKindError,
    CrossSectionError,
    LayoutError,
    MeshKindError,
    MeshSizeError,
    PitchError,
    ProcessError,
    ReticleError,
    RuleError,
    StaggerError,
    TapFractionError,
)
from .mesh import mesh
from .process import EnclosureRule, LayerRule, ProcessRules, generic_process, get_process, register_process
from .pdk import activate_pdk, get_pdk
from .roles import (
    MissingRoleError,
    PdkError,
    PdkNotInstalledError,
    Roles,
    UnknownPdkError,
    active_roles,
    default_pads,
    known_pdks,
    use_pdk,
)
from . import foundry  # noqa: E402,F401 - registers the foundry processes
from .plot import plot_chip, plot_layout


def _ensure_pdk() -> None:
    try:
        active = gf.get_active_pdk()
    except ValueError:
        active = None
    if active is None or active.name == "generic":
        activate_pdk()


_ensure_pdk()

__all__ = [
    "MissingRoleError",
    "PdkError",
    "PdkNotInstalledError",
    "Roles",
    "UnknownPdkError",
    "active_roles",
    "default_pads",
    "known_pdks",
    "use_pdk",
    "EnclosureRule",
    "LayerRule",
    "ProcessError",
    "ProcessRules",
    "ReticleError",
    "RuleError",
    "StaggerError",
    "generic_process",
    "get_process",
    "register_process",
    "DEMO_ROLES",
    "DRC_RULES",
    "ChipMap",
    "ConnectivityError",
    "CouplerKindError",
    "CrossSectionError",
    "FiberMap",
    "HeaterMap",
    "LayoutError",
    "MeshKindError",
    "MeshSizeError",
    "PadMap",
    "PitchError",
    "TapFractionError",
    "TapMap",
    "activate_pdk",
    "chip",
    "chip_map",
    "dangling_optical_ports",
    "demo_chip",
    "drc",
    "errors",
    "get_pdk",
    "grating_tap",
    "mesh",
    "mzi_tapped",
    "netlist_summary",
    "overlap_area",
    "phase_shifter_tapped",
    "plot_chip",
    "plot_layout",
    "schedule",
    "write_drc_deck",
]
