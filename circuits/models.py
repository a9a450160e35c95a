"""SAX component models of a tapped MZI mesh.

Every model is a pure function ``(wl, **params) -> SDict`` in SAX's style: keyword arguments with
defaults, wavelength ``wl`` in µm (scalar or array), lengths in µm, phases in radians, losses in dB.
They broadcast over array parameters, so the JAX mesh engine evaluates them for all MZIs at once and
shares its physics with the SAX reference circuit.

Port names follow gdsfactory's cells so that a netlist extracted from a layout maps onto them:

* 2x2 couplers: ``o1`` bottom-left, ``o2`` top-left, ``o3`` top-right, ``o4`` bottom-right.
* straight elements: ``o1`` in (west), ``o2`` out (east).
* grating tap: ``o1`` bus in, ``o2`` bus out, ``o3`` forward tap (light travelling o1→o2 ends
  here), ``o4`` backward tap (light travelling o2→o1 ends here).

Conventions (``../shared/DESIGN.md``): an ideal coupler is ``B(κ) = [[cos κ, i sin κ], [i sin κ, cos κ]]``
with κ = π/4 for 50:50; a fabricated one has κ = π/4 + δ.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import sax

from tapmesh.circuits.trig import cos_sin

WL0 = 1.55
"""Design wavelength in µm."""

KAPPA_50_50 = jnp.pi / 4
"""Coupling angle κ of a 50:50 coupler, radians."""

DC_KAPPA_DISPERSION = 1.2
"""dκ/dλ of the default directional coupler, rad/µm (a 50:50 DC drifts ~±0.06 rad over the C band)."""

MMI_KAPPA_DISPERSION = 0.15
"""dκ/dλ of a 2x2 MMI, rad/µm: MMIs are broadband compared with directional couplers."""


_NEPER_PER_DB = float(np.log(10.0) / 20.0)


def _amplitude(loss_db):
    """Field amplitude of a power loss in dB (``10^(−dB/20)``, written as an exp: XLA vectorizes exp on
    CPU, not pow)."""
    return jnp.exp(-_NEPER_PER_DB * jnp.asarray(loss_db))


def _phasor(phase):
    """``exp(iφ)`` from cos and sin of a real phase (radians): a complex exp would also evaluate exp(0)."""
    return jax.lax.complex(*cos_sin(phase))


def _two_by_two(kappa, loss_db) -> sax.SDict:
    """Reciprocal 2x2 coupler S-dict from the coupling angle κ (radians)."""
    amp = _amplitude(loss_db)
    cos_kappa, sin_kappa = cos_sin(kappa)
    through = amp * cos_kappa + 0j
    cross = 1j * amp * sin_kappa
    return sax.reciprocal(
        {
            ("o2", "o3"): through,
            ("o1", "o4"): through,
            ("o2", "o4"): cross,
            ("o1", "o3"): cross,
        }
    )


def coupling_angle(wl=WL0, wl0=WL0, delta=0.0, kappa_dispersion=DC_KAPPA_DISPERSION):
    """Coupling angle κ(λ) = π/4 + δ + dκ/dλ·(λ − λ0) in radians (wl, wl0 in µm)."""
    return KAPPA_50_50 + delta + kappa_dispersion * (jnp.asarray(wl) - wl0)


def coupler(
    wl=WL0,
    wl0: float = WL0,
    delta=0.0,
    kappa_dispersion=DC_KAPPA_DISPERSION,
    loss_db=0.0,
) -> sax.SDict:
    """Directional coupler with splitting error and wavelength dependence.

    Args:
        wl: wavelength, µm.
        wl0: design wavelength at which the coupler is 50:50 (with ``delta=0``), µm.
        delta: splitting error δ, radians of κ (κ = π/4 + δ).
        kappa_dispersion: dκ/dλ, rad/µm.
        loss_db: excess loss, dB.
    """
    return _two_by_two(coupling_angle(wl, wl0, delta, kappa_dispersion), loss_db)


def mmi2x2(wl=WL0, wl0: float = WL0, delta=0.0, loss_db=0.0) -> sax.SDict:
    """2x2 multimode interference coupler: a broadband 50:50 splitter with splitting error δ (rad)."""
    return _two_by_two(coupling_angle(wl, wl0, delta, MMI_KAPPA_DISPERSION), loss_db)


def waveguide(
    wl=WL0,
    wl0: float = WL0,
    neff=2.34,
    ng=4.2,
    length=10.0,
    loss_db_cm=2.0,
) -> sax.SDict:
    """Dispersive straight (or bent) waveguide.

    Args:
        wl: wavelength, µm.
        wl0: reference wavelength of ``neff`` and ``ng``, µm.
        neff: effective index at ``wl0``.
        ng: group index at ``wl0``.
        length: length, µm.
        loss_db_cm: propagation loss, dB/cm.
    """
    wl = jnp.asarray(wl)
    neff_wl = neff - (wl - wl0) * (ng - neff) / wl0
    phase = 2 * jnp.pi * neff_wl * length / wl
    transmission = _amplitude(1e-4 * loss_db_cm * length) * jnp.exp(1j * phase)
    return sax.reciprocal({("o1", "o2"): transmission})


def phase_shifter(wl=WL0, wl0: float = WL0, phase=0.0, loss_db=0.0) -> sax.SDict:
    """Lumped phase shifter: the phase added by a heater relative to an unheated twin arm.

    The thermo-optic phase is an index change over a fixed length, so it scales as λ0/λ.
    Path-length phases common to both arms of an MZI are a gauge of the mesh and are left out here
    (the layout-extracted circuit keeps them; see :func:`thermo_optic_phase_shifter`).

    Args:
        wl: wavelength, µm.
        wl0: wavelength at which ``phase`` is specified, µm.
        phase: phase at ``wl0``, radians.
        loss_db: insertion loss of the segment (including its tap), dB.
    """
    transmission = _amplitude(loss_db) * _phasor(jnp.asarray(phase) * wl0 / jnp.asarray(wl))
    return sax.reciprocal({("o1", "o2"): transmission})


def phase_from_voltage(voltage, phase_offset=0.0, alpha=0.5, beta=0.0):
    """Thermo-optic phase φ(V) = φ0 + α V² + β V³ in radians (V in volts, α in rad/V², β in rad/V³)."""
    voltage = jnp.asarray(voltage)
    return phase_offset + alpha * voltage**2 + beta * voltage**3


def heater_power(voltage, resistance_ohm=1000.0):
    """Electrical power dissipated by a heater, mW, for a voltage in V and resistance in Ω."""
    return 1e3 * jnp.asarray(voltage) ** 2 / resistance_ohm


def thermo_optic_phase_shifter(
    wl=WL0,
    wl0: float = WL0,
    voltage=0.0,
    phase_offset=0.0,
    alpha=0.5,
    beta=0.0,
    neff=2.34,
    ng=4.2,
    length=100.0,
    loss_db_cm=2.0,
) -> sax.SDict:
    """Heated waveguide: propagation over ``length`` µm plus φ(V) = φ0 + αV² + βV³ (radians at ``wl0``).

    ``phase_offset`` φ0 is the fabrication offset (radians), ``alpha`` in rad/V², ``beta`` in rad/V³.
    """
    straight = waveguide(wl, wl0, neff, ng, length, loss_db_cm)[("o1", "o2")]
    heated = phase_from_voltage(voltage, phase_offset, alpha, beta) * wl0 / jnp.asarray(wl)
    return sax.reciprocal({("o1", "o2"): straight * jnp.exp(1j * heated)})


def grating_tap(
    wl=WL0,
    wl0: float = WL0,
    tap_fraction=0.02,
    grating_efficiency=1.0,
    loss_db=0.0,
) -> sax.SDict:
    """Bidirectional grating-tap monitor: a weak directional coupler whose drop waveguide ends in two gratings.

    Light travelling ``o1 → o2`` couples a fraction ``tap_fraction`` of its power into the drop waveguide
    and leaves through the forward grating ``o3``; light travelling ``o2 → o1`` leaves through the backward
    grating ``o4``. Tap ports carry the power the camera sees (times ``grating_efficiency``).

    Args:
        wl: wavelength, µm (the weak coupler's fraction is taken as flat over the band).
        wl0: design wavelength, µm.
        tap_fraction: power fraction t tapped at ``wl0`` (0 < t < 1).
        grating_efficiency: power efficiency of each tap grating towards the camera.
        loss_db: excess loss of the bus, dB.
    """
    one = jnp.ones_like(jnp.asarray(wl, dtype=float))
    amp = _amplitude(loss_db)
    through = amp * jnp.sqrt(1.0 - tap_fraction) * one + 0j
    drop = 1j * amp * jnp.sqrt(tap_fraction * grating_efficiency) * one
    return sax.reciprocal({("o1", "o2"): through, ("o1", "o3"): drop, ("o2", "o4"): drop})


def grating_coupler(
    wl=WL0,
    wl0: float = WL0,
    peak_loss_db=3.0,
    bandwidth_1db=0.035,
    reflection=0.0,
) -> sax.SDict:
    """Fiber grating coupler with a Gaussian passband.

    Args:
        wl: wavelength, µm.
        wl0: centre wavelength of the passband, µm.
        peak_loss_db: fiber-to-chip loss at ``wl0``, dB.
        bandwidth_1db: full 1-dB bandwidth, µm.
        reflection: field reflection back into the waveguide.

    Ports: ``o1`` waveguide, ``o2`` fiber.
    """
    wl = jnp.asarray(wl)
    # 1 dB down at ±bandwidth/2: loss(Δλ) = peak + (2Δλ/bw)² dB.
    loss_db = peak_loss_db + (2 * (wl - wl0) / bandwidth_1db) ** 2
    transmission = _amplitude(loss_db) + 0j
    return sax.reciprocal(
        {
            ("o1", "o2"): transmission,
            ("o1", "o1"): reflection * jnp.ones_like(transmission),
        }
    )


def mzi_netlist(coupler_model: str = "coupler") -> dict:
    """SAX netlist of one MZI: T(θ, φ) = B(κ2)·diag(e^{iθ}, 1)·B(κ1)·diag(e^{iφ}, 1).

    Ports: ``o1`` bottom-in, ``o2`` top-in, ``o3`` top-out, ``o4`` bottom-out. Settable instances:
    ``phi`` and ``theta`` (:func:`phase_shifter`), ``bottom_in`` and ``bottom_arm`` (loss-only segments),
    ``coupler_in`` and ``coupler_out`` (``coupler_model``).
    """
    return {
        "instances": {
            "phi": {"component": "phase_shifter"},
            "bottom_in": {"component": "phase_shifter"},
            "coupler_in": {"component": coupler_model},
            "theta": {"component": "phase_shifter"},
            "bottom_arm": {"component": "phase_shifter"},
            "coupler_out": {"component": coupler_model},
        },
        "connections": {
            "phi,o2": "coupler_in,o2",
            "bottom_in,o2": "coupler_in,o1",
            "coupler_in,o3": "theta,o1",
            "coupler_in,o4": "bottom_arm,o1",
            "theta,o2": "coupler_out,o2",
            "bottom_arm,o2": "coupler_out,o1",
        },
        "ports": {
            "o1": "bottom_in,o1",
            "o2": "phi,o1",
            "o3": "coupler_out,o3",
            "o4": "coupler_out,o4",
        },
    }




def mzi(
    wl=WL0,
    wl0: float = WL0,
    theta=0.0,
    phi=0.0,
    delta_in=0.0,
    delta_out=0.0,
    top_in_loss_db=0.0,
    bottom_in_loss_db=0.0,
    top_arm_loss_db=0.0,
    bottom_arm_loss_db=0.0,
) -> sax.SDict:
    """MZI T(θ, φ) = B(κ2)·diag(e^{iθ}, 1)·B(κ1)·diag(e^{iφ}, 1), composed analytically from :func:`coupler`
    and :func:`phase_shifter` (θ, φ in rad at ``wl0``; δ in rad; losses in dB). Ports as :func:`mzi_netlist`."""

    def matrix(s):  # [[top→top, bottom→top], [top→bottom, bottom→bottom]]
        return [[s[("o2", "o3")], s[("o1", "o3")]], [s[("o2", "o4")], s[("o1", "o4")]]]

    def product(a, b):
        return [[a[i][0] * b[0][j] + a[i][1] * b[1][j] for j in range(2)] for i in range(2)]

    def arms(top_phase, top_loss, bottom_loss):
        top = phase_shifter(wl, wl0, top_phase, top_loss)[("o1", "o2")]
        bottom = phase_shifter(wl, wl0, 0.0, bottom_loss)[("o1", "o2")]
        return [[top, 0.0 * top], [0.0 * top, bottom]]

    t = product(
        matrix(coupler(wl, wl0, delta_out)),
        product(
            arms(theta, top_arm_loss_db, bottom_arm_loss_db),
            product(matrix(coupler(wl, wl0, delta_in)), arms(phi, top_in_loss_db, bottom_in_loss_db)),
        ),
    )
    return {
        ("o2", "o3"): t[0][0],
        ("o1", "o3"): t[0][1],
        ("o2", "o4"): t[1][0],
        ("o1", "o4"): t[1][1],
        ("o3", "o2"): t[0][0],
        ("o3", "o1"): t[0][1],
        ("o4", "o2"): t[1][0],
        ("o4", "o1"): t[1][1],
    }


@functools.cache
def mzi_circuit():
    """The SAX circuit of :func:`mzi_netlist` (cached): the same MZI composed by SAX's solver."""
    circuit, _ = sax.circuit(mzi_netlist(), MODELS, backend="klu")
    return circuit


MODELS: dict = {
    "mzi": mzi,
    "coupler": coupler,
    "mmi2x2": mmi2x2,
    "waveguide": waveguide,
    "phase_shifter": phase_shifter,
    "thermo_optic_phase_shifter": thermo_optic_phase_shifter,
    "grating_tap": grating_tap,
    "grating_coupler": grating_coupler,
}
"""Name → model, as a SAX ``models`` mapping."""
