"""Global refinement: nonlinear least squares of every calibration parameter on the differentiable model.

Used by :func:`tapmesh.calibration.calibrate`; talks to the chip only through the procedure's bench wrapper.
Small problems use a dense Jacobian (``jax.jacfwd``) and give 1σ uncertainties from ``(JᵀJ)⁻¹``; large
ones a matrix-free Jacobian (JVP/VJP as a ``LinearOperator``, LSMR trust-region steps) without uncertainties.
The model, the prior from the progressive stages and the measured limits: docs/calibration.md.
"""

from __future__ import annotations

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.crosstalk import Crosstalk, neighbour_pairs

TWO_PI = 2 * np.pi
DENSE_LIMIT = 3e7
"""Largest Jacobian (rows × columns) built densely."""


def refine(
    bench,
    cal: Calibration,
    rng: np.random.Generator,
    settings: int | None,
    batch: int,
    max_voltage: float,
    fit_crosstalk: bool,
    fit_couplers: bool,
    fit_beta: bool | np.ndarray,
    usable: np.ndarray,
    unswept: np.ndarray,
    max_parameters: int,
    power_mw: float,
    prior: dict | None = None,
    pairs: np.ndarray | None = None,
) -> dict:
    """Refine ``cal`` in place on fresh random settings; returns uncertainties, residuals and notes.

    ``prior``: 1σ uncertainties of the estimates already in ``cal`` (``"phase_offsets"``, ``"alpha"``,
    ``"delta"``, arrays shaped like them; NaN where there is none). Each estimate with a finite σ then
    enters the fit as a Gaussian prior centred on it (the refinement's data alone pin the phase offsets
    less well than the progressive stages' targeted readings did). The data are fitted alone first, to
    learn their noise level, which then weights the prior (:func:`_with_prior`). ``pairs``: the (P, 2)
    (receiver, source) crosstalk pairs to fit (default :func:`neighbour_pairs` of the mesh). ``fit_beta``: fit
    the cubic term of every live heater (``True``), of the heaters of a (h,) mask, or of none; the others keep
    ``cal.beta``."""
    import jax
    import jax.numpy as jnp
    from scipy.optimize import least_squares
    from scipy.sparse.linalg import LinearOperator

    top = cal.topology
    n, h, k_all = top.n, top.n_shifters, top.n_mzis
    notes: list[str] = []
    dead = np.zeros(h, dtype=bool)
    dead[list(cal.dead_heaters)] = True
    alive = ~dead
    beta_idx = np.nonzero(alive & (np.full(h, bool(fit_beta)) if np.ndim(fit_beta) == 0
                                   else np.asarray(fit_beta, dtype=bool)))[0]
    pairs = (neighbour_pairs(top) if pairs is None else np.asarray(pairs, dtype=int).reshape(-1, 2)) \
        if fit_crosstalk else np.zeros((0, 2), dtype=int)
    pairs = pairs[alive[pairs[:, 1]]] if len(pairs) else pairs
    fit_eff = True
    # ------------------------------------------------------------------ parameter layout
    def count(fit_eff, pairs):
        return h + alive.sum() + (2 * k_all if fit_couplers else 0) + (usable.sum() if fit_eff else 0) \
            + len(pairs) + len(beta_idx)

    if count(fit_eff, pairs) > max_parameters and len(pairs):
        notes.append(
            f"crosstalk not fitted: {count(fit_eff, pairs)} parameters exceed max_parameters={max_parameters}"
        )
        pairs = np.zeros((0, 2), dtype=int)
    if count(fit_eff, pairs) > max_parameters:
        notes.append(
            f"refinement limited to φ0, α, δ: {count(fit_eff, pairs)} parameters exceed max_parameters="
            f"{max_parameters} (camera efficiencies kept from the sweeps)"
        )
        fit_eff = False
    n_params = count(fit_eff, pairs)
    coherent = bench.coherent
    per_setting = batch * (h + (2 * n if coherent else n)) + batch * h
    if settings is None:
        settings = int(max(8, np.ceil(12 * n_params / per_setting)))

    # ------------------------------------------------------------------ measurements
    v2 = rng.uniform(0.0, max_voltage**2, size=(settings, h))
    volts = np.sqrt(v2)
    total_power = 0.5 * n * power_mw

    def fields(shape):
        z = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        return z * np.sqrt(total_power / np.sum(np.abs(z) ** 2, axis=-1, keepdims=True))

    x_fwd, x_bwd = fields((settings, batch, n)), fields((settings, batch, n))
    m_fwd, m_bwd, m_out = [], [], []
    # all forward readings, then all backward ones: the light switches sides twice, not at every setting
    # (a switch costs ~50 settles at the default BenchCosts)
    for s in range(settings):
        fwd = bench.measure(volts[s], x_fwd[s], "input", taps="forward", coherent=coherent, outputs=not coherent)
        m_fwd.append(fwd["taps"] - cal.tap_offset[0])
        m_out.append(fwd["coherent"] if coherent else fwd["outputs"])
    for s in range(settings):
        m_bwd.append(bench.measure(volts[s], x_bwd[s], "output", taps="backward")["taps"] - cal.tap_offset[1])
    m_fwd, m_bwd, m_out = np.asarray(m_fwd), np.asarray(m_bwd), np.asarray(m_out)
    tap_scale = cal.tap_fraction.mean() * total_power / n
    out_scale = np.sqrt(total_power / n) if coherent else total_power / n
    use_f = jnp.asarray(usable[0])
    use_b = jnp.asarray(usable[1])

    # ------------------------------------------------------------------ model
    power_v = jnp.asarray(np.where(alive, v2, 0.0))
    cube_v = jnp.asarray(np.where(alive, volts**3, 0.0))
    delta0 = jnp.asarray(cal.delta)
    # losses are not fitted: the nominal ones (zero, or a balanced-tap design's dummy taps)
    nominal_loss = jnp.asarray(cal.loss_db)
    nominal_out = jnp.asarray(cal.output_loss_db)
    nominal_idle = jnp.asarray(cal.idle_loss_db)
    taps_nominal = jnp.asarray(cal.tap_fraction)
    alive_idx = np.nonzero(alive)[0]
    usable_idx = np.nonzero(usable.ravel())[0]
    rows, cols = jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1])

    sizes = {
        "phi0": h,
        "log_alpha": len(alive_idx),
        "delta": 2 * k_all if fit_couplers else 0,
        "log_eff": len(usable_idx) if fit_eff else 0,
        "crosstalk": len(pairs),
        "beta": len(beta_idx),
    }
    offsets_idx = np.cumsum([0] + list(sizes.values()))
    slices = {name: slice(offsets_idx[i], offsets_idx[i + 1]) for i, name in enumerate(sizes)}

    def unpack(p):
        phi0 = p[slices["phi0"]]
        alpha = jnp.zeros(h).at[alive_idx].set(jnp.exp(p[slices["log_alpha"]]))
        delta = p[slices["delta"]].reshape(k_all, 2) if fit_couplers else delta0
        if fit_eff:
            eff = jnp.asarray(cal.tap_efficiency).ravel().at[usable_idx].set(jnp.exp(p[slices["log_eff"]]))
            eff = eff.reshape(2, h)
        else:
            eff = jnp.asarray(cal.tap_efficiency)
        xt = p[slices["crosstalk"]]
        beta = jnp.asarray(cal.beta).at[beta_idx].set(p[slices["beta"]])
        return phi0, alpha, delta, eff, xt, beta

    def predict(p):
        phi0, alpha, delta, eff, xt, beta = unpack(p)
        leak = jnp.zeros_like(power_v)
        if len(pairs):
            leak = leak.at[:, rows].add(xt[None, :] * power_v[:, cols])
        phases = phi0 + alpha * (power_v + leak) + beta * cube_v  # (R, h)

        def one(ph, xf, xb):
            params = circuits.MeshParams(ph[:k_all], ph[k_all : 2 * k_all], ph[2 * k_all :], delta,
                                         nominal_loss, nominal_out, taps_nominal, nominal_idle)
            y, pf = circuits.propagate(top, params, xf, taps="power")
            _, pb = circuits.propagate(top, params, xb, taps="power", direction="backward")
            return y, pf, pb

        y, pf, pb = jax.vmap(one)(phases, jnp.asarray(x_fwd), jnp.asarray(x_bwd))
        return y, eff[0] * pf, eff[1] * pb

    def residual(p):
        y, pf, pb = predict(p)
        rf = jnp.where(use_f, (pf - m_fwd) / tap_scale, 0.0)
        rb = jnp.where(use_b, (pb - m_bwd) / tap_scale, 0.0)
        if coherent:
            d = (y - m_out) / out_scale
            ro = jnp.concatenate([jnp.real(d).ravel(), jnp.imag(d).ravel()])
        else:
            ro = ((jnp.abs(y) ** 2 - m_out) / out_scale).ravel()
        return jnp.concatenate([rf.ravel(), rb.ravel(), ro])

    residual_jit = jax.jit(residual)

    # ------------------------------------------------------------------ initial point
    def pack(phi0, alpha, delta, eff, xt, beta):
        parts = [phi0, np.log(np.clip(alpha[alive_idx], 1e-6, None))]
        if fit_couplers:
            parts.append(np.asarray(delta).ravel())
        if fit_eff:
            parts.append(np.log(np.clip(np.asarray(eff).ravel()[usable_idx], 1e-9, None)))
        parts.append(xt)
        parts.append(np.asarray(beta)[beta_idx])
        return np.concatenate([np.asarray(a, dtype=float) for a in parts])

    alpha0 = np.where(alive, np.where(cal.alpha > 0, cal.alpha, np.median(cal.alpha[alive])), 0.0)
    # crosstalk starts from what the stages estimated (0 where they did not)
    p0 = pack(cal.phase_offsets, alpha0, cal.delta, cal.tap_efficiency, cal.crosstalk.values_at(pairs), cal.beta)

    def cost(p):
        return float(np.sum(np.asarray(residual_jit(jnp.asarray(p))) ** 2))

    # closed-form camera efficiencies for the starting point (the readings are linear in them)
    if fit_eff:
        unit = p0.copy()
        unit[slices["log_eff"]] = 0.0
        _, pf, pb = jax.jit(predict)(jnp.asarray(unit))
        pf, pb = np.asarray(pf), np.asarray(pb)
        eff0 = np.stack([
            np.sum(pf * m_fwd, axis=(0, 1)) / np.maximum(np.sum(pf**2, axis=(0, 1)), 1e-30),
            np.sum(pb * m_bwd, axis=(0, 1)) / np.maximum(np.sum(pb**2, axis=(0, 1)), 1e-30),
        ])
        eff0 = np.clip(eff0, 1e-6, None)
        p0[slices["log_eff"]] = np.log(eff0.ravel()[usable_idx])
    # heaters without a sweep fit (dead, or read through a dark tap): scan their offset
    for i in np.nonzero(unswept)[0]:
        trial = np.linspace(0, TWO_PI, 16, endpoint=False)
        costs = []
        for value in trial:
            p = p0.copy()
            p[i] = value
            costs.append(cost(p))
        p0[i] = trial[int(np.argmin(costs))]
        notes.append(f"heater {i} had no sweep fit; its offset was started from a scan")

    # ------------------------------------------------------------------ solve
    m_rows = int(residual_jit(jnp.asarray(p0)).shape[0])
    scale = np.concatenate([
        np.full(sizes["phi0"], 0.05), np.full(sizes["log_alpha"], 0.01), np.full(sizes["delta"], 0.01),
        np.full(sizes["log_eff"], 0.02), np.full(sizes["crosstalk"], 0.005), np.full(sizes["beta"], 0.005),
    ])
    dense = m_rows * n_params <= DENSE_LIMIT
    fun = lambda p: np.asarray(residual_jit(jnp.asarray(p)), dtype=float)  # noqa: E731
    if dense:
        jac_jit = jax.jit(jax.jacfwd(residual))
        jac = lambda p: np.asarray(jac_jit(jnp.asarray(p)), dtype=float)  # noqa: E731

        def solve(fun, jac, start):
            return _levenberg_marquardt(fun, jac, start, scale)
    else:
        @jax.jit
        def jvp(p, v):
            return jax.jvp(residual, (p,), (v,))[1]

        @jax.jit
        def vjp(p, u):
            return jax.vjp(residual, p)[1](u)[0]

        def jac(p):
            pj = jnp.asarray(p)
            return LinearOperator(
                (m_rows, n_params),
                matvec=lambda v: np.asarray(jvp(pj, jnp.asarray(np.ravel(v), dtype=pj.dtype))),
                rmatvec=lambda u: np.asarray(vjp(pj, jnp.asarray(np.ravel(u), dtype=pj.dtype))),
                dtype=float,
            )

        def solve(fun, jac, start):
            return least_squares(fun, start, jac=jac, method="trf", tr_solver="lsmr", x_scale=scale, max_nfev=40,
                                 xtol=1e-10, ftol=1e-12)

    result = solve(fun, jac, p0)
    prior_index, prior_sigma = _prior_rows(prior, slices, alive_idx, cal, fit_couplers)
    if len(prior_index):
        # weighted by the data's noise level from the fit without the prior, so that both parts of the
        # cost are in units of their own σ: the result is the MAP estimate, its (JᵀJ)⁻¹ the posterior
        data = fun(result.x)
        weight = np.sqrt(np.sum(data**2) / max(m_rows - n_params, 1)) / prior_sigma
        fun_prior, jac_prior = _with_prior(fun, jac, prior_index, p0[prior_index], weight, n_params)
        result = solve(fun_prior, jac_prior, result.x)
        notes.append(f"refine: the stages' estimates of {len(prior_index)} parameters entered as a prior")
    p = result.x
    phi0, alpha, delta, eff, xt, beta = (np.asarray(a) for a in unpack(jnp.asarray(p)))
    cal.phase_offsets = np.mod(phi0, TWO_PI)
    cal.alpha = alpha
    cal.delta = np.asarray(delta)
    cal.tap_efficiency = np.asarray(eff)
    cal.beta = np.asarray(beta)
    cal.crosstalk = Crosstalk.from_pairs(h, pairs, xt)
    final = fun(p)

    # ------------------------------------------------------------------ uncertainties
    uncertainties: dict[str, np.ndarray] = {}
    if dense:
        jm = np.asarray(result.jac)  # data rows, then the prior's: a posterior covariance
        dof = max(m_rows - n_params, 1)
        s2 = float(np.sum(final**2) / dof)
        jtj = jm.T @ jm if result.jtj is None else result.jtj
        cov = s2 * np.linalg.pinv(jtj, rcond=1e-12, hermitian=True)
        sigma = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        uncertainties["phase_offsets"] = sigma[slices["phi0"]]
        a_sigma = np.full(h, np.nan)
        a_sigma[alive_idx] = cal.alpha[alive_idx] * sigma[slices["log_alpha"]]
        uncertainties["alpha"] = a_sigma
        if fit_couplers:
            uncertainties["delta"] = sigma[slices["delta"]].reshape(k_all, 2)
        if fit_eff:
            e_sigma = np.full(2 * h, np.nan)
            e_sigma[usable_idx] = cal.tap_efficiency.ravel()[usable_idx] * sigma[slices["log_eff"]]
            uncertainties["tap_efficiency"] = e_sigma.reshape(2, h)
        if len(pairs):
            uncertainties["crosstalk_pairs"] = np.column_stack([pairs, sigma[slices["crosstalk"]]])
        if len(beta_idx):
            b_sigma = np.full(h, np.nan)
            b_sigma[beta_idx] = sigma[slices["beta"]]
            uncertainties["beta"] = b_sigma
    else:
        notes.append("refinement used a matrix-free Jacobian: no uncertainties computed")
    notes.append(
        f"refine: {settings} settings, {m_rows} residuals, {n_params} parameters, {result.nfev} evaluations, "
        f"rms {np.sqrt(np.mean(final**2)):.3g} (start {np.sqrt(np.mean(fun(p0) ** 2)):.3g})"
    )
    return {"uncertainties": uncertainties, "residuals": final, "notes": notes}


def _prior_rows(prior: dict | None, slices: dict, alive_idx: np.ndarray, cal: Calibration, fit_couplers: bool):
    """Parameter indices and prior σ (in the fit's variables: φ0, log α, δ) of every estimate whose
    uncertainty in ``prior`` is finite and positive (none without a prior)."""
    index, sigma = [np.zeros(0, dtype=int)], [np.zeros(0)]
    if prior is None:
        return index[0], sigma[0]

    def add(sl, values_sigma):
        values_sigma = np.asarray(values_sigma, dtype=float).ravel()
        ok = np.isfinite(values_sigma) & (values_sigma > 0)
        index.append(np.arange(sl.start, sl.stop)[ok])
        sigma.append(values_sigma[ok])

    if "phase_offsets" in prior:
        add(slices["phi0"], prior["phase_offsets"])
    if "alpha" in prior:
        alpha = np.asarray(cal.alpha, dtype=float)[alive_idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            add(slices["log_alpha"], np.asarray(prior["alpha"], dtype=float)[alive_idx] / alpha)
    if fit_couplers and "delta" in prior:
        add(slices["delta"], prior["delta"])
    return np.concatenate(index), np.concatenate(sigma)


def _with_prior(fun, jac, index: np.ndarray, centre: np.ndarray, weight: np.ndarray, n_params: int):
    """``fun`` and ``jac`` with the prior's rows ``weight·(p[index] − centre)`` appended; ``jac`` may
    return a dense array or a ``LinearOperator``."""
    from scipy.sparse.linalg import LinearOperator

    prior_jac = np.zeros((len(index), n_params))  # constant: d(prior rows)/dp
    prior_jac[np.arange(len(index)), index] = weight

    def fun_prior(p):
        return np.concatenate([fun(p), weight * (p[index] - centre)])

    def jac_prior(p):
        j = jac(p)
        if not isinstance(j, LinearOperator):
            return np.vstack([j, prior_jac])
        m = j.shape[0]

        def rmatvec(u):
            u = np.ravel(u)
            out = np.array(j.rmatvec(u[:m]), dtype=float).ravel()
            np.add.at(out, index, weight * u[m:])
            return out

        return LinearOperator((m + len(index), n_params), dtype=float, rmatvec=rmatvec,
                              matvec=lambda v: np.concatenate([np.ravel(j.matvec(v)), weight * np.ravel(v)[index]]))

    return fun_prior, jac_prior


class _Result:
    def __init__(self, x, jac, jtj, nfev):
        self.x, self.jac, self.jtj, self.nfev = x, jac, jtj, nfev


def _levenberg_marquardt(fun, jac, p0, scale, max_iterations: int = 40, tolerance: float = 1e-12) -> _Result:
    """Levenberg–Marquardt on the normal equations (Marquardt's diagonal damping, variables scaled by
    ``scale``). Cheaper than an SVD trust region for tall dense Jacobians; returns the last JᵀJ too."""
    p = np.asarray(p0, dtype=float).copy()
    r = fun(p)
    cost = float(r @ r)
    j = jac(p)
    nfev, lam = 1, 1e-3
    for _ in range(max_iterations):
        js = j * scale[None, :]
        a = js.T @ js
        g = js.T @ r
        diag = np.maximum(np.diag(a), 1e-30)
        improved = False
        for _ in range(12):
            try:
                step = -np.linalg.solve(a + lam * np.diag(diag), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            trial = p + step * scale
            r_trial = fun(trial)
            nfev += 1
            cost_trial = float(r_trial @ r_trial)
            if np.isfinite(cost_trial) and cost_trial < cost:
                improved = True
                break
            lam *= 8
        if not improved:
            break
        decrease = (cost - cost_trial) / max(cost, 1e-300)
        p, r, cost = trial, r_trial, cost_trial
        lam = max(lam / 4, 1e-9)
        j = jac(p)
        if decrease < tolerance or np.max(np.abs(step)) < 1e-9:
            break
    jtj = j.T @ j
    return _Result(p, j, jtj, nfev)
