"""The local model of one progressive stage: an MZI fed with a known field, and its batched least squares.

:func:`mzi_readings` predicts one MZI's three reading channels (its θ tap, its two outputs) from its
parameters and heater powers (crosstalk included); :func:`stage_functions` jits and vmaps it with its
residual and Jacobian; :func:`batched_levenberg_marquardt` solves the column's small problems together.
The derivation is in docs/calibration.md (the progressive method).
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2 * np.pi
N_PARAMS = 14
"""Per MZI: φ0, log αφ, θ0, log αθ, δ1, δ2, log η (own θ tap), log η (bottom output), log η (top output),
X(φ←θ) of its own heaters, X(φ←θ') from the θ' of the previous column that feeds its top input,
X(θ←φ) of its own heaters, βφ, βθ (rad/V³, the heater law's cubic term)."""


def mzi_readings(p, alive, v2, arrival, keep):
    """Model readings (F, 3) of one MZI: its θ tap, its bottom and top output powers, each times its
    channel efficiency. ``v2`` (F, 3) heater powers (φ, θ, and the θ' of the previous column next to
    this φ; 0 for a dead heater); ``arrival`` (F, 2) complex input field (top, bottom); ``keep`` (4,)
    nominal amplitude transmission of the top input (φ), bottom input, top arm (θ) and bottom arm, taps
    included (:meth:`~tapmesh.calibration.Calibration.segment_keep`); ``alive`` (2,) 0 for a dead heater. Thermal
    crosstalk: φ = φ0 + αφ (Pφ + X₉ Pθ + X₁₀ Pθ') + β₁₂ Vφ³, θ = θ0 + αθ (Pθ + X₁₁ Pφ) + β₁₃ Vθ³."""
    import jax.numpy as jnp

    v3_phi, v3_theta = v2[:, 0] * jnp.sqrt(v2[:, 0]), v2[:, 1] * jnp.sqrt(v2[:, 1])
    phi = p[0] + alive[0] * (jnp.exp(p[1]) * (v2[:, 0] + p[9] * v2[:, 1] + p[10] * v2[:, 2]) + p[12] * v3_phi)
    theta = p[2] + alive[1] * (jnp.exp(p[3]) * (v2[:, 1] + p[11] * v2[:, 0]) + p[13] * v3_theta)
    k1, k2 = np.pi / 4 + p[4], np.pi / 4 + p[5]
    c1, s1, c2, s2 = jnp.cos(k1), jnp.sin(k1), jnp.cos(k2), jnp.sin(k2)
    a = arrival[:, 0] * jnp.exp(1j * phi) * keep[0]
    b = arrival[:, 1] * keep[1]
    arm_t = c1 * a + 1j * s1 * b
    arm_b = (1j * s1 * a + c1 * b) * keep[3]
    arm_t2 = arm_t * jnp.exp(1j * theta) * keep[2]
    out_t = c2 * arm_t2 + 1j * s2 * arm_b
    out_b = 1j * s2 * arm_t2 + c2 * arm_b
    power = jnp.stack([jnp.abs(arm_t) ** 2, jnp.abs(out_b) ** 2, jnp.abs(out_t) ** 2], axis=1)
    return jnp.exp(p[6:9])[None, :] * power


_COMPILED: dict = {}


def stage_functions():
    """Jitted batched model, residual and Jacobian (shapes fixed by the caller; compiled per shape)."""
    if "fns" in _COMPILED:
        return _COMPILED["fns"]
    import jax
    import jax.numpy as jnp

    def residual(p, alive, v2, arrival, keep, meas, mask, scale):
        return (jnp.where(mask, mzi_readings(p, alive, v2, arrival, keep) - meas, 0.0) / scale).ravel()

    model = jax.jit(jax.vmap(mzi_readings))
    res = jax.jit(jax.vmap(residual, in_axes=(0, 0, 0, 0, 0, 0, 0, None)))
    jac = jax.jit(jax.vmap(jax.jacfwd(residual), in_axes=(0, 0, 0, 0, 0, 0, 0, None)))
    _COMPILED["fns"] = (model, res, jac)
    return _COMPILED["fns"]


def batched_levenberg_marquardt(fun, jac, p0, movable, scale, iterations: int = 30):
    """Levenberg–Marquardt on M independent small problems at once. ``fun(p)`` (M, R) residuals,
    ``jac(p)`` (M, R, P); ``movable`` (M, P) which parameters are free; ``scale`` (P,) variable scales.
    Returns the parameters (M, P), the last Jacobian and the residuals."""
    p = np.array(p0, dtype=float)
    r = fun(p)
    cost = np.sum(r**2, axis=1)
    lam = np.full(p.shape[0], 1e-3)
    j = jac(p) * movable[:, None, :]
    eye = np.eye(p.shape[1])
    for _ in range(iterations):
        js = j * scale[None, None, :]
        a = np.einsum("mri,mrj->mij", js, js)
        g = np.einsum("mri,mr->mi", js, r)
        diag = np.maximum(np.diagonal(a, axis1=1, axis2=2), 1e-12)
        step = -np.linalg.solve(a + lam[:, None, None] * diag[:, :, None] * eye + 1e-12 * eye, g[..., None])[..., 0]
        step *= scale[None, :] * movable
        trial = p + step
        r_trial = fun(trial)
        c_trial = np.sum(r_trial**2, axis=1)
        ok = np.isfinite(c_trial) & (c_trial < cost)
        if not ok.any() and np.all(lam > 1e6):
            break
        p = np.where(ok[:, None], trial, p)
        r = np.where(ok[:, None], r_trial, r)
        cost = np.where(ok, c_trial, cost)
        lam = np.where(ok, np.maximum(lam / 4, 1e-9), lam * 8)
        if ok.any():
            j = jac(p) * movable[:, None, :]
    return p, j, r
