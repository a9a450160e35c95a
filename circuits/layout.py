"""Layout → SAX: the circuit model of a drawn mesh (or chip), built from its own recursive netlist.

:func:`sax_circuit_from_component` walks ``component.get_netlist(recursive=True)``: every leaf cell of
``pcells`` (and the gdsfactory waveguides and gratings they use) gets a model from :mod:`tapmesh.circuits.models`
whose parameters come from the drawn geometry (``info["length"]``, ``info["path_length"]``,
``info["tap_fraction"]``); purely electrical cells (vias, pads) are dropped; every other cell stays a SAX
sub-circuit. Drawn lengths and bends therefore count: the path-length phases are the drawn ones.

``pcells`` draws every MZI path and every pass-through path with the same length, so on the mesh the
path-length phases reduce to one global phase (the ``global_phase`` the tests fold out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import sax

from . import models as M

# gdsfactory / pcells cell (function) name → (model name, info key for the drawn length or None)
LEAF_MODELS: dict[str, tuple[str, str | None]] = {
    "straight": ("waveguide", "length"),
    "bend_euler": ("waveguide", "length"),
    "bend_circular": ("waveguide", "length"),
    "bend_s": ("waveguide", "length"),
    "heater": ("heater_drawn", "length"),
    "grating_tap": ("grating_tap_drawn", "length"),
    "coupler_dc": ("coupler_drawn", "path_length"),
    "coupler_mmi": ("mmi_drawn", "path_length"),
    "grating_coupler_elliptical": ("grating_coupler", None),
    "grating_coupler_elliptical_te": ("grating_coupler", None),
    "grating_coupler_rectangular": ("grating_coupler", None),
    "tap_grating": ("grating_coupler", None),
    "edge_coupler": ("waveguide", "length"),
}
ELECTRICAL_PREFIXES = ("e", "r", "gnd", "pad")


def waveguide(wl=M.WL0, wl0: float = M.WL0, neff=2.34, ng=4.2, length=10.0, loss_db_cm=2.0) -> sax.SDict:
    """Drawn waveguide (straight or bend): :func:`tapmesh.circuits.models.waveguide` over the drawn length (µm)."""
    return M.waveguide(wl, wl0, neff, ng, length, loss_db_cm)


def heater_drawn(
    wl=M.WL0,
    wl0: float = M.WL0,
    voltage=0.0,
    phase_offset=0.0,
    alpha=0.5,
    beta=0.0,
    neff=2.34,
    ng=4.2,
    length=100.0,
    loss_db_cm=2.0,
) -> sax.SDict:
    """Drawn heater: :func:`tapmesh.circuits.models.thermo_optic_phase_shifter` over its drawn length."""
    return M.thermo_optic_phase_shifter(wl, wl0, voltage, phase_offset, alpha, beta, neff, ng, length, loss_db_cm)


def _propagated(s: sax.SDict, wl, wl0, neff, ng, length, loss_db_cm) -> sax.SDict:
    """``s`` times the propagation over ``length`` µm of drawn waveguide (one path through the device)."""
    prop = M.waveguide(wl, wl0, neff, ng, length, loss_db_cm)[("o1", "o2")]
    return {k: v * prop for k, v in s.items()}


def grating_tap_drawn(
    wl=M.WL0,
    wl0: float = M.WL0,
    tap_fraction=0.02,
    grating_efficiency=1.0,
    loss_db=0.0,
    neff=2.34,
    ng=4.2,
    length=29.0,
    loss_db_cm=2.0,
) -> sax.SDict:
    """Drawn grating tap: :func:`tapmesh.circuits.models.grating_tap` times the propagation over its bus length."""
    tap = M.grating_tap(wl, wl0, tap_fraction, grating_efficiency, loss_db)
    return _propagated(tap, wl, wl0, neff, ng, length, loss_db_cm)


def coupler_drawn(
    wl=M.WL0,
    wl0: float = M.WL0,
    delta=0.0,
    kappa_dispersion=M.DC_KAPPA_DISPERSION,
    loss_db=0.0,
    neff=2.34,
    ng=4.2,
    length=100.0,
    loss_db_cm=2.0,
) -> sax.SDict:
    """Drawn directional coupler: :func:`tapmesh.circuits.models.coupler` times the propagation over one path."""
    return _propagated(M.coupler(wl, wl0, delta, kappa_dispersion, loss_db), wl, wl0, neff, ng, length, loss_db_cm)


def mmi_drawn(
    wl=M.WL0,
    wl0: float = M.WL0,
    delta=0.0,
    loss_db=0.0,
    neff=2.34,
    ng=4.2,
    length=100.0,
    loss_db_cm=2.0,
) -> sax.SDict:
    """Drawn 2x2 MMI with its fan-out bends: :func:`tapmesh.circuits.models.mmi2x2` times the propagation over one path."""
    return _propagated(M.mmi2x2(wl, wl0, delta, loss_db), wl, wl0, neff, ng, length, loss_db_cm)


def grating_coupler(wl=M.WL0, wl0: float = M.WL0, peak_loss_db=3.0, bandwidth_1db=0.035, reflection=0.0) -> sax.SDict:
    """Fiber (or camera) grating: :func:`tapmesh.circuits.models.grating_coupler`."""
    return M.grating_coupler(wl, wl0, peak_loss_db, bandwidth_1db, reflection)


LAYOUT_MODELS: dict[str, Callable] = {
    "waveguide": waveguide,
    "heater_drawn": heater_drawn,
    "grating_tap_drawn": grating_tap_drawn,
    "coupler_drawn": coupler_drawn,
    "mmi_drawn": mmi_drawn,
    "grating_coupler": grating_coupler,
}
"""Model name → model of the layout-extracted circuit."""

_MODEL_PORTS = {
    "waveguide": ("o1", "o2"),
    "heater_drawn": ("o1", "o2"),
    "grating_tap_drawn": ("o1", "o2", "o3", "o4"),
    "coupler_drawn": ("o1", "o2", "o3", "o4"),
    "mmi_drawn": ("o1", "o2", "o3", "o4"),
    "grating_coupler": ("o1", "o2"),
}

_PROPAGATING = ("waveguide", "heater_drawn", "grating_tap_drawn", "coupler_drawn", "mmi_drawn")


class LayoutModelError(ValueError):
    """The layout's netlist cannot be turned into a circuit model (a cell without model, ambiguous cells)."""


@dataclass(frozen=True)
class LayoutCircuit:
    """The SAX model of a drawn mesh or chip, and how its ports and heaters map onto the mesh.

    Attributes:
        circuit: the SAX circuit function (``sax.circuit(...)[0]``), returning an SDict; call it with
            ``**self.settings(phases=...)`` or ``**self.settings(voltages=...)``.
        netlist: the recursive SAX netlist it was built from (first key: the top cell).
        input_ports / output_ports: circuit port names of modes 0..n−1 (top to bottom).
        shifters: canonical shifter order (``("theta", k)``…, ``("phi", k)``…, ``("gamma", m)``…).
        heater_instances: per shifter, the instance path (top → heater leaf) in the circuit.
        tap_ports: per shifter, the circuit ports (forward, backward) of its tap, when exposed.
        n, kind: mesh size and kind.
    """

    circuit: Callable
    netlist: dict
    input_ports: tuple
    output_ports: tuple
    shifters: tuple
    heater_instances: tuple
    tap_ports: tuple
    n: int
    kind: str
    options: dict = field(default_factory=dict)

    def __call__(self, *args, **kwargs):
        """Call the SAX circuit (so a ``LayoutCircuit`` can stand where a circuit function is expected)."""
        return self.circuit(*args, **kwargs)

    def settings(self, phases=None, voltages=None) -> dict:
        """Nested SAX settings that put ``phases`` (φ0, rad) or ``voltages`` (V) on the heaters, canonical order."""
        out: dict[str, Any] = {}
        for i, path in enumerate(self.heater_instances):
            leaf: dict[str, Any] = {}
            if phases is not None:
                leaf["phase_offset"] = phases[i]
            if voltages is not None:
                leaf["voltage"] = voltages[i]
            d = out
            for name in path[:-1]:
                d = d.setdefault(name, {})
            d[path[-1]] = leaf
        return out

    def matrix(self, wl=M.WL0, phases=None, voltages=None) -> np.ndarray:
        """Transfer matrix ``U[out_mode, in_mode]`` at ``wl`` (µm) as a NumPy array."""
        return self.matrix_from_sdict(self.circuit(wl=wl, **self.settings(phases=phases, voltages=voltages)))

    def matrix_from_sdict(self, s) -> np.ndarray:
        """``U[out_mode, in_mode]`` read from an S-dict this circuit returned (one evaluation, several reads)."""
        return np.array(
            [[np.asarray(s[(pi, po)]) for pi in self.input_ports] for po in self.output_ports],
        )


def _instance_ports(netlist: dict) -> dict[str, set]:
    used: dict[str, set] = {}
    refs = [p for net in netlist.get("nets", []) for p in (net["p1"], net["p2"])]
    refs += list(netlist.get("ports", {}).values())
    for ref in refs:
        inst, port = ref.split(",")
        used.setdefault(inst, set()).add(port)
    return used


def _normalize(recnet: dict, options: dict) -> dict:
    """gdsfactory recursive netlist → SAX recursive netlist with layout models and drawn parameters."""
    settings_of = {
        "waveguide": ("neff", "ng", "loss_db_cm", "wl0"),
        "heater_drawn": ("neff", "ng", "loss_db_cm", "wl0", "alpha"),
        "grating_tap_drawn": ("neff", "ng", "loss_db_cm", "wl0", "grating_efficiency"),
        "coupler_drawn": ("neff", "ng", "loss_db_cm", "wl0"),
        "mmi_drawn": ("neff", "ng", "loss_db_cm", "wl0"),
        "grating_coupler": ("wl0", "peak_loss_db"),
    }
    # exposed optical ports of every composite cell, bottom-up (cells with none are dropped)
    out: dict[str, dict] = {}
    optical_ports: dict[str, tuple] = dict(_MODEL_PORTS)
    seen_settings: dict[str, Any] = {}

    def visit(name: str) -> tuple:
        if name in out:
            return tuple(out[name]["ports"])
        if name in optical_ports and name not in recnet:
            return optical_ports[name]
        net = recnet[name]
        instances = {}
        kept_ports: dict[str, tuple] = {}
        for iname, inst in net["instances"].items():
            comp = inst["component"]
            key = (comp, repr(sorted((inst.get("settings") or {}).items())))
            if comp in recnet and comp not in LEAF_MODELS:
                prev = seen_settings.setdefault(comp, key)
                if prev != key:
                    msg = f"cell {comp!r} appears with different settings; netlist names are ambiguous"
                    raise LayoutModelError(msg)
                ports = visit(comp)
                if ports:
                    instances[iname] = {"component": comp}
                    kept_ports[iname] = ports
                continue
            if comp in LEAF_MODELS:
                model, length_key = LEAF_MODELS[comp]
                info = inst.get("info") or {}
                settings = {k: options[k] for k in settings_of[model] if k in options}
                if length_key is not None:
                    settings["length"] = float(info[length_key])
                if model == "grating_tap_drawn":
                    settings["tap_fraction"] = float(info["tap_fraction"])
                instances[iname] = {"component": model, "settings": settings}
                kept_ports[iname] = _MODEL_PORTS[model]
                continue
            used = _instance_ports(net).get(iname, set())
            optical = [p for p in used if not p.startswith(ELECTRICAL_PREFIXES)]
            if optical:
                raise LayoutModelError(f"no model for cell {comp!r} (instance {iname!r} in {name!r}, ports {optical})")
        connections = {}
        for n_ in net.get("nets", []):
            (i1, p1), (i2, p2) = n_["p1"].split(","), n_["p2"].split(",")
            if p1 in kept_ports.get(i1, ()) and p2 in kept_ports.get(i2, ()):
                connections[n_["p1"]] = n_["p2"]
        ports = {}
        for pname, ref in net.get("ports", {}).items():
            inst, p = ref.split(",")
            if p in kept_ports.get(inst, ()):
                ports[pname] = ref
        out[name] = {"instances": instances, "connections": connections, "ports": ports}
        return tuple(ports)

    top = next(iter(recnet))
    visit(top)
    ordered = {top: out[top]}
    ordered.update({k: v for k, v in out.items() if k != top and v["ports"]})
    return ordered


def _find_mesh(component) -> tuple[tuple, Any]:
    """(instance path, mesh cell) of the ``pcells`` mesh inside ``component`` (``()`` if it is the mesh)."""

    def is_mesh(cell) -> bool:
        return "kind" in cell.info and "n_mzis" in cell.info

    if is_mesh(component):
        return (), component
    frontier = [((), component)]
    while frontier:  # breadth first: the shallowest mesh wins
        nxt = []
        for path, cell in frontier:
            for inst in cell.insts:
                if is_mesh(inst.cell):
                    return (*path, inst.name), inst.cell
                nxt.append(((*path, inst.name), inst.cell))
        frontier = nxt
    raise LayoutModelError(f"{component.name!r} contains no pcells mesh")


def sax_circuit_from_component(
    component,
    *,
    wl0: float = M.WL0,
    neff: float = 2.34,
    ng: float = 4.2,
    loss_db_cm: float = 2.0,
    alpha: float = 0.5,
    grating_efficiency: float = 1.0,
    backend: str = "klu",
) -> LayoutCircuit:
    """Build the SAX circuit of a ``pcells`` mesh or chip from its drawn, recursive netlist.

    Args:
        component: a :func:`tapmesh.pcells.mesh` (ports ``o1..o2n``) or a :func:`tapmesh.pcells.chip` (fiber ports).
        wl0, neff, ng, loss_db_cm: waveguide model parameters applied to every drawn length.
        alpha: heater efficiency, rad/V².
        grating_efficiency: tap grating efficiency.
        backend: SAX backend (``"klu"``).

    Returns:
        a :class:`LayoutCircuit`.
    """
    import warnings

    sax.set_port_naming_strategy("optical")
    options = dict(wl0=wl0, neff=neff, ng=ng, loss_db_cm=loss_db_cm, alpha=alpha, grating_efficiency=grating_efficiency)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recnet = component.get_netlist(recursive=True)
    netlist = _normalize(recnet, options)
    circuit, _ = sax.circuit(netlist, LAYOUT_MODELS, backend=backend)

    prefix, mesh_cell = _find_mesh(component)
    n, kind = int(mesh_cell.info["n"]), str(mesh_cell.info["kind"])
    from tapmesh.pcells import schedule

    mzis = schedule.mzis(n, kind)
    shifters = tuple(schedule.shifters(n, kind))
    heaters = []
    taps = []
    top_ports = netlist[next(iter(netlist))]["ports"]
    for name, idx in shifters:
        if name == "gamma":
            heaters.append((*prefix, f"gamma_m{idx}", "segment", "heater"))
        else:
            c, m = mzis[idx]
            heaters.append((*prefix, f"mzi_c{c}_m{m}", name, "heater"))
        pair = (f"tap_{name}{idx}_fwd", f"tap_{name}{idx}_bwd")
        taps.append(pair if all(p in top_ports for p in pair) else None)
    if prefix:
        inputs = tuple(component.info["input_ports"])
        outputs = tuple(component.info["output_ports"])
    else:
        inputs = tuple(f"o{m + 1}" for m in range(n))
        outputs = tuple(f"o{n + m + 1}" for m in range(n))
    missing = [p for p in inputs + outputs if p not in top_ports]
    if missing:
        raise LayoutModelError(f"ports {missing} are not connected to the mesh in the extracted netlist")
    return LayoutCircuit(
        circuit=circuit,
        netlist=netlist,
        input_ports=inputs,
        output_ports=outputs,
        shifters=shifters,
        heater_instances=tuple(heaters),
        tap_ports=tuple(taps),
        n=n,
        kind=kind,
        options=options,
    )
