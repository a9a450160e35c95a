"""The least-squares fit of one progressive stage: all MZIs of a column on their local model at once.

Pads the stage's frames to one shape (one compilation per mesh size), starts the channel efficiencies in
closed form and unfitted phases from a scan, solves with the batched Levenberg–Marquardt of
:mod:`tapmesh.calibration.stage_model` and keeps each MZI's ``(JᵀJ)⁻¹`` uncertainties. The model and the
parameters are set out in docs/calibration.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tapmesh.calibration.stage_model import N_PARAMS, TWO_PI, batched_levenberg_marquardt, stage_functions

if TYPE_CHECKING:
    from tapmesh.calibration.progressive import Progressive


def fit_stage(stage: Progressive, c, members, tops, channels, volts, fields, taps, lit, group_frame, prev,
              measured=frozenset(), final=True) -> None:
    """The stage's least squares: every MZI of column ``c`` fitted on :func:`~tapmesh.calibration.stage_model.mzi_readings`
    to the stage's frames (``volts``, the ``fields`` that arrived, the ``taps`` read), all MZIs at once; writes
    φ0, α, δ, efficiencies, crosstalk and 1σ into ``stage`` and its calibration."""
    import jax.numpy as jnp

    model, res, jac = stage_functions()
    cal, k_all, m_max = stage.cal, stage.k_all, stage.m_max
    # the most (averaged) frames a stage takes: one shape for every stage
    f = 3 * stage.s + 6 + ((stage.s + 2 * stage.s_moved) if stage.fit_xt else 0)
    pad = f - len(volts)
    volts = np.concatenate([volts, np.zeros((pad, volts.shape[1]))])
    fields = np.concatenate([fields, np.zeros((pad, fields.shape[1]), dtype=fields.dtype)])
    taps = np.concatenate([taps, np.zeros((pad, taps.shape[1]))])
    lit = np.concatenate([lit, np.zeros((pad, lit.shape[1]), dtype=bool)])
    group_frame = np.concatenate([group_frame, np.zeros(pad, dtype=bool)])
    t = np.asarray(cal.tap_fraction)
    p0 = np.zeros((m_max, N_PARAMS))
    alive = np.zeros((m_max, 2))
    v2 = np.zeros((m_max, f, 3))
    arrival = np.zeros((m_max, f, 2), dtype=np.complex128)
    keep = np.ones((m_max, 4))
    segment_keep = cal.segment_keep()
    meas = np.zeros((m_max, f, 3))
    mask = np.zeros((m_max, f, 3), dtype=bool)
    movable = np.zeros((m_max, N_PARAMS))
    for j, k in enumerate(members):
        phi_h, m = k_all + k, tops[j]
        alive[j] = [phi_h not in stage.dead, k not in stage.dead]
        v2[j, :, 0] = volts[:, phi_h] ** 2 * alive[j, 0]
        v2[j, :, 1] = volts[:, k] ** 2 * alive[j, 1]
        has_prev = prev[j] >= 0 and prev[j] not in stage.dead
        if has_prev:
            v2[j, :, 2] = volts[:, prev[j]] ** 2
        arrival[j, :, 0], arrival[j, :, 1] = fields[:, m], fields[:, m + 1]
        keep[j] = segment_keep[k]
        alpha_start = lambda i: cal.alpha[i] if cal.alpha[i] > 0 else stage.alpha_guess[i]  # noqa: E731
        p0[j, :6] = [cal.phase_offsets[phi_h], np.log(alpha_start(phi_h)), cal.phase_offsets[k],
                     np.log(alpha_start(k)), cal.delta[k, 0], cal.delta[k, 1]]
        p0[j, 9:12] = [stage.xt.get((phi_h, k), 0.0), stage.xt.get((phi_h, int(prev[j])), 0.0),
                       stage.xt.get((k, phi_h), 0.0)]
        p0[j, 12:14] = cal.beta[[phi_h, k]]
        if stage.usable[0, k]:
            meas[j, :, 0] = taps[:, k]
            mask[j, :, 0] = lit[:, j]
        for o in (0, 1):
            tap = channels[j, o]
            if tap >= 0:
                # a φ tap or an output tap sees this output alone in every frame; a θ tap downstream
                # mixes it with a neighbour's output except in the frames of one group
                pure = tap >= k_all
                meas[j, :, 1 + o] = taps[:, tap]
                mask[j, :, 1 + o] = lit[:, j] & (group_frame | pure)
        both = alive[j, 0] * alive[j, 1] * stage.fit_xt
        movable[j] = [1, alive[j, 0], 1, alive[j, 1], 1, 1, mask[j, :, 0].any(), mask[j, :, 1].any(),
                      mask[j, :, 2].any(), both, alive[j, 0] * has_prev * stage.fit_xt, both,
                      alive[j, 0] * stage.fit_beta, alive[j, 1] * stage.fit_beta]
    scale = float(np.mean(t) * stage.power)
    args = [jnp.asarray(a) for a in (alive, v2, arrival, keep, meas, mask)]

    def predict(p):
        return np.asarray(model(jnp.asarray(p), args[0], args[1], args[2], args[3]))

    def fun(p):
        return np.asarray(res(jnp.asarray(p), *args, scale))

    def jacobian(p):
        return np.asarray(jac(jnp.asarray(p), *args, scale))

    # channel efficiencies enter linearly: closed form at the starting point
    unit = predict(p0)
    num = np.sum(np.where(mask, unit * meas, 0.0), axis=1)
    den = np.sum(np.where(mask, unit**2, 0.0), axis=1)
    p0[:, 6:9] = np.log(np.clip(np.where(den > 0, num / np.maximum(den, 1e-300), 1.0), 1e-6, None))
    # heaters without a usable first fit (or dead ones, whose phase is a constant): scan φ0 / θ0
    for j, k in enumerate(members):
        for col, heater in ((0, k_all + k), (2, k)):
            if heater in stage.unfitted or heater in stage.dead:
                trial = np.linspace(0, TWO_PI, 12, endpoint=False)
                costs = []
                for value in trial:
                    p = p0.copy()
                    p[j, col] = value
                    costs.append(np.sum(fun(p)[j] ** 2))
                p0[j, col] = trial[int(np.argmin(costs))]
    var_scale = np.array([0.05, 0.01, 0.05, 0.01, 0.01, 0.01, 0.02, 0.02, 0.02, 0.005, 0.005, 0.005, 0.001, 0.001])
    p, jm, r = batched_levenberg_marquardt(fun, jacobian, p0, movable, var_scale)
    if stage.fit_beta:
        # a cubic term the data do not resolve (|β| < 3σ) is noise that trades against α and φ0: such
        # heaters are fitted again with β = 0 (the refinement then holds it there)
        weak = np.zeros((len(p), 2), dtype=bool)
        for j in range(len(members)):
            free = movable[j] > 0
            jj = jm[j][:, free]
            cov = np.linalg.pinv(jj.T @ jj, rcond=1e-12, hermitian=True) * float(np.sum(r[j] ** 2)) \
                / max(int(mask[j].sum()) - int(free.sum()), 1)
            sig = np.full(N_PARAMS, np.inf)
            sig[free] = np.sqrt(np.clip(np.diag(cov), 0, None))
            weak[j] = (np.abs(p[j, 12:14]) < 3 * sig[12:14]) & (movable[j, 12:14] > 0)
        if weak.any():
            p[:, 12:14] = np.where(weak, 0.0, p[:, 12:14])
            movable[:, 12:14] *= ~weak
            p, jm, r = batched_levenberg_marquardt(fun, jacobian, p, movable, var_scale)
    for j, k in enumerate(members):
        phi_h = k_all + k
        cal.phase_offsets[[phi_h, k]] = np.mod(p[j, [0, 2]], TWO_PI)
        cal.alpha[phi_h] = np.exp(p[j, 1]) if alive[j, 0] else 0.0
        cal.alpha[k] = np.exp(p[j, 3]) if alive[j, 1] else 0.0
        cal.beta[[phi_h, k]] = p[j, 12:14] * alive[j]
        cal.delta[k] = np.clip(p[j, 4:6], -stage.max_delta, stage.max_delta)
        if movable[j, 6]:
            stage.efficiency[k] = np.exp(p[j, 6])
        # uncertainties from this MZI's own problem
        keep = movable[j] > 0
        jj = jm[j][:, keep]
        rows = int(mask[j].sum())
        dof = max(rows - int(keep.sum()), 1)
        s2 = float(np.sum(r[j] ** 2) / dof) * scale**2
        cov = s2 * np.linalg.pinv(jj.T @ jj * scale**2, rcond=1e-12, hermitian=True)
        sig = np.full(N_PARAMS, np.nan)
        sig[keep] = np.sqrt(np.clip(np.diag(cov), 0, None))
        stage.sigma["phase_offsets"][[phi_h, k]] = sig[[0, 2]]
        stage.sigma["alpha"][[phi_h, k]] = [cal.alpha[phi_h] * sig[1], cal.alpha[k] * sig[3]]
        stage.sigma["delta"][k] = sig[4:6]
        if final:
            stage.residuals.append(r[j][mask[j].ravel()])
        if stage.fit_xt:
            found = [((phi_h, k), 9), ((k, phi_h), 11)]
            if movable[j, 10]:
                found.append(((phi_h, int(prev[j])), 10))
                if (int(prev[j]), phi_h) not in measured:
                    # the reverse pair (θ' ← φ) not measured by (1d): taken equal (thermal reciprocity)
                    found.append(((int(prev[j]), phi_h), 10))
            for pair, col in found:
                if movable[j, col]:
                    stage.xt[pair] = float(p[j, col])
                    stage.xt_sigma[pair] = float(sig[col])
    if stage.fit_xt and stage.xt:
        stage.publish_crosstalk()
