"""The output phases γ, read last in the progressive method through the chip's coherent output readout.

Even and odd modes are swept apart with the whole mesh at its calibrated bar state; with crosstalk, one
more setting moves the last column's θ by 2π and a linear least squares per mode gives γ0, α and the
crosstalk into γ. See docs/calibration.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tapmesh.calibration.stage_model import TWO_PI
from tapmesh.calibration.transfer import column_transfer

if TYPE_CHECKING:
    from tapmesh.calibration.progressive import Progressive


def gamma_crosstalk(stage: Progressive) -> bool:
    """γ with crosstalk: the parity sweeps of :func:`gamma_plain` plus one setting with the last
    column's θ moved by 2π, all read coherently (``repeat_frames`` frames each, averaged). Per mode,
    the phase measured against the calibrated model's field before γ (which carries the last column's
    response to the heat) is linear in the heater powers: γ0 + α (Pγ + Xθ Pθ + Xγ ΣP(γ±1)); least
    squares gives γ0, α, Xθ (its θ neighbour; the reverse pair is taken equal) and Xγ (the sum over
    both γ neighbours, split equally between them: the parity sweeps heat both alike). Twice: the
    second pass models the heat of γ on the last column with the first pass's X."""
    cal, k_all, n, top = stage.cal, stage.k_all, stage.n, stage.top
    last = top.n_columns - 1
    amp = np.sqrt(stage.power)
    f_all = np.full(n, amp, dtype=np.complex128)
    x = stage.deliver(f_all)[0]
    gam = 2 * k_all + np.arange(n)
    src = np.array([top._index_of.get((last, m), top._index_of.get((last, m - 1), -1)) for m in range(n)])
    settings = []
    for parity in (0, 1):
        for s in range(stage.s):
            v = stage.base_v.copy()
            v[gam[parity::2]] = stage.sweep_v[s]
            settings.append(v)
    settings.append(stage.moved(stage.base_v, list(top.columns[last])))
    ys = []
    for v in settings:
        try:
            ys.append(stage.bench.measure(v, np.repeat(x[None], stage.r, axis=0), "input", coherent=True)["coherent"].mean(0))
        except NotImplementedError:
            return False
    ys = np.asarray(ys)
    volts = np.asarray(settings)
    power = volts**2
    dead_g = np.zeros(n, dtype=bool)
    tap_loss = np.sqrt(1 - np.asarray(cal.tap_fraction)[gam])
    for sweep_pass in range(2):
        z = np.stack([column_transfer(cal, cal.phases_for_voltages(v), [last]) @ stage.w_prev @ x for v in volts])
        psi = np.angle(ys / (z * tap_loss))  # (S, n): γ of each mode at each setting, wrapped
        new_xt = {}
        for m in range(n):
            heater = gam[m]
            rows = slice(0, stage.s) if m % 2 == 0 else slice(stage.s, 2 * stage.s)
            phase = np.unwrap(psi[rows, m])
            design = np.stack([np.ones(stage.s), stage.sweep_x], axis=1)
            coef, *_ = np.linalg.lstsq(design, phase, rcond=None)
            if coef[1] < 0.5 * stage.alpha_guess[heater]:
                dead_g[m] = True
                stage.dead.add(int(heater))
                cal.alpha[heater] = 0.0
                cal.phase_offsets[heater] = np.mod(np.mean(phase), TWO_PI)
                continue
            # every setting, against the first guess: linear in [1, Pγ, Pθ, ΣP(γ±1)]
            nb = [g for g in (m - 1, m + 1) if 0 <= g < n]
            cols = [np.ones(len(volts)), power[:, heater]]
            cols.append(power[:, src[m]] if src[m] >= 0 else np.zeros(len(volts)))
            cols.append(power[:, gam[nb]].sum(1) * (1 - dead_g[nb].all()))
            cols.append(volts[:, heater] ** 3)  # the heater law's cubic term
            a = np.stack(cols, axis=1)
            guess = coef[0] + coef[1] * power[:, heater]
            d = np.angle(np.exp(1j * (psi[:, m] - guess)))
            keep = np.abs(a).sum(0) > 0
            keep[2] &= np.ptp(a[:, 2]) > 0
            sol, sig, resid = law_fit(a, d, keep, cubic=4)
            alpha = coef[1] + sol[1]
            cal.alpha[heater] = alpha
            cal.beta[heater] = sol[4]
            cal.phase_offsets[heater] = np.mod(coef[0] + sol[0], TWO_PI)
            stage.sigma["phase_offsets"][heater] = sig[0]
            stage.sigma["alpha"][heater] = sig[1]
            if keep[2]:
                for pair in ((heater, int(src[m])), (int(src[m]), heater)):
                    new_xt[pair] = sol[2] / alpha
                    stage.xt_sigma[pair] = sig[2] / alpha
            if keep[3]:
                for g in nb:
                    new_xt[(heater, int(gam[g]))] = sol[3] / alpha
                    stage.xt_sigma[(heater, int(gam[g]))] = sig[3] / alpha
            if sweep_pass == 1:
                stage.fits_y[heater] = phase
                stage.fits_m[heater] = design @ coef
                stage.residuals.append(resid)
        stage.xt.update(new_xt)
        stage.publish_crosstalk()
    return True


def gamma_plain(stage: Progressive) -> bool:
    """γ without crosstalk: the parity sweeps alone."""
    cal, k_all, n = stage.cal, stage.k_all, stage.n
    amp = np.sqrt(stage.power)
    f_all = np.full(n, amp, dtype=np.complex128)
    x = stage.deliver(f_all)
    design = np.stack([np.ones_like(stage.sweep_x), stage.sweep_x, stage.sweep_x**1.5], axis=1)
    for parity in (0, 1):
        modes = np.arange(parity, n, 2)
        heaters = 2 * k_all + modes
        ys = []
        for s in range(stage.s):
            v = stage.base_v.copy()
            v[heaters] = stage.sweep_v[s]
            try:
                ys.append(stage.bench.measure(v, x, "input", coherent=True)["coherent"][0])
            except NotImplementedError:
                return False
        ys = np.asarray(ys)
        tap_loss = np.sqrt(1 - np.asarray(cal.tap_fraction)[heaters])
        phase = np.unwrap(np.angle(ys[:, modes] / (f_all[modes] * tap_loss)), axis=0)
        coef, *_ = np.linalg.lstsq(design, phase, rcond=None)
        model = design @ coef
        for j, heater in enumerate(heaters):
            if coef[1, j] < 0.5 * stage.alpha_guess[heater]:
                stage.dead.add(int(heater))
                cal.alpha[heater] = 0.0
                cal.phase_offsets[heater] = np.mod(np.mean(phase[:, j]), TWO_PI)
                continue
            sol, sigma, _ = law_fit(design, phase[:, j], np.ones(3, dtype=bool), cubic=2)
            model[:, j] = design @ sol
            cal.phase_offsets[heater] = np.mod(sol[0], TWO_PI)
            cal.alpha[heater] = sol[1]
            cal.beta[heater] = sol[2]
            stage.sigma["phase_offsets"][heater] = sigma[0]
            stage.sigma["alpha"][heater] = sigma[1]
            stage.fits_y[heater] = phase[:, j]
            stage.fits_m[heater] = model[:, j]
        stage.residuals.append((phase - model).ravel())
    return True


def law_fit(a: np.ndarray, d: np.ndarray, keep: np.ndarray, cubic: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``d`` on the ``keep`` columns of ``a``: (coefficients, 1σ, residuals), 0 where not kept.

    The heater law's cubic column ``cubic`` is dropped, and the rest refitted, when the data do not resolve it
    (|β| < 3σ): an unresolved V³ term is noise that trades against α and φ0 (docs/calibration.md)."""
    keep = np.asarray(keep, dtype=bool).copy()
    while True:
        sol, sig = np.zeros(a.shape[1]), np.zeros(a.shape[1])
        sol[keep], *_ = np.linalg.lstsq(a[:, keep], d, rcond=None)
        resid = d - a @ sol
        cov = np.linalg.pinv(a[:, keep].T @ a[:, keep]) * np.sum(resid**2) / max(len(d) - int(keep.sum()), 1)
        sig[keep] = np.sqrt(np.clip(np.diag(cov), 0, None))
        if not keep[cubic] or abs(sol[cubic]) >= 3 * sig[cubic]:
            return sol, sig, resid
        keep[cubic] = False
