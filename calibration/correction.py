"""Error correction: heater phases that realize a target unitary on a calibrated chip despite its errors.

Local MZI correction (each MZI re-solved for its couplers' δ, phase errors carried forward to γ), then an
optional gradient polish of the whole calibrated model (L-BFGS on JAX). Used through
:meth:`tapmesh.calibration.Calibration.correct`; the method is described in docs/calibration.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.errors import CalibrationError

if TYPE_CHECKING:
    from tapmesh.calibration.calibration import Calibration

TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class Correction:
    """Result of :meth:`Calibration.correct`: voltages realizing a target, and the fidelities predicted by
    the calibrated model for the corrected and the uncorrected (plain decomposition) settings."""

    voltages: np.ndarray
    phases: np.ndarray
    fidelity: float
    fidelity_uncorrected: float
    fidelity_local: float


def local_correction(cal: Calibration, u) -> np.ndarray:
    """Phases realizing ``u`` on the calibrated chip by local MZI correction (Bandyopadhyay, Hamerly &
    Englund 2021): each MZI's internal phase is re-solved so its splitting matches the ideal one despite
    its couplers' δ, its external phase absorbs the phase error arriving at its inputs, and the phase
    error it leaves on its outputs is carried forward to later MZIs and finally to the output phases γ."""
    ideal = circuits.decompose(cal.topology, u)
    theta = np.asarray(ideal.theta, dtype=float).copy()
    phi = np.asarray(ideal.phi, dtype=float).copy()
    gamma = np.asarray(ideal.gamma, dtype=float).copy()
    debt = np.zeros(cal.topology.n)
    quarter = np.pi / 4
    for k, (_, top) in enumerate(cal.topology.mzis):
        k1, k2 = quarter + cal.delta[k, 0], quarter + cal.delta[k, 1]
        m0 = _mzi_core(theta[k], quarter, quarter)
        c_val = np.cos(k1) ** 2 * np.cos(k2) ** 2 + np.sin(k1) ** 2 * np.sin(k2) ** 2
        d_val = 2 * np.cos(k1) * np.cos(k2) * np.sin(k1) * np.sin(k2)
        target = np.sin(theta[k] / 2) ** 2
        cos_t = np.clip((c_val - target) / d_val, -1.0, 1.0)
        wrapped = np.angle(np.exp(1j * theta[k]))
        new_theta = math.copysign(float(np.arccos(cos_t)), wrapped if wrapped != 0 else 1.0)
        m1 = _mzi_core(new_theta, k1, k2)
        a, b = debt[top], debt[top + 1]
        c = b + np.angle(m1[0, 1]) - np.angle(m0[0, 1]) if abs(m0[0, 1]) > 1e-9 else None
        d = b + np.angle(m1[1, 1]) - np.angle(m0[1, 1]) if abs(m0[1, 1]) > 1e-9 else None
        # column 0 gives φ' from whichever entry is larger
        if abs(m0[0, 0]) >= abs(m0[1, 0]):
            if c is None:
                c = a + phi[k] + np.angle(m1[0, 0]) - np.angle(m0[0, 0])  # φ' = φ (free choice)
                new_phi = phi[k]
            else:
                new_phi = phi[k] + c - a + np.angle(m0[0, 0]) - np.angle(m1[0, 0])
            if d is None:
                d = new_phi + a - phi[k] + np.angle(m1[1, 0]) - np.angle(m0[1, 0])
        else:
            if d is None:
                d = a + phi[k] + np.angle(m1[1, 0]) - np.angle(m0[1, 0])
                new_phi = phi[k]
            else:
                new_phi = phi[k] + d - a + np.angle(m0[1, 0]) - np.angle(m1[1, 0])
            if c is None:
                c = new_phi + a - phi[k] + np.angle(m1[0, 0]) - np.angle(m0[0, 0])
        theta[k], phi[k] = new_theta, new_phi
        debt[top], debt[top + 1] = c, d
    gamma = gamma - debt
    return np.mod(np.concatenate([theta, phi, gamma]), TWO_PI)


@functools.cache
def _infidelity_value_and_grad():
    """``(1 − F, ∂/∂phases)`` of the calibrated model against a target, jitted once (the topology static,
    everything else an argument), so that every target and chip of a size reuses one compiled function."""
    import jax
    import jax.numpy as jnp

    def loss(p, topology, base, target, free, fixed):
        p = jnp.where(free, p, fixed)
        return 1.0 - circuits.fidelity(target, circuits.unitary(topology, base.with_phases(p)))

    return jax.jit(jax.value_and_grad(loss), static_argnums=1)


def polish(cal: Calibration, u, phases, max_iterations: int = 300) -> np.ndarray:
    """Gradient polish: maximize the fidelity of the calibrated model's transfer matrix to ``u`` over all
    phases, from ``phases`` (L-BFGS on the JAX model)."""
    import jax.numpy as jnp
    from scipy.optimize import minimize

    u = np.asarray(u, dtype=np.complex128)
    base = cal.mesh_params(np.asarray(phases, dtype=float))
    target = jnp.asarray(u)
    dead = np.zeros(cal.n_heaters, dtype=bool)
    dead[list(cal.dead_heaters)] = True
    free = jnp.asarray(~dead)
    fixed = jnp.asarray(np.asarray(phases, dtype=float))
    value_and_grad = _infidelity_value_and_grad()

    def fun(p):
        value, grad = value_and_grad(jnp.asarray(p), cal.topology, base, target, free, fixed)
        return float(value), np.asarray(grad, dtype=float)

    result = minimize(fun, np.asarray(phases, dtype=float), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iterations, "ftol": 1e-15, "gtol": 1e-12})
    p = np.where(dead, phases, result.x)
    return np.mod(p, TWO_PI)


def correct(cal: Calibration, u, polish: bool = True, max_iterations: int = 300) -> Correction:
    """Error-corrected settings for the target unitary ``u``: local correction, then (``polish``) the
    gradient polish. Reports the model-predicted fidelity with and without correction."""
    u = circuits.check_unitary(u, tolerance=1e-6)
    if u.shape[0] != cal.topology.n:
        raise CalibrationError(f"target is {u.shape[0]}x{u.shape[0]}, the chip has {cal.topology.n} modes")
    ideal = np.asarray(circuits.decompose(cal.topology, u).phases, dtype=float)
    local = cal.local_correction(u)
    phases = cal.polish(u, local, max_iterations) if polish else local
    f_model = lambda p: float(circuits.fidelity(u, cal.unitary(p)))  # noqa: E731
    return Correction(
        voltages=cal.voltages_for_phases(phases),
        phases=phases,
        fidelity=f_model(phases),
        fidelity_uncorrected=f_model(ideal),
        fidelity_local=f_model(local),
    )


def _mzi_core(theta: float, k1: float, k2: float) -> np.ndarray:
    """B(κ2)·diag(e^{iθ}, 1)·B(κ1): an MZI without its external phase."""
    def b(k):
        return np.array([[np.cos(k), 1j * np.sin(k)], [1j * np.sin(k), np.cos(k)]])

    return b(k2) @ np.diag([np.exp(1j * theta), 1.0]) @ b(k1)
