"""Progressive phase–voltage and coupler calibration, one column boundary at a time (forward light).

Stage c (c = 0 … C, C the number of columns) calibrates what sits between the inputs of column c−1 and
the taps of column c: the θ heaters and output couplers (δ2) of column c−1, and the φ heaters and input
couplers (δ1) of column c. Everything before column c−1 was calibrated by earlier stages, so the model
of those columns delivers any field to column c−1's inputs (the chip's ``inject`` takes any field, as a
generator mesh would make it). The last stage reads the γ taps and the coherent outputs instead.

Each stage takes three kinds of frames, all MZIs of the stage's columns at once (they share no tap):

1. a sweep of the θ heaters of column c−1 (uniform in V²), light on each MZI's top input; the φ tap of
   column c behind each MZI's bottom output reads the sin² law ``A + B cos θ`` — a first fit gives θ's φ0
   and α, and a dead heater shows no fringe;
2. a sweep of the φ heaters of column c with column c−1 at θ = π/2, so both inputs of each MZI carry
   light; its θ tap reads ``A + B sin(φ + Δ)`` with Δ from the model — a first fit for φ's φ0 and α;
3. a few frames at random voltages and random input fields.

Then a least-squares fit of the stage's parameters (φ0, α of both heater sets, δ2 of column c−1, δ1 of
column c, the camera efficiency of the stage's taps) on the differentiable model of the whole mesh
(``circuits.propagate``) to all of the stage's frames. Leakage of imperfect couplers is in the model, so
errors do not pile up with depth the way they do when light is routed through "bar" states and read
with a bare sin² law.
"""

from __future__ import annotations

import numpy as np

import circuits
from calibration.calibration import Calibration

TWO_PI = 2 * np.pi


def _stage_model(top: circuits.MeshTopology, lh: int, ld: int, lt: int, tap_fraction):
    """A jitted residual/Jacobian pair of fixed shapes, shared by every stage of a topology."""
    import jax
    import jax.numpy as jnp

    h, k_all = top.n_shifters, top.n_mzis

    def residual(free, heaters, deltas, tap_idx, base_phi0, base_alpha, base_delta, base_eff, power, x, meas,
                 tap_mask, coherent, coherent_mask, tap_scale, out_scale):
        phi0 = jnp.concatenate([base_phi0, jnp.zeros(1)]).at[heaters].set(free[:lh])[:h]
        alpha = jnp.concatenate([base_alpha, jnp.zeros(1)]).at[heaters].set(jnp.exp(free[lh : 2 * lh]))[:h]
        delta = jnp.concatenate([base_delta.ravel(), jnp.zeros(1)]).at[deltas].set(free[2 * lh : 2 * lh + ld])
        delta = delta[: 2 * k_all].reshape(k_all, 2)
        eff = jnp.concatenate([base_eff, jnp.ones(1)]).at[tap_idx].set(jnp.exp(free[2 * lh + ld :]))[:h]
        phases = phi0 + alpha * power  # (F, h)
        zl, zo, taps = jnp.zeros((k_all, 4)), jnp.zeros(top.n), jnp.asarray(tap_fraction)

        def one(ph, xf):
            params = circuits.MeshParams(ph[:k_all], ph[k_all : 2 * k_all], ph[2 * k_all :], delta, zl, zo, taps)
            y, tf = circuits.propagate(top, params, xf[None, :], taps=True)
            return y[0], jnp.abs(tf[0]) ** 2

        y, pf = jax.vmap(one)(phases, x)
        rt = jnp.where(tap_mask[None, :], eff[None, :] * pf - meas, 0.0) / tap_scale
        d = jnp.where(coherent_mask[:, None], (y - coherent) / out_scale, 0.0)
        return jnp.concatenate([rt.ravel(), jnp.real(d).ravel(), jnp.imag(d).ravel()])

    res = jax.jit(residual)
    jac = jax.jit(jax.jacfwd(residual))
    return res, jac


class Progressive:
    """Runs the stages of :mod:`calibration.progressive` against a bench (see :mod:`calibration.procedure`)."""

    def __init__(self, bench, cal: Calibration, offsets, usable, rng, sweep_points, sweep_x, alpha_guess,
                 power_mw, random_frames, visibility_threshold, max_delta):
        self.bench, self.cal, self.offsets, self.usable, self.rng = bench, cal, offsets, usable, rng
        self.top = cal.topology
        self.sweep_x, self.sweep_v = sweep_x, np.sqrt(sweep_x)
        self.s, self.alpha_guess, self.power = sweep_points, alpha_guess, power_mw
        self.r = random_frames
        self.vis_threshold, self.max_delta = visibility_threshold, max_delta
        n = self.top.n
        self.lh = n + (n // 2 + 1)
        self.ld = n + 2
        self.lt = 2 * n + 2
        self.res, self.jac = _stage_model(self.top, self.lh, self.ld, self.lt, np.asarray(cal.tap_fraction))
        self.dead: set[int] = set()
        self.unfitted: set[int] = set()
        self.residuals: list[np.ndarray] = []
        self.fits_x, self.fits_y, self.fits_m = {}, {}, {}
        self.efficiency = np.array(cal.tap_efficiency[0], dtype=float)

    # ---------------------------------------------------------------- helpers
    def _transfer(self, phases, columns):
        from calibration.procedure import _transfer

        return _transfer(self.cal, phases, columns)

    def _phases(self, volts):
        return self.cal.phases_for_voltages(volts)

    def _volts_for(self, heaters, target):
        v = np.zeros(len(heaters))
        for j, i in enumerate(heaters):
            if i in self.dead or self.cal.alpha[i] <= 0:
                continue
            v[j] = np.sqrt(np.mod(target - self.cal.phase_offsets[i], TWO_PI) / self.cal.alpha[i])
        return v

    def _deliver(self, base_v, c_in, f):
        """Input field that puts ``f`` at the inputs of column ``c_in`` through the calibrated columns before it."""
        w = self._transfer(self._phases(base_v), range(c_in))
        return np.linalg.solve(w, f)

    # ---------------------------------------------------------------- one stage
    def stage(self, c: int) -> None:
        top, cal, k_all, n = self.top, self.cal, self.top.n_mzis, self.top.n
        n_cols = top.n_columns
        prev = list(top.columns[c - 1]) if c >= 1 else []
        here = list(top.columns[c]) if c < n_cols else []
        theta_heaters = prev
        phi_heaters = [k_all + k for k in here]
        gamma_heaters = list(range(2 * k_all, 2 * k_all + n)) if c == n_cols else []
        # base voltages: earlier columns in the bar state, everything else at 0 V
        base_v = np.zeros(cal.n_heaters)
        earlier = [k for cc in range(max(c - 1, 0)) for k in top.columns[cc]]
        base_v[earlier] = self._volts_for(earlier, np.pi)
        c_in = c - 1 if c >= 1 else 0
        amp = np.sqrt(self.power)
        # light on each top input of column c_in's MZIs (stage 0: both inputs of column 0's MZIs, in phase)
        f = np.zeros(n, dtype=np.complex128)
        if c >= 1:
            touched = set()
            for k in prev:
                f[top.mzis[k][1]] = amp
                touched.update((top.mzis[k][1], top.mzis[k][1] + 1))
            for m in set(range(n)) - touched:  # modes that bypass column c−1 feed column c directly
                f[m] = amp
        else:
            for k in here:
                m = top.mzis[k][1]
                f[m] = f[m + 1] = amp / np.sqrt(2)
        x_base = self._deliver(base_v, c_in, f)
        volts, xs, coherent_rows = [], [], []
        meas_taps, meas_out = [], []

        def take(v, x, coherent):
            out = self.bench.measure(v, x, "input", taps="forward", coherent=coherent)
            volts.append(v.copy())
            xs.append(np.asarray(x))
            meas_taps.append(out["taps"][0] - self.offsets[0])
            meas_out.append(out["coherent"][0] if coherent else np.zeros(n, dtype=np.complex128))
            coherent_rows.append(coherent)

        use_coherent = bool(gamma_heaters) and self.bench.coherent
        # (1) θ sweep of column c−1
        if theta_heaters:
            start = len(volts)
            for s in range(self.s):
                v = base_v.copy()
                v[theta_heaters] = self.sweep_v[s]
                take(v, x_base, False)
            readings = np.asarray(meas_taps[start:])
            self._prefit_theta(theta_heaters, readings, c)
        # (2) φ sweep of column c (or γ sweep at the last stage), column c−1 at θ = π/2
        if phi_heaters or gamma_heaters:
            v_mid = base_v.copy()
            if theta_heaters:
                v_mid[theta_heaters] = self._volts_for(theta_heaters, np.pi / 2)
            start = len(volts)
            swept = phi_heaters if phi_heaters else gamma_heaters
            groups = [swept] if phi_heaters else [swept[0::2], swept[1::2]]
            for group in groups:
                for s in range(self.s):
                    v = v_mid.copy()
                    v[group] = self.sweep_v[s]
                    take(v, x_base, use_coherent)
            if phi_heaters:
                self._prefit_phi(here, np.asarray(meas_taps[start:]), v_mid, x_base)
            elif use_coherent:
                self._prefit_gamma(groups, np.asarray(meas_out[start:]), v_mid, x_base)
        # (3) random frames: random voltages on the stage heaters, random fields at column c_in
        stage_heaters = theta_heaters + phi_heaters + gamma_heaters
        for _ in range(self.r):
            v = base_v.copy()
            v[stage_heaters] = np.sqrt(self.rng.uniform(0, self.sweep_x[-1], len(stage_heaters)))
            lit = f != 0
            g = np.where(lit, self.rng.normal(size=n) + 1j * self.rng.normal(size=n), 0)
            g *= np.linalg.norm(f) / max(np.linalg.norm(g), 1e-30)
            take(v, self._deliver(base_v, c_in, g), use_coherent)
        # ------------------------------------------------------------ stage least squares
        taps_used = np.zeros(cal.n_heaters, dtype=bool)
        taps_used[here] = True
        taps_used[[k_all + k for k in here]] = True
        if c == n_cols:
            taps_used[2 * k_all :] = True
        taps_used &= self.usable[0]
        deltas = [2 * k + 1 for k in prev] + [2 * k for k in here]
        self._fit(stage_heaters, deltas, taps_used, np.asarray(volts), np.asarray(xs), np.asarray(meas_taps),
                  np.asarray(meas_out), np.asarray(coherent_rows))

    # ---------------------------------------------------------------- first fits
    def _vis_ok(self, fringe, j):
        from calibration.procedure import _flat

        vis = fringe.amplitude[j] / (abs(fringe.offset[j]) + fringe.amplitude[j] + 1e-30)
        return vis >= self.vis_threshold or not _flat(fringe, j)

    def _prefit_theta(self, heaters, readings, c):
        from calibration.procedure import fit_fringes

        top, k_all = self.top, self.top.n_mzis
        n_cols = top.n_columns
        observe = []  # tap reading MZI k's bottom output alone
        for k in heaters:
            m = top.mzis[k][1]
            tap = None
            if c == n_cols:
                tap = 2 * k_all + m + 1
            else:
                try:
                    tap = k_all + top.mzi_index(c, m + 1)
                except KeyError:
                    tap = None
            observe.append(tap if tap is not None and self.usable[0, tap] else None)
        cols = [t for t in observe if t is not None]
        if not cols:
            self.unfitted.update(heaters)
            return
        fringe = fit_fringes(self.sweep_x, readings[:, cols], self.alpha_guess)
        j = 0
        for k, tap in zip(heaters, observe):
            if tap is None:
                self.unfitted.add(k)
                continue
            if not self._vis_ok(fringe, j):
                self.dead.add(k)
            elif 0.5 * self.alpha_guess < fringe.alpha[j] < 1.5 * self.alpha_guess:
                # bottom output |T10|² = A + B cos θ: Bc = B cos θ0, Bs = −B sin θ0
                self.cal.phase_offsets[k] = np.mod(np.arctan2(-fringe.sin[j], fringe.cos[j]), TWO_PI)
                self.cal.alpha[k] = fringe.alpha[j]
                self.efficiency[tap] = max(fringe.offset[j] + fringe.amplitude[j], 1e-9) / self.power
            else:
                self.unfitted.add(k)
            self.fits_x[k] = self.sweep_x
            self.fits_y[k] = readings[:, tap]
            self.fits_m[k] = readings[:, tap] - fringe.residuals[:, j]
            j += 1

    def _prefit_phi(self, here, readings, v_mid, x):
        from calibration.procedure import fit_fringes

        top, k_all, cal = self.top, self.top.n_mzis, self.cal
        c = top.mzis[here[0]][0]
        arrival = self._transfer(self._phases(v_mid), range(c)) @ x
        taps = [k if self.usable[0, k] else None for k in here]
        cols = [t for t in taps if t is not None]
        if not cols:
            self.unfitted.update(k_all + k for k in here)
            return
        fringe = fit_fringes(self.sweep_x, readings[:, cols], self.alpha_guess)
        j = 0
        for k, tap in zip(here, taps):
            heater = k_all + k
            if tap is None:
                self.unfitted.add(heater)
                continue
            m = top.mzis[k][1]
            if abs(arrival[m]) < 1e-6 or abs(arrival[m + 1]) < 1e-6:
                self.unfitted.add(heater)
            elif not self._vis_ok(fringe, j):
                self.dead.add(heater)
            elif 0.5 * self.alpha_guess < fringe.alpha[j] < 1.5 * self.alpha_guess:
                shift = np.angle(arrival[m]) - np.angle(arrival[m + 1])
                cal.phase_offsets[heater] = np.mod(np.arctan2(fringe.cos[j], fringe.sin[j]) - shift, TWO_PI)
                cal.alpha[heater] = fringe.alpha[j]
            else:
                self.unfitted.add(heater)
            self.fits_x[heater] = self.sweep_x
            self.fits_y[heater] = readings[:, tap]
            self.fits_m[heater] = readings[:, tap] - fringe.residuals[:, j]
            j += 1

    def _prefit_gamma(self, groups, outs, v_mid, x):
        cal, top = self.cal, self.top
        arrival = self._transfer(self._phases(v_mid), range(top.n_columns)) @ x
        design = np.stack([np.ones_like(self.sweep_x), self.sweep_x], axis=1)
        for g, group in enumerate(groups):
            modes = [i - 2 * top.n_mzis for i in group]
            block = outs[g * self.s : (g + 1) * self.s][:, modes]
            phase = np.unwrap(np.angle(block / arrival[modes]), axis=0)
            coef, *_ = np.linalg.lstsq(design, phase, rcond=None)
            for j, heater in enumerate(group):
                if coef[1, j] < 0.5 * self.alpha_guess:
                    self.dead.add(heater)
                    continue
                cal.phase_offsets[heater] = np.mod(coef[0, j], TWO_PI)
                cal.alpha[heater] = coef[1, j]
                self.fits_x[heater] = self.sweep_x
                self.fits_y[heater] = phase[:, j]
                self.fits_m[heater] = design @ coef[:, j]

    # ---------------------------------------------------------------- stage least squares
    def _fit(self, heaters, deltas, taps_used, volts, xs, meas_taps, meas_out, coherent_rows):
        import jax.numpy as jnp

        from calibration.refine import _levenberg_marquardt

        cal, h = self.cal, self.cal.n_heaters
        k_all = self.top.n_mzis
        fit_heaters = [i for i in heaters if i not in self.dead]
        hp = np.full(self.lh, h)
        hp[: len(fit_heaters)] = fit_heaters
        dp = np.full(self.ld, 2 * k_all)
        dp[: len(deltas)] = deltas
        used = np.nonzero(taps_used)[0]
        tp = np.full(self.lt, h)
        tp[: len(used)] = used
        dead = np.zeros(h, dtype=bool)
        dead[list(self.dead)] = True
        power = np.where(dead[None, :], 0.0, volts**2)
        alpha_now = np.where(cal.alpha > 0, cal.alpha, self.alpha_guess)
        free0 = np.concatenate([
            np.concatenate([cal.phase_offsets[fit_heaters], np.zeros(self.lh - len(fit_heaters))]),
            np.concatenate([np.log(alpha_now[fit_heaters]), np.zeros(self.lh - len(fit_heaters))]),
            np.concatenate([cal.delta.ravel()[deltas], np.zeros(self.ld - len(deltas))]),
            np.concatenate([np.log(np.clip(self.efficiency[used], 1e-9, None)), np.zeros(self.lt - len(used))]),
        ])
        tap_scale = 0.02 * self.power
        args = (
            jnp.asarray(hp), jnp.asarray(dp), jnp.asarray(tp), jnp.asarray(cal.phase_offsets),
            jnp.asarray(cal.alpha), jnp.asarray(cal.delta), jnp.asarray(self.efficiency), jnp.asarray(power), jnp.asarray(xs, dtype=jnp.complex128),
            jnp.asarray(meas_taps), jnp.asarray(taps_used), jnp.asarray(meas_out, dtype=jnp.complex128),
            jnp.asarray(coherent_rows), tap_scale, np.sqrt(self.power),
        )
        # the efficiency of each used tap enters linearly: start it from its closed form
        fun = lambda p: np.asarray(self.res(jnp.asarray(p), *args), dtype=float)  # noqa: E731
        for i in [i for i in heaters if i in self.unfitted and i not in self.dead]:
            j = fit_heaters.index(i)
            trial = np.linspace(0, TWO_PI, 12, endpoint=False)
            costs = []
            for value in trial:
                p = free0.copy()
                p[j] = value
                costs.append(float(np.sum(fun(p) ** 2)))
            free0[j] = trial[int(np.argmin(costs))]
        scale = np.concatenate([np.full(self.lh, 0.05), np.full(self.lh, 0.01), np.full(self.ld, 0.01),
                                np.full(self.lt, 0.02)])
        # only the stage's parameters move: zero the Jacobian columns of padding and unused taps
        movable = np.concatenate([
            np.arange(self.lh) < len(fit_heaters),
            np.arange(self.lh) < len(fit_heaters),
            np.arange(self.ld) < len(deltas),
            np.arange(self.lt) < len(used),
        ])
        jac = lambda p: np.asarray(self.jac(jnp.asarray(p), *args), dtype=float) * movable[None, :]  # noqa: E731
        result = _levenberg_marquardt(fun, jac, free0, scale, max_iterations=25)
        p = result.x
        cal.phase_offsets[fit_heaters] = np.mod(p[: len(fit_heaters)], TWO_PI)
        cal.alpha[fit_heaters] = np.exp(p[self.lh : self.lh + len(fit_heaters)])
        flat = cal.delta.ravel()
        flat[deltas] = np.clip(p[2 * self.lh : 2 * self.lh + len(deltas)], -self.max_delta, self.max_delta)
        cal.delta = flat.reshape(k_all, 2)
        self.efficiency[used] = np.exp(p[2 * self.lh + self.ld :][: len(used)])
        r = fun(p)
        self.residuals.append(r[r != 0])
