"""Progressive calibration: one MZI column at a time, forward light, each stage a small local fit.

Stage c calibrates everything of column c: the φ and θ heaters (φ0 and α), both couplers (δ1, δ2) of
every MZI of the column. The columns before it are already calibrated and held at fixed voltages (θ at
the bar state, φ at 0 V), so the calibrated model of that prefix, ``W_c``, maps an injected field to
the field arriving at column c; ``inject(W_c⁻¹ f)`` puts any field ``f`` at column c's inputs (the chip
takes any field, as a generator mesh makes it). The stage's frames are:

1. **φ sweep**, equal in-phase light on both inputs of every MZI: its θ tap (top arm) reads
   ``A + B sin(φ + Δ)``;
2. **split frames**, light on the top input only, then the bottom input only: the ratio at the θ tap
   (same grating, its gain cancels) is tan²κ1 — δ1 to first order;
3. per **group** (every other MZI of the column, so that each tap downstream receives light from one
   MZI only): a **θ sweep** with light on the top input, read at the first tap each output of the MZI
   reaches downstream (the φ tap of the next MZI it enters as top input, or the θ tap of the next MZI
   it enters as bottom input, or the output γ tap); then **arm-only frames**, fields chosen through
   the stage's first fits so that only the top arm, then only the bottom arm, of each MZI is lit: the
   ratio at one output tap is tan²κ2 — δ2 to first order (an MZI fed from one input only shows δ
   only to second order, which is why forward sweeps alone cannot find the couplers).

Every setting is read as a batch of ``repeat_frames`` camera frames, averaged, and each kind of frame moves
one set of heaters only: the delivered field is never exact, and a small leak into an input meant to be
dark then shifts a reading by a constant instead of by something that tracks a swept heater. A φ tap or
output tap downstream sees one MZI output alone in every frame and is used in all of them; a θ tap
downstream only in the frames of one group.

Each MZI then has its own least-squares problem: 9 parameters (φ0, log α of both heaters, δ1, δ2, and
the log efficiency of its three reading channels) against its readings, on an analytic model of one
MZI fed with the field the prefix model says arrives. The problems of a column are solved together by a
batched Levenberg–Marquardt on a jitted, vmapped residual of fixed shape (compiled once per mesh size,
reused by every stage), so a stage costs milliseconds and never simulates the mesh. Uncertainties are
the per-MZI ``(JᵀJ)⁻¹`` of that fit: they are conditional on the prefix model, so they do not include
the slow build-up of phase error with depth (each φ0 is measured against the phase of light that came
through all earlier columns).

The output phases γ are read last, through the coherent output readout (if the chip has one), with the
whole mesh at its calibrated bar state.

**Thermal crosstalk** (``crosstalk=True``, the ``"crosstalk"`` step). A heater warms its neighbours
(:func:`tapmesh.calibration.virtual.neighbour_pairs`): in a rectangular mesh φ and θ of one MZI, θ of column c−1
and the φ of column c it sits next to, γ and the last column's θ, neighbouring γ. Each stage adds:

* a **θ sweep with both inputs lit**, in every other setting each φ held where the first fit of the φ
  sweep puts its θ tap at mid-fringe: the heat of θ shifts φ, seen at the own θ tap to first order (X
  φ←θ; at a fringe peak it would show to second order only, blind to the sign of X);
* two shorter **φ sweeps with every other θ of column c−1 moved by 2π** (the prefix routes the same
  light, but its heat on the φ of column c changes by 2π/α): X φ←θ' of the previous column;
* a short **φ sweep with every θ' of column c−1 at mid-fringe** and light on the top input of every
  MZI of column c−1 only (delivered through the prefix before it): the heat of the φ of column c moves
  the θ' beside it, whose bottom output is read alone at that φ's own tap, to first order; a
  two-parameter fit per pair on the one-MZI model of column c−1 gives X θ'←φ (:meth:`_reverse_pairs`);
* the φ sweep itself shows X θ←φ at the outputs.

The local model gets three more parameters (X φ←θ, X φ←θ', X θ←φ: 12 in all) and the heater powers of
every frame; the field that arrives in each frame is computed through column c−1 of the calibrated
prefix at that frame's voltages (its crosstalk included: the swept φ of column c warm the θ' beside them
by the measured X θ'←φ), and the prefix, the bar-state voltages and
:meth:`Calibration.voltages_for_phases` use the crosstalk found so far. Where X θ'←φ cannot be measured
(a dead heater, a dark φ tap) it is taken equal to X φ←θ' (reciprocity): a first fit of the stage
provides it, a second fit uses it. That reciprocity assumption was the largest error left at depth: with
X θ'←φ off by 0.003, the φ sweep's heat bends the light arriving at every MZI, and α, δ and θ at the bar
state absorb it (φ0 at n = 32 0.039 rad, 0.007 with the measured pairs). γ: least squares on the
coherent phases of the parity sweeps plus one setting with the last column's θ moved by 2π (X γ←θ, its
reverse by reciprocity, and the sum of X γ←γ±1, split equally). Cost: 5.5·s + 6 settings a stage instead
of 3·s + 6.
Not modelled: β, loss (use the global refinement of :mod:`tapmesh.calibration.refine` on top where the mesh is
small enough).
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.crosstalk import Crosstalk

TWO_PI = 2 * np.pi
N_PARAMS = 12
"""Per MZI: φ0, log αφ, θ0, log αθ, δ1, δ2, log η (own θ tap), log η (bottom output), log η (top output),
X(φ←θ) of its own heaters, X(φ←θ') from the θ' of the previous column that feeds its top input,
X(θ←φ) of its own heaters."""


def _mzi_readings(p, alive, v2, arrival, taps):
    """Model readings (F, 3) of one MZI: its θ tap, its bottom and top output powers, each times its
    channel efficiency. ``v2`` (F, 3) heater powers (φ, θ, and the θ' of the previous column next to
    this φ; 0 for a dead heater); ``arrival`` (F, 2) complex input field (top, bottom); ``taps`` (2,)
    nominal tap fractions of the φ and θ segments; ``alive`` (2,) 0 for a dead heater. Thermal
    crosstalk: φ = φ0 + αφ (Pφ + X₉ Pθ + X₁₀ Pθ'), θ = θ0 + αθ (Pθ + X₁₁ Pφ)."""
    import jax.numpy as jnp

    phi = p[0] + alive[0] * jnp.exp(p[1]) * (v2[:, 0] + p[9] * v2[:, 1] + p[10] * v2[:, 2])
    theta = p[2] + alive[1] * jnp.exp(p[3]) * (v2[:, 1] + p[11] * v2[:, 0])
    k1, k2 = np.pi / 4 + p[4], np.pi / 4 + p[5]
    c1, s1, c2, s2 = jnp.cos(k1), jnp.sin(k1), jnp.cos(k2), jnp.sin(k2)
    a = arrival[:, 0] * jnp.exp(1j * phi) * jnp.sqrt(1 - taps[0])
    b = arrival[:, 1]
    arm_t = c1 * a + 1j * s1 * b
    arm_b = 1j * s1 * a + c1 * b
    arm_t2 = arm_t * jnp.exp(1j * theta) * jnp.sqrt(1 - taps[1])
    out_t = c2 * arm_t2 + 1j * s2 * arm_b
    out_b = 1j * s2 * arm_t2 + c2 * arm_b
    power = jnp.stack([jnp.abs(arm_t) ** 2, jnp.abs(out_b) ** 2, jnp.abs(out_t) ** 2], axis=1)
    return jnp.exp(p[6:9])[None, :] * power


_COMPILED: dict = {}


def _stage_functions():
    """Jitted batched model, residual and Jacobian (shapes fixed by the caller; compiled per shape)."""
    if "fns" in _COMPILED:
        return _COMPILED["fns"]
    import jax
    import jax.numpy as jnp

    def residual(p, alive, v2, arrival, taps, meas, mask, scale):
        return (jnp.where(mask, _mzi_readings(p, alive, v2, arrival, taps) - meas, 0.0) / scale).ravel()

    model = jax.jit(jax.vmap(_mzi_readings))
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


class Progressive:
    """Runs the stages of :mod:`tapmesh.calibration.progressive` against a bench (see :mod:`tapmesh.calibration.procedure`)."""

    def __init__(self, bench, cal: Calibration, offsets, usable, sweep_x, alpha_guess, power_mw, repeats,
                 visibility_threshold, max_delta, crosstalk: bool = True, max_voltage: float = 5.0):
        self.bench, self.cal, self.offsets, self.usable = bench, cal, offsets, usable
        self.top = top = cal.topology
        self.n, self.k_all, self.h = top.n, top.n_mzis, top.n_shifters
        self.sweep_x, self.sweep_v = np.asarray(sweep_x), np.sqrt(sweep_x)
        self.s = len(sweep_x)
        self.alpha_guess, self.power, self.r = alpha_guess, power_mw, repeats
        self.vis_threshold, self.max_delta = visibility_threshold, max_delta
        self.m_max = max(len(c) for c in top.columns)
        self.w = np.eye(self.n, dtype=np.complex128)  # prefix transfer at the base voltages
        self.base_v = np.zeros(self.h)
        self.dead: set[int] = set()
        self.unfitted: set[int] = set()
        self.residuals: list[np.ndarray] = []
        self.sigma = {"phase_offsets": np.full(self.h, np.nan), "alpha": np.full(self.h, np.nan),
                      "delta": np.full((self.k_all, 2), np.nan)}
        self.fits_y, self.fits_m = {}, {}
        self.efficiency = np.array(cal.tap_efficiency[0], dtype=float)
        self.notes: list[str] = []
        # thermal crosstalk: fitted in the stages (module doc), kept as (receiver, source) -> X
        self.fit_xt = bool(crosstalk)
        self.max_v2 = 0.95 * float(max_voltage) ** 2
        self.xt: dict[tuple[int, int], float] = {}
        self.xt_sigma: dict[tuple[int, int], float] = {}
        self.w_prev = np.eye(self.n, dtype=np.complex128)  # prefix before the last calibrated column
        self.s_moved = len(self.sweep_x[::2])

    # ---------------------------------------------------------------- geometry
    def _channel(self, c: int, mode: int):
        """The tap that first sees output ``mode`` of column ``c`` alone (in group frames), or None."""
        top, k_all = self.top, self.k_all
        for cc in range(c + 1, top.n_columns):
            for m_top in (mode, mode - 1):
                try:
                    k = top.mzi_index(cc, m_top)
                except (KeyError, ValueError, IndexError):
                    continue
                if m_top == mode:  # enters as top input: its φ tap reads it alone, else its θ tap
                    if self.usable[0, k_all + k]:
                        return k_all + k
                    return k if cc == c + 1 and self.usable[0, k] else None
                # enters as bottom input: its θ tap, only if its top input is dark (next column only)
                return k if cc == c + 1 and self.usable[0, k] else None
        tap = 2 * k_all + mode
        return tap if self.usable[0, tap] else None

    def _deliver(self, f, prefix=None):
        """Input fields (B, n) that put the fields ``f`` (B, n) at the inputs of the current column (or
        after ``prefix``, a calibrated transfer matrix of the columns before another one)."""
        return np.linalg.solve(self.w if prefix is None else prefix, np.atleast_2d(f).T).T

    def _mean_taps(self, volts, x):
        """Forward tap readings at ``volts`` for the input fields ``x`` (B, n): dark offsets removed,
        averaged over the B frames."""
        return (self.bench.measure(volts, x, "input", taps="forward")["taps"] - self.offsets[0]).mean(0)

    # ---------------------------------------------------------------- one column
    def column(self, c: int) -> None:
        top, cal, k_all, n = self.top, self.cal, self.k_all, self.n
        members = list(top.columns[c])
        mc = len(members)
        tops = np.array([top.mzis[k][1] for k in members])
        th, ph = np.array(members), np.array([k_all + k for k in members])
        amp = np.sqrt(self.power)
        t_nom = np.asarray(cal.tap_fraction)
        frames_v, frames_f, frames_taps, lit, group_frame = [], [], [], [], []
        # θ' of the previous column next to each member's φ (it feeds the member's top input), or -1
        prev = np.full(mc, -1)
        if c >= 1:
            for j, m in enumerate(tops):
                prev[j] = top._index_of.get((c - 1, int(m) - 1), -1)
        # prefix states: 0 = base; 1, 2 = every other θ of column c−1 moved to the next 2π branch of its
        # bar state (the prefix still routes the same, but its heat reaches the φ of column c)
        states = [self.base_v]
        if self.fit_xt and c >= 1:
            before = list(top.columns[c - 1])
            states += [self._moved(self.base_v, before[g::2]) for g in (0, 1)]
        from tapmesh.calibration.procedure import _transfer

        def take(v, f, lit_mask, is_group):
            """``repeat_frames`` camera frames of one setting and one field, averaged."""
            frames_taps.append(self._mean_taps(v, self._deliver(np.repeat(np.atleast_2d(f), self.r, axis=0))))
            frames_v.append(v.copy())
            frames_f.append(np.asarray(f, dtype=np.complex128))
            lit.append(lit_mask.copy())
            group_frame.append(is_group)

        everyone = np.ones(mc, dtype=bool)
        # each kind of frame moves one set of heaters; the others stay at their base voltage (module doc)
        # (1) φ sweep: equal in-phase light on both inputs
        f_both = np.zeros(n, dtype=np.complex128)
        f_both[tops] = f_both[tops + 1] = amp / np.sqrt(2)
        for s in range(self.s):
            v = self.base_v.copy()
            v[ph] = self.sweep_v[s]
            take(v, f_both, everyone, False)
        phi_readings = np.asarray(frames_taps[-self.s:])[:, th]
        self._prefit_phi(members, phi_readings)
        measured: set = set()
        if self.fit_xt:
            # (1b) θ sweep with both inputs lit: the heat of θ reaches φ (X φ←θ), seen at the θ tap. In
            # every other setting each φ is held where the first fit puts its θ tap at mid-fringe (reading
            # A + B sin(φ + Δ)): at a peak the shift shows only to second order, the sign of X is lost and
            # the fit can land on −X. The other settings keep φ at 0 V, where the arms are unequally lit
            # and the outputs also show δ2
            v_mid = self.base_v.copy()
            fitted = [k_all + k for k in members if k_all + k not in self.unfitted | self.dead]
            v_mid[fitted] = self._volts_for(fitted, 0.0, period=np.pi)
            for s in range(self.s):
                v = (v_mid if s % 2 else self.base_v).copy()
                v[th] = self.sweep_v[s]
                take(v, f_both, everyone, False)
            # (1c) shorter φ sweeps with the prefix in state 1, 2 (X φ←θ' of the previous column)
            for state in range(1, len(states)):
                for vs in self.sweep_v[::2]:
                    v = states[state].copy()
                    v[ph] = vs
                    take(v, f_both, everyone, False)
            # (1d) X θ'←φ, measured: the θ' of column c−1 at mid-fringe, the φ of column c swept
            if c >= 1:
                measured = self._reverse_pairs(c, members, prev)
        # (2) split frames: top only, bottom only
        f_top = np.zeros(n, dtype=np.complex128)
        f_top[tops] = amp
        f_bottom = np.zeros(n, dtype=np.complex128)
        f_bottom[tops + 1] = amp
        take(self.base_v, f_top, everyone, False)
        take(self.base_v, f_bottom, everyone, False)
        split = np.asarray(frames_taps[-2:])[:, th]
        self._prefit_delta1(members, split[0], split[1])
        # (3) per group: θ sweep with top-only light, then arm-only frames
        channels = np.full((mc, 2), -1)
        for j, k in enumerate(members):
            for o, mode in enumerate((tops[j] + 1, tops[j])):  # bottom output, top output
                tap = self._channel(c, mode)
                channels[j, o] = -1 if tap is None else tap
        for g in (0, 1):
            group = np.zeros(mc, dtype=bool)
            group[g::2] = True
            if not group.any():
                continue
            f_g = np.where(np.isin(np.arange(n), tops[group]), amp, 0).astype(np.complex128)
            start = len(frames_taps)
            for s in range(self.s):
                v = self.base_v.copy()
                v[th[group]] = self.sweep_v[s]
                take(v, f_g, group, True)
            self._prefit_theta([k for k, on in zip(members, group) if on], np.asarray(frames_taps[start:]),
                               channels[group])
            phases = cal.phases_for_voltages(self.base_v)
            for arm in (0, 1):
                f_arm = np.zeros(n, dtype=np.complex128)
                for j in np.nonzero(group)[0]:
                    k, m = members[j], tops[j]
                    k1 = np.pi / 4 + cal.delta[k, 0]
                    # B(κ1)⁻¹ e_arm, with the φ heater and its tap undone on the top input
                    a, b = (np.cos(k1), -1j * np.sin(k1)) if arm == 0 else (-1j * np.sin(k1), np.cos(k1))
                    f_arm[m] = amp * a * np.exp(-1j * phases[k_all + k]) / np.sqrt(1 - t_nom[k_all + k])
                    f_arm[m + 1] = amp * b
                take(self.base_v, f_arm, group, True)
        frames_v, frames_f = np.asarray(frames_v), np.asarray(frames_f)
        data = (np.asarray(frames_taps), np.asarray(lit), np.asarray(group_frame), prev)
        unmeasured = [j for j in range(mc) if prev[j] >= 0 and (int(prev[j]), k_all + members[j]) not in measured]
        if self.fit_xt and unmeasured:
            # the fields that arrived: the frames' heat reaches column c−1 (moved θ heat their φ; the swept
            # φ of column c heat the θ of column c−1), through the crosstalk known so far. Where (1d) could
            # not measure X(θ'←φ), a first fit gives this column's X(φ←θ'), which (reciprocity) stands for
            # it; then the final fit.
            self._fit(c, members, tops, channels, frames_v, self._arrivals(c, frames_v, frames_f), *data,
                      measured=measured, final=False)
        self._fit(c, members, tops, channels, frames_v, self._arrivals(c, frames_v, frames_f), *data,
                  measured=measured)
        # column c joins the prefix: θ at the bar state, φ at 0 V (where the stage's frames pinned its phase)
        alive_theta = [k for k in members if k not in self.dead]
        self.base_v[alive_theta] = self._volts_for(alive_theta, np.pi)
        self.w_prev = self.w
        self.w = _transfer(cal, cal.phases_for_voltages(self.base_v), [c]) @ self.w

    def _reverse_pairs(self, c: int, members, prev) -> set:
        """(1d): X(θ'←φ), the φ of column c warming the θ' of column c−1 beside it. Every θ' of column
        c−1 is set to mid-fringe (θ' = π/2 mod π, from its stage's fit), every MZI of column c−1 gets light
        on its top input only (through the prefix before column c−1), and the φ of column c are swept
        (``s/2`` settings). The bottom output of the MZI of θ' is the top input of the φ's own MZI, read
        alone at that φ's tap, and at mid-fringe it moves with θ' to first order: the heat of φ shows
        directly, whatever φ itself does (its phase does not change a power). Per pair, on the one-MZI
        model of column c−1 (φ' is irrelevant with one input lit), the reading is η·P(θ0' + αθ'(Pθ' +
        X Pφ)); Gauss–Newton on X with the efficiency η solved in closed form (it absorbs the injected
        power and the grating's gain). Stored in ``self.xt``; returns the pairs measured."""
        cal, top, k_all, n = self.cal, self.top, self.k_all, self.n
        sel = [j for j in range(len(members))
               if prev[j] >= 0 and int(prev[j]) not in self.dead and k_all + members[j] not in self.dead
               and cal.alpha[int(prev[j])] > 0 and self.usable[0, k_all + members[j]]]
        if not sel:
            return set()
        recv = np.array([int(prev[j]) for j in sel])  # θ' of column c−1 (its MZI index)
        src = np.array([k_all + members[j] for j in sel])  # φ of column c: its tap reads θ''s bottom output
        before = [k for k in self.top.columns[c - 1] if k not in self.dead and cal.alpha[k] > 0]
        v_mid = self.base_v.copy()
        v_mid[before] = self._volts_for(before, np.pi / 2, period=np.pi)
        f = np.zeros(n, dtype=np.complex128)
        amp = np.sqrt(self.power)
        tops_before = np.array([top.mzis[k][1] for k in top.columns[c - 1]])
        f[tops_before] = amp
        x = self._deliver(np.repeat(f[None], self.r, axis=0), prefix=self.w_prev)  # at column c−1's inputs
        phi_all = np.array([k_all + k for k in members if k_all + k not in self.dead])
        sweep_v = self.sweep_v[::2]
        readings = []
        for vs in sweep_v:
            v = v_mid.copy()
            v[phi_all] = vs
            readings.append(self._mean_taps(v, x)[src])
        readings = np.asarray(readings).T  # (M, S)
        heat = sweep_v[None, :] ** 2 * np.ones((len(sel), 1))  # (M, S) power of the swept φ
        # the one-MZI model of column c−1 at its stage's parameters, batched and padded to one shape
        model = _stage_functions()[0]
        import jax.numpy as jnp

        m_max, s = self.m_max, len(sweep_v)
        p = np.zeros((m_max, N_PARAMS))
        alive = np.zeros((m_max, 2))
        base = np.zeros((m_max, s, 3))
        arrival = np.zeros((m_max, s, 2), dtype=np.complex128)
        taps_t = np.full((m_max, 2), 0.02)
        t = np.asarray(cal.tap_fraction)
        for i, k in enumerate(recv):
            phi_h = k_all + k
            alive[i] = [phi_h not in self.dead and cal.alpha[phi_h] > 0, 1.0]
            p[i, :6] = [cal.phase_offsets[phi_h], np.log(max(cal.alpha[phi_h], 1e-9)), cal.phase_offsets[k],
                        np.log(cal.alpha[k]), cal.delta[k, 0], cal.delta[k, 1]]
            base[i, :, 1] = v_mid[k] ** 2
            arrival[i, :, 0] = amp
            taps_t[i] = [t[phi_h], t[k]]
        # the other X of that MZI act on heaters at fixed power here: φ' at 0 V, θ'' at its base
        args = [jnp.asarray(a) for a in (alive, arrival, taps_t)]

        def bottom(xv):
            v2 = base.copy()
            v2[: len(sel), :, 1] += xv[:, None] * heat
            return np.asarray(model(jnp.asarray(p), args[0], jnp.asarray(v2), args[1], args[2]))[: len(sel), :, 1]

        xv = np.array([self.xt.get((int(r), int(q)), 0.0) for r, q in zip(recv, src)])
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
            cov = np.linalg.pinv(ata) * (np.sum(resid**2, axis=1) / dof)[:, None, None]
            sigma = np.sqrt(np.clip(cov[:, 1, 1], 0, None)) / np.abs(eta)
        measured = set()
        for r, q, value, sig in zip(recv, src, xv, sigma):
            if not (np.isfinite(value) and np.isfinite(sig)):
                continue  # left to reciprocity in the stage's fit
            pair = (int(r), int(q))
            self.xt[pair] = float(value)
            self.xt_sigma[pair] = float(sig)
            measured.add(pair)
        self._publish_crosstalk()
        return measured

    def _arrivals(self, c: int, volts, fields):
        """The field (F, n) at column c's inputs in each frame, per the calibrated model: the designed
        field ``fields`` was delivered through the base prefix; in a frame only column c−1 of the prefix
        differs from the base (through its heaters and their crosstalk)."""
        if not self.fit_xt or c == 0:
            return fields
        from tapmesh.calibration.procedure import _transfer

        cal, top, k_all = self.cal, self.top, self.k_all
        cols = np.array(top.columns[c - 1])
        idx = np.concatenate([cols, k_all + cols])
        base = cal.phases_for_voltages(self.base_v)[idx]
        w_inv = np.linalg.inv(self.w)
        out = np.array(fields, dtype=np.complex128)
        cache: dict[bytes, np.ndarray] = {}
        for i, v in enumerate(volts):
            phases = cal.phases_for_voltages(v)
            if np.array_equal(phases[idx], base):
                continue
            key = phases[idx].tobytes()
            if key not in cache:
                cache[key] = _transfer(cal, phases, [c - 1]) @ self.w_prev @ w_inv
            out[i] = cache[key] @ fields[i]
        return out

    def _volts_for(self, heaters, target, near: float = 0.0, period: float = TWO_PI):
        """Voltages putting ``heaters`` at ``target`` (mod ``period``), on the branch whose V² is nearest
        ``near``."""
        cal = self.cal
        alpha = np.where(cal.alpha[heaters] > 0, cal.alpha[heaters], np.inf)
        need = np.mod(target - cal.phase_offsets[heaters], period)
        wraps = np.clip(np.round((near * alpha - need) / period), 0, None)
        x = (need + period * wraps) / alpha
        x = np.where(x > self.sweep_x[-1] * 1.2, need / alpha, x)
        return np.sqrt(x)

    # ---------------------------------------------------------------- first fits (starting points)
    def _verdict(self, fringe, j) -> str:
        from tapmesh.calibration.procedure import fringe_verdict

        return fringe_verdict(fringe, j, self.alpha_guess, self.vis_threshold)

    def _apply_fringe(self, heater, fringe, j, phase_offset, readings):
        """One heater's sweep verdict: dead → α = 0 (reported); ok/weak → its φ0 (``phase_offset``, rad) and
        α from fringe ``j``; distorted → left for the stage's fit. The readings and fit are kept for plots."""
        verdict = self._verdict(fringe, j)
        if verdict == "dead":
            self.dead.add(heater)
            self.cal.alpha[heater] = 0.0
        elif verdict in ("ok", "weak"):
            self.cal.phase_offsets[heater] = np.mod(phase_offset, TWO_PI)
            self.cal.alpha[heater] = fringe.alpha[j]
        else:
            self.unfitted.add(heater)
        self.fits_y[heater] = readings
        self.fits_m[heater] = readings - fringe.residuals[:, j]

    def _prefit_phi(self, members, readings):
        from tapmesh.calibration.procedure import fit_fringes

        k_all = self.k_all
        fringe = fit_fringes(self.sweep_x, readings, self.alpha_guess)
        for j, k in enumerate(members):
            heater = k_all + k
            if not self.usable[0, k]:
                self.unfitted.add(heater)
                self.notes.append(f"φ heater {heater}: its θ tap is dark, φ0 started from a scan")
                continue
            # equal in-phase inputs: reading = A + B sin(φ) → Bc = B sin φ0, Bs = B cos φ0
            self._apply_fringe(heater, fringe, j, np.arctan2(fringe.cos[j], fringe.sin[j]), readings[:, j])

    def _prefit_delta1(self, members, p_top, p_bottom):
        from tapmesh.calibration.procedure import delta_from_split_ratio

        cal, t = self.cal, self.cal.tap_fraction
        for j, k in enumerate(members):
            if p_top[j] > 0 and p_bottom[j] > 0 and self.usable[0, k]:
                ratio = p_bottom[j] / p_top[j] * (1 - t[self.k_all + k])
                cal.delta[k, 0] = delta_from_split_ratio(ratio, self.max_delta)

    def _prefit_theta(self, heaters, sweep, channels):
        from tapmesh.calibration.procedure import fit_fringes

        # read each MZI's fringe at its bottom-output channel, or at its top-output one if it has none
        use = [(0, bottom) if bottom >= 0 else (1, top) for bottom, top in channels]
        if all(tap < 0 for _, tap in use):
            self.unfitted.update(heaters)
            return
        cols = [tap for _, tap in use if tap >= 0]
        fringe = fit_fringes(self.sweep_x, sweep[:, cols], self.alpha_guess)
        j = 0
        for k, (o, tap) in zip(heaters, use):
            if tap < 0:
                self.unfitted.add(k)
                self.notes.append(f"θ heater {k}: no tap downstream sees its outputs, θ0 started from a scan")
                continue
            # bottom output A + B cos θ: Bc = B cos θ0, Bs = −B sin θ0 (top output: A − B cos θ)
            sign = 1.0 if o == 0 else -1.0
            self._apply_fringe(k, fringe, j, np.arctan2(-sign * fringe.sin[j], sign * fringe.cos[j]), sweep[:, tap])
            j += 1

    # ---------------------------------------------------------------- the stage's least squares
    def _fit(self, c, members, tops, channels, volts, fields, taps, lit, group_frame, prev, measured=frozenset(),
             final=True):
        import jax.numpy as jnp

        model, res, jac = _stage_functions()
        cal, k_all, m_max = self.cal, self.k_all, self.m_max
        # the most (averaged) frames a stage takes: one shape for every stage
        f = 3 * self.s + 6 + ((self.s + 2 * self.s_moved) if self.fit_xt else 0)
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
        taps_t = np.full((m_max, 2), 0.02)
        meas = np.zeros((m_max, f, 3))
        mask = np.zeros((m_max, f, 3), dtype=bool)
        movable = np.zeros((m_max, N_PARAMS))
        for j, k in enumerate(members):
            phi_h, m = k_all + k, tops[j]
            alive[j] = [phi_h not in self.dead, k not in self.dead]
            v2[j, :, 0] = volts[:, phi_h] ** 2 * alive[j, 0]
            v2[j, :, 1] = volts[:, k] ** 2 * alive[j, 1]
            has_prev = prev[j] >= 0 and prev[j] not in self.dead
            if has_prev:
                v2[j, :, 2] = volts[:, prev[j]] ** 2
            arrival[j, :, 0], arrival[j, :, 1] = fields[:, m], fields[:, m + 1]
            taps_t[j] = [t[phi_h], t[k]]
            alpha_start = lambda i: cal.alpha[i] if cal.alpha[i] > 0 else self.alpha_guess  # noqa: E731
            p0[j, :6] = [cal.phase_offsets[phi_h], np.log(alpha_start(phi_h)), cal.phase_offsets[k],
                         np.log(alpha_start(k)), cal.delta[k, 0], cal.delta[k, 1]]
            p0[j, 9:] = [self.xt.get((phi_h, k), 0.0), self.xt.get((phi_h, int(prev[j])), 0.0),
                         self.xt.get((k, phi_h), 0.0)]
            if self.usable[0, k]:
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
            both = alive[j, 0] * alive[j, 1] * self.fit_xt
            movable[j] = [1, alive[j, 0], 1, alive[j, 1], 1, 1, mask[j, :, 0].any(), mask[j, :, 1].any(),
                          mask[j, :, 2].any(), both, alive[j, 0] * has_prev * self.fit_xt, both]
        scale = float(np.mean(t) * self.power)
        args = [jnp.asarray(a) for a in (alive, v2, arrival, taps_t, meas, mask)]

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
                if heater in self.unfitted or heater in self.dead:
                    trial = np.linspace(0, TWO_PI, 12, endpoint=False)
                    costs = []
                    for value in trial:
                        p = p0.copy()
                        p[j, col] = value
                        costs.append(np.sum(fun(p)[j] ** 2))
                    p0[j, col] = trial[int(np.argmin(costs))]
        var_scale = np.array([0.05, 0.01, 0.05, 0.01, 0.01, 0.01, 0.02, 0.02, 0.02, 0.005, 0.005, 0.005])
        p, jm, r = batched_levenberg_marquardt(fun, jacobian, p0, movable, var_scale)
        for j, k in enumerate(members):
            phi_h = k_all + k
            cal.phase_offsets[[phi_h, k]] = np.mod(p[j, [0, 2]], TWO_PI)
            cal.alpha[phi_h] = np.exp(p[j, 1]) if alive[j, 0] else 0.0
            cal.alpha[k] = np.exp(p[j, 3]) if alive[j, 1] else 0.0
            cal.delta[k] = np.clip(p[j, 4:6], -self.max_delta, self.max_delta)
            if movable[j, 6]:
                self.efficiency[k] = np.exp(p[j, 6])
            # uncertainties from this MZI's own problem
            keep = movable[j] > 0
            jj = jm[j][:, keep]
            rows = int(mask[j].sum())
            dof = max(rows - int(keep.sum()), 1)
            s2 = float(np.sum(r[j] ** 2) / dof) * scale**2
            cov = s2 * np.linalg.pinv(jj.T @ jj * scale**2, rcond=1e-12, hermitian=True)
            sig = np.full(N_PARAMS, np.nan)
            sig[keep] = np.sqrt(np.clip(np.diag(cov), 0, None))
            self.sigma["phase_offsets"][[phi_h, k]] = sig[[0, 2]]
            self.sigma["alpha"][[phi_h, k]] = [cal.alpha[phi_h] * sig[1], cal.alpha[k] * sig[3]]
            self.sigma["delta"][k] = sig[4:6]
            if final:
                self.residuals.append(r[j][mask[j].ravel()])
            if self.fit_xt:
                found = [((phi_h, k), 9), ((k, phi_h), 11)]
                if movable[j, 10]:
                    found.append(((phi_h, int(prev[j])), 10))
                    if (int(prev[j]), phi_h) not in measured:
                        # the reverse pair (θ' ← φ) not measured by (1d): taken equal (thermal reciprocity)
                        found.append(((int(prev[j]), phi_h), 10))
                for pair, col in found:
                    if movable[j, col]:
                        self.xt[pair] = float(p[j, col])
                        self.xt_sigma[pair] = float(sig[col])
        if self.fit_xt and self.xt:
            self._publish_crosstalk()

    def _publish_crosstalk(self) -> None:
        pairs = np.array(list(self.xt.keys()), dtype=int).reshape(-1, 2)
        self.cal.crosstalk = Crosstalk.from_pairs(self.h, pairs, np.array(list(self.xt.values())))

    # ---------------------------------------------------------------- output phases
    def gamma(self) -> bool:
        """Output phases γ from the coherent readout, even and odd modes apart. False if the chip has none."""
        return self._gamma_crosstalk() if self.fit_xt else self._gamma_plain()

    def _moved(self, v, heaters):
        """``v`` with each live heater of ``heaters`` moved to the next 2π branch of its phase (a bar state
        stays a bar state, but its heat changes by 2π/α), or where no other branch is in range, off it to
        the far end of the range (the calibrated model then routes the light)."""
        cal = self.cal
        v = v.copy()
        for k in heaters:
            if k in self.dead or cal.alpha[k] <= 0:
                continue
            p_b, d_p = v[k] ** 2, TWO_PI / cal.alpha[k]
            if p_b + d_p <= self.max_v2:
                v[k] = np.sqrt(p_b + d_p)
            elif p_b - d_p >= 0:
                v[k] = np.sqrt(p_b - d_p)
            else:
                v[k] = 0.0 if p_b > self.max_v2 / 2 else np.sqrt(self.max_v2)
        return v

    def _gamma_crosstalk(self) -> bool:
        """γ with crosstalk: the parity sweeps of :meth:`_gamma_plain` plus one setting with the last
        column's θ moved by 2π, all read coherently (``repeat_frames`` frames each, averaged). Per mode,
        the phase measured against the calibrated model's field before γ (which carries the last column's
        response to the heat) is linear in the heater powers: γ0 + α (Pγ + Xθ Pθ + Xγ ΣP(γ±1)); least
        squares gives γ0, α, Xθ (its θ neighbour; the reverse pair is taken equal) and Xγ (the sum over
        both γ neighbours, split equally between them: the parity sweeps heat both alike). Twice: the
        second pass models the heat of γ on the last column with the first pass's X."""
        from tapmesh.calibration.procedure import _transfer

        cal, k_all, n, top = self.cal, self.k_all, self.n, self.top
        last = top.n_columns - 1
        amp = np.sqrt(self.power)
        f_all = np.full(n, amp, dtype=np.complex128)
        x = self._deliver(f_all)[0]
        gam = 2 * k_all + np.arange(n)
        src = np.array([top._index_of.get((last, m), top._index_of.get((last, m - 1), -1)) for m in range(n)])
        settings = []
        for parity in (0, 1):
            for s in range(self.s):
                v = self.base_v.copy()
                v[gam[parity::2]] = self.sweep_v[s]
                settings.append(v)
        settings.append(self._moved(self.base_v, list(top.columns[last])))
        ys = []
        for v in settings:
            try:
                ys.append(self.bench.measure(v, np.repeat(x[None], self.r, axis=0), "input", coherent=True)["coherent"].mean(0))
            except NotImplementedError:
                return False
        ys = np.asarray(ys)
        volts = np.asarray(settings)
        power = volts**2
        dead_g = np.zeros(n, dtype=bool)
        tap_loss = np.sqrt(1 - np.asarray(cal.tap_fraction)[gam])
        for sweep_pass in range(2):
            z = np.stack([_transfer(cal, cal.phases_for_voltages(v), [last]) @ self.w_prev @ x for v in volts])
            psi = np.angle(ys / (z * tap_loss))  # (S, n): γ of each mode at each setting, wrapped
            new_xt = {}
            for m in range(n):
                heater = gam[m]
                rows = slice(0, self.s) if m % 2 == 0 else slice(self.s, 2 * self.s)
                phase = np.unwrap(psi[rows, m])
                design = np.stack([np.ones(self.s), self.sweep_x], axis=1)
                coef, *_ = np.linalg.lstsq(design, phase, rcond=None)
                if coef[1] < 0.5 * self.alpha_guess:
                    dead_g[m] = True
                    self.dead.add(int(heater))
                    cal.alpha[heater] = 0.0
                    cal.phase_offsets[heater] = np.mod(np.mean(phase), TWO_PI)
                    continue
                # every setting, against the first guess: linear in [1, Pγ, Pθ, ΣP(γ±1)]
                nb = [g for g in (m - 1, m + 1) if 0 <= g < n]
                cols = [np.ones(len(volts)), power[:, heater]]
                cols.append(power[:, src[m]] if src[m] >= 0 else np.zeros(len(volts)))
                cols.append(power[:, gam[nb]].sum(1) * (1 - dead_g[nb].all()))
                a = np.stack(cols, axis=1)
                guess = coef[0] + coef[1] * power[:, heater]
                d = np.angle(np.exp(1j * (psi[:, m] - guess)))
                keep = np.abs(a).sum(0) > 0
                keep[2] &= np.ptp(a[:, 2]) > 0
                sol = np.zeros(4)
                sol[keep], *_ = np.linalg.lstsq(a[:, keep], d, rcond=None)
                resid = d - a @ sol
                alpha = coef[1] + sol[1]
                cov = np.linalg.pinv(a[:, keep].T @ a[:, keep]) * np.sum(resid**2) / max(len(d) - keep.sum(), 1)
                sig = np.zeros(4)
                sig[keep] = np.sqrt(np.clip(np.diag(cov), 0, None))
                cal.alpha[heater] = alpha
                cal.phase_offsets[heater] = np.mod(coef[0] + sol[0], TWO_PI)
                self.sigma["phase_offsets"][heater] = sig[0]
                self.sigma["alpha"][heater] = sig[1]
                if keep[2]:
                    for pair in ((heater, int(src[m])), (int(src[m]), heater)):
                        new_xt[pair] = sol[2] / alpha
                        self.xt_sigma[pair] = sig[2] / alpha
                if keep[3]:
                    for g in nb:
                        new_xt[(heater, int(gam[g]))] = sol[3] / alpha
                        self.xt_sigma[(heater, int(gam[g]))] = sig[3] / alpha
                if sweep_pass == 1:
                    self.fits_y[heater] = phase
                    self.fits_m[heater] = design @ coef
                    self.residuals.append(resid)
            self.xt.update(new_xt)
            self._publish_crosstalk()
        return True

    def _gamma_plain(self) -> bool:
        """γ without crosstalk: the parity sweeps alone."""
        cal, k_all, n = self.cal, self.k_all, self.n
        amp = np.sqrt(self.power)
        f_all = np.full(n, amp, dtype=np.complex128)
        x = self._deliver(f_all)
        design = np.stack([np.ones_like(self.sweep_x), self.sweep_x], axis=1)
        for parity in (0, 1):
            modes = np.arange(parity, n, 2)
            heaters = 2 * k_all + modes
            ys = []
            for s in range(self.s):
                v = self.base_v.copy()
                v[heaters] = self.sweep_v[s]
                try:
                    ys.append(self.bench.measure(v, x, "input", coherent=True)["coherent"][0])
                except NotImplementedError:
                    return False
            ys = np.asarray(ys)
            tap_loss = np.sqrt(1 - np.asarray(cal.tap_fraction)[heaters])
            phase = np.unwrap(np.angle(ys[:, modes] / (f_all[modes] * tap_loss)), axis=0)
            coef, *_ = np.linalg.lstsq(design, phase, rcond=None)
            model = design @ coef
            for j, heater in enumerate(heaters):
                if coef[1, j] < 0.5 * self.alpha_guess:
                    self.dead.add(int(heater))
                    cal.alpha[heater] = 0.0
                    cal.phase_offsets[heater] = np.mod(np.mean(phase[:, j]), TWO_PI)
                    continue
                cal.phase_offsets[heater] = np.mod(coef[0, j], TWO_PI)
                cal.alpha[heater] = coef[1, j]
                resid = phase[:, j] - model[:, j]
                sigma = np.sqrt(np.sum(resid**2) / max(self.s - 2, 1) * np.diag(np.linalg.inv(design.T @ design)))
                self.sigma["phase_offsets"][heater] = sigma[0]
                self.sigma["alpha"][heater] = sigma[1]
                self.fits_y[heater] = phase[:, j]
                self.fits_m[heater] = model[:, j]
            self.residuals.append((phase - model).ravel())
        return True
