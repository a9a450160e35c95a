"""Named roles: which layer, cross-section and component of the active PDK plays each part the cells need.

A chip needs a strip waveguide, a heater metal, routing metal(s), a contact from heater to router (a via stack,
or plain overlap where the process has no via layer), a bond pad (with its opening), a fiber coupler and its
fiber port, a floorplan layer and a label layer. :class:`Roles` names them for one PDK; :func:`use_pdk`
activates a PDK by name (``"generic"``, ``"ubcpdk"``, ``"cspdk"``) or as a ``gf.Pdk`` and returns its roles,
checked against what the PDK defines. See docs/pcells.md, "Foundry PDKs".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

import gdsfactory as gf

from . import compat
from .errors import LayoutError


class PdkError(LayoutError):
    """Base class of the PDK-selection errors."""


class UnknownPdkError(PdkError):
    """A PDK name that is not known; the message lists the known ones."""


class PdkNotInstalledError(PdkError, ImportError):
    """A known PDK whose package is not installed; the message names the extra to install."""


class MissingRoleError(PdkError):
    """The active PDK lacks layers, cross-sections or components the cells need; the message lists them all."""


@dataclass(frozen=True)
class Roles:
    """What each part of a chip is drawn with on one PDK (names as the PDK spells them).

    Attributes:
        pdk: PDK name (the key of :data:`KNOWN_PDKS`).
        process: name of the :mod:`tapmesh.pcells.process` rules this PDK's layouts are checked against.
        waveguide: strip waveguide cross-section.
        heater: heater cross-section (its layer is the heater metal).
        lane: cross-section of the lower routing metal (heater contacts → track zone).
        track: cross-section of the top routing metal (tracks to the pads; the pads' metal).
        via_heater: via-stack component from heater metal to ``lane`` (takes ``size``); ``None``: the process
            contacts by overlap, the cells draw the two metals on top of each other.
        via_track: via-stack component from ``lane`` to ``track``; ``None`` when they are one metal or contact
            by overlap.
        pad: bond-pad component (takes ``size``; draws its own opening where the PDK's pad has one).
        pad_open: pad-opening layer the cells draw inside each pad, ``None`` if the pad cell draws it or the
            process has none.
        fiber_coupler: fiber grating coupler component (waveguide port ``fiber_wg_port``).
        fiber_port: its fiber port, ``None`` when the PDK's grating has none (the chip then places one at
            the grating's centre).
        edge_coupler: edge-coupler component for ``io="edge"``.
        floorplan: die-outline layer (``None``: none drawn).
        label: text-label layer.
        layers: every layer name the roles use, checked to exist in the PDK.
        shared_return: heaters share a ground return per column (needs crossing metals, i.e. a via process).
        layout: default layout parameters on this process (pitches, lane widths, pad size), µm.
    """

    pdk: str
    process: str
    waveguide: str = "strip"
    heater: str = "heater_metal"
    lane: str = "metal2"
    track: str = "metal3"
    via_heater: str | None = "via_stack_heater_m2"
    via_track: str | None = "via_stack_m2_m3"
    pad: str = "pad"
    pad_open: Any = None
    fiber_coupler: str = "grating_coupler_elliptical_te"
    fiber_wg_port: str = "o1"
    fiber_port: str | None = "o2"
    edge_coupler: str = "edge_coupler"
    floorplan: Any = None
    label: Any = "TEXT"
    layers: tuple = ()
    shared_return: bool = True
    layout: dict = field(default_factory=dict, compare=False, hash=False)

    def with_roles(self, **changes) -> Roles:
        """A copy with roles replaced."""
        return replace(self, **changes)


def _generic_roles() -> Roles:
    return Roles(pdk="generic", process="generic", layers=("WG", "HEATER", "M2", "MTOP", "TEXT"))


KNOWN_PDKS: dict[str, dict] = {
    "generic": {"module": None, "extra": None},
    "ubcpdk": {"module": "ubcpdk", "attr": "PDK", "extra": "tapmesh[ubcpdk]"},
    "cspdk": {"module": "cspdk.si220.cband", "attr": "PDK", "extra": "tapmesh[cspdk]"},
}
"""Known PDKs: the module that holds each one's ``gf.Pdk`` and the extra that installs it."""

_ROLES: dict = {"generic": _generic_roles}


def register_roles(name: str, factory) -> None:
    """Register the :class:`Roles` factory (zero-argument callable) of the known PDK ``name``
    (:mod:`tapmesh.pcells.foundry` registers ubcpdk's and cspdk's)."""
    if name not in KNOWN_PDKS:
        raise UnknownPdkError(f"unknown PDK {name!r}; known: {known_pdks()}")
    _ROLES[name] = factory

_PDK_NAMES = {"tapmesh": "generic", "generic": "generic", "ubcpdk": "ubcpdk", "cspdk.si220.cband": "cspdk",
              "cspdk": "cspdk"}


def known_pdks() -> list[str]:
    """Names :func:`use_pdk` accepts."""
    return sorted(KNOWN_PDKS)


def default_pads(name: str) -> str:
    """The pad option :func:`tapmesh.pcells.chip` takes on PDK ``name`` when none is given (its roles' layout
    defaults; ``"direct"`` where they name none). Needs no PDK installed."""
    if name not in KNOWN_PDKS:
        raise UnknownPdkError(f"unknown PDK {name!r}; known: {known_pdks()}")
    return _ROLES[name]().layout.get("pads", "direct")


def _base_pdk(name: str) -> gf.Pdk:
    entry = KNOWN_PDKS[name]
    if entry["module"] is None:
        return compat.generic_pdk()
    try:
        mod = importlib.import_module(entry["module"])
    except ImportError as err:
        raise PdkNotInstalledError(
            f"PDK {name!r} is not installed ({err.name or err}): pip install '{entry['extra']}'"
        ) from None
    return getattr(mod, entry["attr"])


def pdk_name(pdk: gf.Pdk) -> str | None:
    """The :data:`KNOWN_PDKS` key of a ``gf.Pdk`` (by its name, also as a ``tapmesh-<name>`` derived PDK)."""
    name = pdk.name.removeprefix("tapmesh-")
    return _PDK_NAMES.get(name)


def check_roles(roles: Roles) -> None:
    """Raise :class:`MissingRoleError` listing every role the active PDK does not define."""
    pdk = gf.get_active_pdk()
    missing = []
    for role in ("waveguide", "heater", "lane", "track"):
        name = getattr(roles, role)
        if name not in pdk.cross_sections:
            missing.append(f"cross-section {name!r} ({role})")
    for role in ("via_heater", "via_track", "pad", "fiber_coupler", "edge_coupler"):
        name = getattr(roles, role)
        if name is not None and name not in pdk.cells:
            missing.append(f"component {name!r} ({role})")
    for layer in (*roles.layers, roles.floorplan, roles.pad_open, roles.label):
        if layer is None:
            continue
        try:
            gf.get_layer(layer)
        except Exception:  # noqa: BLE001 - any failure to resolve means the PDK lacks it
            missing.append(f"layer {layer!r}")
    if missing:
        raise MissingRoleError(f"PDK {pdk.name!r} lacks what the cells need: " + "; ".join(missing))


def use_pdk(pdk: str | gf.Pdk | None = None, roles: Roles | None = None) -> Roles:
    """Activate ``pdk`` with the ``pcells`` cells registered in it, and return its checked :class:`Roles`.

    Args:
        pdk: a name in :data:`KNOWN_PDKS`, a ``gf.Pdk`` (one of those, or any PDK when ``roles`` is given),
            or ``None`` for the active PDK.
        roles: roles to use instead of the known ones (for a PDK tapmesh does not know).

    Raises:
        UnknownPdkError: a name (or a ``gf.Pdk`` without ``roles``) tapmesh has no roles for.
        PdkNotInstalledError: a known PDK whose package is missing (names the extra to install).
        MissingRoleError: the PDK lacks a layer, cross-section or component of the roles.
    """
    from .pdk import derived_pdk

    if pdk is None:
        pdk = gf.get_active_pdk()
    if isinstance(pdk, str):
        if pdk not in KNOWN_PDKS:
            raise UnknownPdkError(f"unknown PDK {pdk!r}; known: {known_pdks()}")
        name, base = pdk, None
    elif isinstance(pdk, gf.Pdk):
        name, base = pdk_name(pdk), pdk
        if name is None and roles is None:
            raise UnknownPdkError(f"no roles for PDK {pdk.name!r}; known: {known_pdks()} (or pass roles=)")
        name = name or pdk.name
    else:
        raise TypeError(f"pdk must be a PDK name or a gdsfactory Pdk, got {type(pdk).__name__}")
    if roles is None:
        if name not in _ROLES:
            raise UnknownPdkError(f"no roles registered for PDK {name!r} (pass roles=)")
        roles = _ROLES[name]()
    target_name = "tapmesh" if name == "generic" else f"tapmesh-{name}"
    try:
        current = gf.get_active_pdk().name
    except ValueError:
        current = None
    if current != target_name:
        if name == "generic":
            from .pdk import get_pdk

            target = get_pdk()
        elif base is not None and base.name == target_name:
            target = base
        else:
            target = derived_pdk(_base_pdk(name) if base is None else base, name=target_name)
        if current is not None:
            compat.clear_cache()  # cells cached under another PDK would carry its layers
        target.activate()
    check_roles(roles)
    return roles


def active_roles() -> Roles:
    """Roles of the active PDK (activating the tapmesh PDK when none is active)."""
    try:
        pdk = gf.get_active_pdk()
    except ValueError:
        pdk = None
    if pdk is None:
        return use_pdk("generic")
    name = pdk_name(pdk)
    if name is None:
        raise UnknownPdkError(f"no roles for the active PDK {pdk.name!r}; known: {known_pdks()}")
    return use_pdk(name)


ROLE_PARAMS: dict[str, str] = {
    "cross_section": "waveguide",
    "cross_section_heater": "heater",
    "cross_section_lane": "lane",
    "cross_section_track": "track",
    "via": "via_track",
    "via_heater": "via_heater",
    "pad": "pad",
    "pad_open": "pad_open",
    "grating_coupler": "fiber_coupler",
    "fiber_wg_port": "fiber_wg_port",
    "fiber_port": "fiber_port",
    "edge_coupler": "edge_coupler",
    "floorplan": "floorplan",
    "layer_label": "label",
    "shared_return": "shared_return",
    "pdk": "pdk",
    "process": "process",
}
"""Cell parameter → :class:`Roles` attribute that fills it."""


def role_kwargs(roles: Roles, params, given: dict) -> dict:
    """``given`` completed with the roles and the roles' layout defaults for every parameter in ``params``
    that the caller did not pass (what the caller passes always wins)."""
    out = dict(given)
    for p, role in ROLE_PARAMS.items():
        if p in params and p not in out:
            out[p] = getattr(roles, role)
    for k, v in roles.layout.items():
        if k in params and k not in out:
            out[k] = v
    return out


def with_roles(cell):
    """Wrap a cell so that ``pdk=`` (name or ``gf.Pdk``; default: the active PDK) fills its role parameters."""
    import functools
    import inspect

    params = set(inspect.signature(cell).parameters)

    @functools.wraps(cell)
    def wrapper(*args, pdk: str | gf.Pdk | None = None, **kwargs):
        roles = use_pdk(pdk) if pdk is not None else active_roles()
        return cell(*args, **role_kwargs(roles, params, kwargs))

    wrapper.cell = cell
    return wrapper
