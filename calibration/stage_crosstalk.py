"""The reverse crosstalk pairs of a progressive stage: X(θ'←φ), the φ of column c warming the θ' beside it.

The θ' of column c−1 are held at mid-fringe, light enters the top input of every MZI of column c−1 only,
and the φ of column c are swept; each pair's X comes from a small fit on the one-MZI model of column c−1.
Why this is needed (reciprocity alone left the largest error at depth) is in docs/calibration.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tapmesh.calibration.stage_model import N_PARAMS, stage_functions

if TYPE_CHECKING:
    from tapmesh.calibration.progressive import Progressive


def pinv_finite(matrices: np.ndarray) -> np.ndarray:
    """Pseudo-inverses of a batch (..., m, m); a matrix holding a nan or inf (a dark pair's) gives all-nan.

    LAPACK's batched SVD does not return nan for such a matrix: ``np.linalg.pinv`` raises LinAlgError for the
    whole batch, so only the finite ones are inverted."""
    matrices = np.asarray(matrices, dtype=float)
    finite = np.all(np.isfinite(matrices), axis=(-2, -1))
    inverse = np.full(matrices.shape[:-2] + matrices.shape[-1:] + matrices.shape[-2:-1], np.nan)
    if np.any(finite):
        inverse[finite] = np.linalg.pinv(matrices[finite])
    return inverse


def reverse_pairs(stage: Progressive, c: int, members, prev) -> set:
    """(1d): X(θ'←φ), the φ of column c warming the θ' of column c−1 beside it. Every θ' of column
    c−1 is set to mid-fringe (θ' = π/2 mod π, from its stage's fit), every MZI of column c−1 gets light
    on its top input only (through the prefix before column c−1), and the φ of column c are swept
    (``s/2`` settings). The bottom output of the MZI of θ' is the top input of the φ's own MZI, read
    alone at that φ's tap, and at mid-fringe it moves with θ' to first order: the heat of φ shows
    directly, whatever φ itself does (its phase does not change a power). Per pair, on the one-MZI
    model of column c−1 (φ' is irrelevant with one input lit), the reading is η·P(θ0' + αθ'(Pθ' +
    X Pφ)); Gauss–Newton on X with the efficiency η solved in closed form (it absorbs the injected
    power and the grating's gain). Stored in ``stage.xt``; returns the pairs measured."""
    cal, top, k_all, n = stage.cal, stage.top, stage.k_all, stage.n
    sel = [j for j in range(len(members))
           if prev[j] >= 0 and int(prev[j]) not in stage.dead and k_all + members[j] not in stage.dead
           and cal.alpha[int(prev[j])] > 0 and stage.usable[0, k_all + members[j]]]
    if not sel:
        return set()
    recv = np.array([int(prev[j]) for j in sel])  # θ' of column c−1 (its MZI index)
    src = np.array([k_all + members[j] for j in sel])  # φ of column c: its tap reads θ''s bottom output
    before = [k for k in stage.top.columns[c - 1] if k not in stage.dead and cal.alpha[k] > 0]
    v_mid = stage.base_v.copy()
    v_mid[before] = stage.volts_for(before, np.pi / 2, period=np.pi)
    f = np.zeros(n, dtype=np.complex128)
    amp = np.sqrt(stage.power)
    tops_before = np.array([top.mzis[k][1] for k in top.columns[c - 1]])
    f[tops_before] = amp
    x = stage.deliver(np.repeat(f[None], stage.r, axis=0), prefix=stage.w_prev)  # at column c−1's inputs
    phi_all = np.array([k_all + k for k in members if k_all + k not in stage.dead])
    sweep_v = stage.sweep_v[::2]
    readings = []
    for vs in sweep_v:
        v = v_mid.copy()
        v[phi_all] = vs
        readings.append(stage.mean_taps(v, x)[src])
    readings = np.asarray(readings).T  # (M, S)
    heat = sweep_v[None, :] ** 2 * np.ones((len(sel), 1))  # (M, S) power of the swept φ
    # the one-MZI model of column c−1 at its stage's parameters, batched and padded to one shape
    model = stage_functions()[0]
    import jax.numpy as jnp

    m_max, s = stage.m_max, len(sweep_v)
    p = np.zeros((m_max, N_PARAMS))
    alive = np.zeros((m_max, 2))
    base = np.zeros((m_max, s, 3))
    arrival = np.zeros((m_max, s, 2), dtype=np.complex128)
    keep = np.ones((m_max, 4))
    segment_keep = cal.segment_keep()
    for i, k in enumerate(recv):
        phi_h = k_all + k
        alive[i] = [phi_h not in stage.dead and cal.alpha[phi_h] > 0, 1.0]
        p[i, :6] = [cal.phase_offsets[phi_h], np.log(max(cal.alpha[phi_h], 1e-9)), cal.phase_offsets[k],
                    np.log(cal.alpha[k]), cal.delta[k, 0], cal.delta[k, 1]]
        p[i, 12:14] = cal.beta[[phi_h, k]]
        base[i, :, 1] = v_mid[k] ** 2
        arrival[i, :, 0] = amp
        keep[i] = segment_keep[k]
    # the other X of that MZI act on heaters at fixed power here: φ' at 0 V, θ'' at its base
    args = [jnp.asarray(a) for a in (alive, arrival, keep)]

    def bottom(xv):
        v2 = base.copy()
        v2[: len(sel), :, 1] += xv[:, None] * heat
        return np.asarray(model(jnp.asarray(p), args[0], jnp.asarray(v2), args[1], args[2]))[: len(sel), :, 1]

    xv = np.array([stage.xt.get((int(r), int(q)), 0.0) for r, q in zip(recv, src)])
    step = 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):  # a pair without light ends as nan
        for _ in range(4):
            g0 = bottom(xv)
            dg = (bottom(xv + step) - g0) / step
            # readings ≈ η g0 + (η ΔX) dg: linear least squares in (η, η ΔX), per pair
            a = np.stack([g0, dg], axis=2)  # (M, S, 2)
            ata = np.einsum("msi,msj->mij", a, a) + 1e-300 * np.eye(2)
            sol = np.linalg.solve(ata, np.einsum("msi,ms->mi", a, readings)[..., None])[..., 0]
            xv = xv + sol[:, 1] / sol[:, 0]
        g0 = bottom(xv)
        eta = np.sum(g0 * readings, axis=1) / np.sum(g0 * g0, axis=1)
        resid = readings - eta[:, None] * g0
        dof = max(s - 2, 1)
        cov = pinv_finite(ata) * (np.sum(resid**2, axis=1) / dof)[:, None, None]
        sigma = np.sqrt(np.clip(cov[:, 1, 1], 0, None)) / np.abs(eta)
    measured = set()
    for r, q, value, sig in zip(recv, src, xv, sigma):
        if not (np.isfinite(value) and np.isfinite(sig)):
            continue  # left to reciprocity in the stage's fit
        pair = (int(r), int(q))
        stage.xt[pair] = float(value)
        stage.xt_sigma[pair] = float(sig)
        measured.add(pair)
    stage.publish_crosstalk()
    return measured
