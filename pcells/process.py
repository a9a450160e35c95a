"""Process rules as data: which metals a process has, what each is for, and the widths, spaces and contacts the
router and the DRC deck read.

A :class:`ProcessRules` names layers by the active PDK's layer names (or ``(layer, datatype)`` tuples), so one
instance per PDK is all a foundry process needs: :func:`generic_process` derives the generic PDK's from its
cross-sections, vias and constants; other PDKs register theirs with :func:`register_process`. Rules and their
sources are listed in docs/pcells.md ("Process rules").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ProcessError

CONTACTS = ("via", "overlap")


def layer_key(layer) -> Any:
    """A comparable key of a layer spec: its index in the active PDK (names that alias one layer compare equal)."""
    import gdsfactory as gf

    try:
        return int(gf.get_layer(layer))
    except Exception:  # noqa: BLE001 - a spec the active PDK does not know compares by value
        return layer


@dataclass(frozen=True)
class LayerRule:
    """Minimum width and space (µm) of one drawn layer."""

    layer: Any
    min_width: float
    min_space: float


@dataclass(frozen=True)
class EnclosureRule:
    """``outer`` must enclose every shape of ``inner`` by at least ``enclosure`` µm (via in metal, opening in pad)."""

    outer: Any
    inner: Any
    enclosure: float


@dataclass(frozen=True)
class ProcessRules:
    """The electrical stack of a process and its design rules (all lengths µm).

    Attributes:
        name: process name (the registry key).
        waveguide: waveguide core layer.
        heater: heater metal layer (a resistor: never a net conductor in connectivity extraction).
        routers: routing metals, bottom to top; the last one carries the pads/bumps.
        vias: cut layers between consecutive ``routers`` (``len(routers) − 1`` entries; empty when
            ``contact == "overlap"``).
        heater_via: cut layer from the heater metal to ``routers[0]`` (``None`` for overlap contacts).
        contact: ``"via"`` — two metals connect only through a cut layer and may cross freely; ``"overlap"`` —
            two metals that overlap are connected, so a route must never cross another net's metal.
        contact_overlap: minimum overlap of two metals at an overlap contact.
        layer_rules: width/space rule of every layer the layouts draw.
        enclosures: enclosure rules (metal around cut, pad metal around pad opening).
        pad_open: pad-opening (passivation) layer, ``None`` if the process has none.
        pad_open_inset: distance from a pad's edge to its opening.
        floorplan: die-outline layer.
        deep_trench: deep-trench layer for thermal isolation trenches (``None``: not offered).
        min_pad_pitch: smallest wire-bond / probe pad pitch.
        min_bump_pitch: smallest flip-chip bump pitch.
        reticle: largest die (width, height) the process exposes in one field.
        cross_section_heater, cross_section_lane, cross_section_track: the PDK cross-sections the cells draw
            heaters, lanes (``routers[0]``) and tracks (``routers[-1]``) with.
        via_heater, via_track: component specs of the heater→lane and lane→track via stacks.
    """

    name: str
    waveguide: Any = "WG"
    heater: Any = "HEATER"
    routers: tuple = ("M2", "MTOP")
    vias: tuple = ("VIA2",)
    heater_via: Any = "VIA1"
    contact: str = "via"
    contact_overlap: float = 0.0
    layer_rules: tuple = ()
    enclosures: tuple = ()
    pad_open: Any = "PADOPEN"
    pad_open_inset: float = 5.0
    floorplan: Any = "FLOORPLAN"
    deep_trench: Any = "DEEPTRENCH"
    min_pad_pitch: float = 100.0
    min_bump_pitch: float = 40.0
    reticle: tuple = (26_000.0, 33_000.0)
    cross_section_heater: str = "heater_metal"
    cross_section_lane: str = "metal2"
    cross_section_track: str = "metal3"
    via_heater: str = "via_stack_heater_m2"
    via_track: str = "via_stack_m2_m3"
    notes: tuple = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.contact not in CONTACTS:
            raise ProcessError(f"contact={self.contact!r}; expected one of {CONTACTS}")
        if not self.routers:
            raise ProcessError("a process needs at least one routing metal")
        if self.contact == "via" and len(self.vias) != len(self.routers) - 1:
            raise ProcessError(f"{len(self.routers)} routing metals need {len(self.routers) - 1} via layers, got {self.vias}")

    # ---- lookups
    def rule(self, layer) -> LayerRule:
        """The width/space rule of ``layer`` (:class:`ProcessError` when the process has none)."""
        key = layer_key(layer)
        for r in self.layer_rules:
            if layer_key(r.layer) == key:
                return r
        raise ProcessError(f"process {self.name!r} has no width/space rule for layer {layer!r}")

    def min_width(self, layer) -> float:
        return self.rule(layer).min_width

    def min_space(self, layer) -> float:
        return self.rule(layer).min_space

    def min_pitch(self, layer) -> float:
        """Minimum centre-to-centre pitch of parallel lines at the minimum width (µm)."""
        r = self.rule(layer)
        return r.min_width + r.min_space

    def enclosure(self, outer, inner) -> float:
        ko, ki = layer_key(outer), layer_key(inner)
        for e in self.enclosures:
            if layer_key(e.outer) == ko and layer_key(e.inner) == ki:
                return e.enclosure
        return 0.0

    @property
    def pad_metal(self):
        """The metal the pads and bumps are drawn in (the top routing metal)."""
        return self.routers[-1]

    @property
    def lane_metal(self):
        """The lower routing metal: heater contacts to track vias, horizontal jogs."""
        return self.routers[0]

    @property
    def track_metal(self):
        """The metal of the long vertical tracks (the top routing metal)."""
        return self.routers[-1]

    def connectivity(self) -> tuple[tuple, tuple]:
        """(conductors bottom→top, cut layers between them) for net extraction; the heater is left out (a
        resistor joins its own signal and return)."""
        if self.contact == "overlap":
            return tuple(self.routers), ()
        return tuple(self.routers), tuple(self.vias)

    def drawn_layers(self) -> tuple:
        return tuple(r.layer for r in self.layer_rules)

    def with_rules(self, **changes) -> ProcessRules:
        """A copy with fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)


def generic_process() -> ProcessRules:
    """The rules of gdsfactory's generic PDK as the ``pcells`` layouts use it.

    Layers and via sizes come from the active PDK: heater/lane/track layers from the ``heater_metal``,
    ``metal2`` and ``metal3`` cross-sections, cut sizes, pitches and enclosures from the ``via1``/``via2`` cells,
    the pad pitch from the PDK constants. The generic PDK publishes no minimum metal width or space; the values
    below (heater 2/2, M2 2/2, top metal 3/3 µm, waveguide 0.2/0.2 µm) are this project's deck.
    """
    import gdsfactory as gf

    pdk = gf.get_active_pdk()
    xs_h = gf.get_cross_section("heater_metal")
    xs_l = gf.get_cross_section("metal2")
    xs_t = gf.get_cross_section("metal3")
    names = {int(gf.get_layer(n)): n for n in ("HEATER", "M2", "MTOP", "M3")}

    def name_of(layer) -> str:
        return names.get(int(gf.get_layer(layer)), str(layer))

    heater, lane, track = name_of(xs_h.layer), name_of(xs_l.layer), name_of(xs_t.layer)
    cuts = {}
    for cut, spec in (("VIA1", "via1"), ("VIA2", "via2")):
        v = gf.get_component(spec)
        size = float(v.info["xsize"])
        cuts[cut] = (size, float(v.info["row_pitch"]) - size, float(v.info["enclosure"]))
    pad_pitch = float(getattr(getattr(pdk, "constants", None), "pad_pitch", 100.0))
    layer_rules = (
        LayerRule("WG", 0.2, 0.2),
        LayerRule("SLAB150", 0.2, 0.2),
        LayerRule(heater, 2.0, 2.0),
        LayerRule(lane, 2.0, 2.0),
        LayerRule(track, 3.0, 3.0),
        LayerRule("VIA1", cuts["VIA1"][0], cuts["VIA1"][1]),
        LayerRule("VIA2", cuts["VIA2"][0], cuts["VIA2"][1]),
        LayerRule("PADOPEN", 10.0, 10.0),
        LayerRule("DEEPTRENCH", 2.0, 5.0),
    )
    enclosures = (
        EnclosureRule(heater, "VIA1", cuts["VIA1"][2]),
        EnclosureRule(lane, "VIA1", cuts["VIA1"][2]),
        EnclosureRule(lane, "VIA2", cuts["VIA2"][2]),
        EnclosureRule(track, "VIA2", cuts["VIA2"][2]),
        EnclosureRule(track, "PADOPEN", 5.0),
    )
    return ProcessRules(
        name="generic",
        heater=heater,
        routers=(lane, track),
        vias=("VIA2",),
        heater_via="VIA1",
        contact="via",
        layer_rules=layer_rules,
        enclosures=enclosures,
        pad_open="PADOPEN",
        pad_open_inset=5.0,
        floorplan="FLOORPLAN",
        deep_trench="DEEPTRENCH",
        min_pad_pitch=pad_pitch,
        min_bump_pitch=40.0,
        notes=("metal widths/spaces: project deck (the generic PDK publishes none)",),
    )


_REGISTRY: dict[str, Any] = {"generic": generic_process}


def register_process(rules: ProcessRules | Any, name: str | None = None) -> None:
    """Register ``rules`` (a :class:`ProcessRules`, or a zero-argument function returning one) under ``name``."""
    key = name or getattr(rules, "name", None)
    if not key:
        raise ProcessError("register_process needs a name for a rules factory")
    _REGISTRY[key] = rules


def get_process(process: str | ProcessRules = "generic") -> ProcessRules:
    """Resolve ``process`` (a registered name or a :class:`ProcessRules`) to its rules."""
    if isinstance(process, ProcessRules):
        return process
    try:
        entry = _REGISTRY[process]
    except (KeyError, TypeError):
        raise ProcessError(f"unknown process {process!r}; registered: {sorted(_REGISTRY)}") from None
    return entry() if callable(entry) else entry


def processes() -> list[str]:
    """Names of the registered processes."""
    return sorted(_REGISTRY)
