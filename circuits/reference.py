"""The reference model: a mesh as a SAX netlist and circuit.

``sax_circuit(topology)`` writes the mesh as a hierarchical SAX netlist — one ``mzi_tapped`` sub-circuit
per MZI (the components of :func:`tapmesh.circuits.models.mzi_netlist` plus a grating tap on the φ and θ
segments), one heated, tapped output segment per mode — and compiles it with SAX's ``klu`` backend.
It is slow (see ``benchmarks/bench_engine.py``) and exists to check the engine against an independent
solver of the same component models. ``sax_circuit(component)`` extracts the circuit from a gdsfactory
layout instead (:mod:`tapmesh.circuits.layout`).

External ports: ``in{m}`` / ``out{m}`` for mode m, and for every phase shifter ``s`` (canonical order)
its two tap gratings ``{s.name}_fwd`` / ``{s.name}_bwd`` (e.g. ``theta3_fwd``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
import sax

from tapmesh.circuits import models
from tapmesh.circuits.params import MeshParams
from tapmesh.circuits.topology import MeshTopology

MZI_CELL = "mzi_tapped"


def mzi_tapped_netlist(coupler_model: str = "coupler") -> dict:
    """Netlist of one MZI with a grating tap on its φ (top input) and θ (top arm) segments.

    Ports: ``o1`` bottom-in, ``o2`` top-in, ``o3`` top-out, ``o4`` bottom-out, and the tap gratings
    ``tap_phi_fwd``, ``tap_phi_bwd``, ``tap_theta_fwd``, ``tap_theta_bwd``.
    """
    netlist = models.mzi_netlist(coupler_model)
    instances = dict(netlist["instances"], tap_phi={"component": "grating_tap"}, tap_theta={"component": "grating_tap"})
    connections = dict(netlist["connections"])
    # splice the taps in downstream of their heaters
    del connections["phi,o2"], connections["theta,o2"]
    connections.update(
        {
            "phi,o2": "tap_phi,o1",
            "tap_phi,o2": "coupler_in,o2",
            "theta,o2": "tap_theta,o1",
            "tap_theta,o2": "coupler_out,o2",
        }
    )
    ports = dict(
        netlist["ports"],
        tap_phi_fwd="tap_phi,o3",
        tap_phi_bwd="tap_phi,o4",
        tap_theta_fwd="tap_theta,o3",
        tap_theta_bwd="tap_theta,o4",
    )
    return {"instances": instances, "connections": connections, "ports": ports}


def mesh_netlist(topology: MeshTopology, taps: bool = True) -> dict[str, Any]:
    """SAX netlist of the whole mesh.

    With ``taps`` (default): hierarchical, ``{"top_level": ..., "mzi_tapped": ...}``, every heated segment
    tapped and every tap grating a port. Without: flat, one analytic :func:`tapmesh.circuits.models.mzi` per MZI
    and the output heaters (the cheapest faithful SAX description of a mesh, used as the speed reference).
    """
    instances: dict[str, Any] = {}
    connections: dict[str, str] = {}
    ports: dict[str, str] = {}
    # the open end of each mode as light moves through the columns: (instance, port)
    front = [None] * topology.n

    def chain(mode, port_in, port_out):
        if front[mode] is None:
            ports[f"in{mode}"] = port_in
        else:
            connections[front[mode]] = port_in
        front[mode] = port_out

    idle_of = {(int(c), int(m)): j for j, (c, m) in enumerate(topology.tables.idle_slots)}
    for column, members in enumerate(topology.columns):
        for index in members:
            name, top = f"mzi{index}", topology.mzis[index][1]
            instances[name] = {"component": MZI_CELL if taps else "mzi"}
            chain(top, f"{name},o2", f"{name},o3")
            chain(top + 1, f"{name},o1", f"{name},o4")
            if taps:
                for shifter in ("theta", "phi"):
                    for direction in ("fwd", "bwd"):
                        ports[f"{shifter}{index}_{direction}"] = f"{name},tap_{shifter}_{direction}"
        for mode in range(topology.n):
            if (column, mode) in idle_of:
                name = f"idle{idle_of[column, mode]}"
                instances[name] = {"component": "phase_shifter"}
                chain(mode, f"{name},o1", f"{name},o2")
    for mode in range(topology.n):
        heater = f"gamma{mode}"
        instances[heater] = {"component": "phase_shifter"}
        if front[mode] is None:
            ports[f"in{mode}"] = f"{heater},o1"
        else:
            connections[front[mode]] = f"{heater},o1"
        if taps:
            tap = f"tap_gamma{mode}"
            instances[tap] = {"component": "grating_tap"}
            connections[f"{heater},o2"] = f"{tap},o1"
            ports[f"out{mode}"] = f"{tap},o2"
            ports[f"gamma{mode}_fwd"] = f"{tap},o3"
            ports[f"gamma{mode}_bwd"] = f"{tap},o4"
        else:
            ports[f"out{mode}"] = f"{heater},o2"
    top_level = {"instances": instances, "connections": connections, "ports": ports}
    if not taps:
        return top_level
    return {"top_level": top_level, MZI_CELL: mzi_tapped_netlist()}


@functools.cache
def _compiled(topology: MeshTopology, backend: str, taps: bool):
    circuit, _ = sax.circuit(mesh_netlist(topology, taps), dict(models.MODELS), backend=backend)
    return circuit


def sax_circuit(obj, backend: str = "klu", taps: bool = True, **options) -> Callable[..., sax.SDict]:
    """The SAX circuit function of a mesh topology (or of a gdsfactory layout).

    For a :class:`~tapmesh.circuits.MeshTopology` the returned function takes ``wl`` and per-instance settings
    (see :func:`instance_settings`) and returns an S-dict over the ports documented in this module.
    ``taps=False`` gives the flat, tap-free netlist (see :func:`mesh_netlist`). Compiled circuits are
    cached per topology.
    """
    if isinstance(obj, MeshTopology):
        return _compiled(obj, backend, taps)
    from tapmesh.circuits.layout import sax_circuit_from_component  # needs gdsfactory: import on demand

    return sax_circuit_from_component(obj, backend=backend, **options)


def instance_settings(topology: MeshTopology, params: MeshParams, taps: bool = True) -> dict[str, dict]:
    """Settings of every instance of :func:`mesh_netlist` that reproduce ``params`` (for the SAX circuit).

    Without taps, the tap fractions of ``params`` are ignored (the flat netlist has no taps)."""
    k = topology.n_mzis
    settings: dict[str, dict] = {}
    if not taps:
        for i in range(k):
            settings[f"mzi{i}"] = {
                "theta": params.theta[i],
                "phi": params.phi[i],
                "delta_in": params.delta[i, 0],
                "delta_out": params.delta[i, 1],
                "top_in_loss_db": params.loss_db[i, 0],
                "bottom_in_loss_db": params.loss_db[i, 1],
                "top_arm_loss_db": params.loss_db[i, 2],
                "bottom_arm_loss_db": params.loss_db[i, 3],
            }
        for m in range(topology.n):
            settings[f"gamma{m}"] = {"phase": params.gamma[m], "loss_db": params.output_loss_db[m]}
        return settings | _idle_settings(topology, params)
    for i in range(k):
        settings[f"mzi{i}"] = {
            "phi": {"phase": params.phi[i], "loss_db": params.loss_db[i, 0]},
            "bottom_in": {"phase": 0.0, "loss_db": params.loss_db[i, 1]},
            "theta": {"phase": params.theta[i], "loss_db": params.loss_db[i, 2]},
            "bottom_arm": {"phase": 0.0, "loss_db": params.loss_db[i, 3]},
            "coupler_in": {"delta": params.delta[i, 0]},
            "coupler_out": {"delta": params.delta[i, 1]},
            "tap_theta": {"tap_fraction": params.tap_fraction[i]},
            "tap_phi": {"tap_fraction": params.tap_fraction[k + i]},
        }
    for m in range(topology.n):
        settings[f"gamma{m}"] = {"phase": params.gamma[m], "loss_db": params.output_loss_db[m]}
        settings[f"tap_gamma{m}"] = {"tap_fraction": params.tap_fraction[2 * k + m]}
    return settings | _idle_settings(topology, params)


def _idle_settings(topology: MeshTopology, params: MeshParams) -> dict[str, dict]:
    return {f"idle{j}": {"phase": 0.0, "loss_db": params.idle_loss_db[j]} for j in range(topology.n_idle)}


def reference_unitary(topology: MeshTopology, params: MeshParams, wl=models.WL0, taps: bool = True) -> jnp.ndarray:
    """Transfer matrix from the SAX circuit: U[i, j] = S[in_j → out_i] (shape (n, n), or (W, n, n))."""
    s = sax_circuit(topology, taps=taps)(wl=wl, **instance_settings(topology, params, taps))
    n = topology.n
    return jnp.stack([jnp.stack([s[(f"in{j}", f"out{i}")] for j in range(n)], -1) for i in range(n)], -2)


def reference_taps(topology: MeshTopology, params: MeshParams, x, direction: str = "forward", wl=models.WL0):
    """Field leaving every tap grating of ``direction`` for the input field ``x`` (n,), from the SAX circuit.

    Equal to ``i·√t`` times the engine's tap field (the tap coupler's drop coefficient)."""
    s = sax_circuit(topology)(wl=wl, **instance_settings(topology, params))
    suffix, source = ("_fwd", "in") if direction == "forward" else ("_bwd", "out")
    x = np.asarray(x)
    return jnp.stack(
        [
            sum(x[j] * s[(f"{source}{j}", f"{shifter.name}{suffix}")] for j in range(topology.n))
            for shifter in topology.phase_shifters
        ]
    )
