"""Progressive calibration: one MZI column at a time, forward light, each stage a small local fit.

:class:`Progressive` runs stage c for column c: the calibrated columns before it deliver designed fields to
its inputs, φ and θ sweeps, split and arm-only frames (and, with crosstalk, paired sweeps) are read, and
every MZI's φ0, α, δ (and X) come from :func:`~tapmesh.calibration.stage_fit.fit_stage`; γ is read last
(:mod:`tapmesh.calibration.gamma`). The frames, the local model and the measured limits are set out in
docs/calibration.md (the progressive method).
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.crosstalk import Crosstalk
from tapmesh.calibration.fringes import delta_from_split_ratio, fit_fringes, fringe_verdict
from tapmesh.calibration.gamma import gamma_crosstalk, gamma_plain
from tapmesh.calibration.stage_crosstalk import reverse_pairs
from tapmesh.calibration.stage_fit import fit_stage
from tapmesh.calibration.stage_model import TWO_PI
from tapmesh.calibration.transfer import column_transfer


class Progressive:
    """Runs the progressive stages, column by column, against a :class:`~tapmesh.calibration.bench.Bench` (used by
    :func:`~tapmesh.calibration.calibrate`)."""

    def __init__(self, bench, cal: Calibration, offsets, usable, sweep_x, alpha_guess, power_mw, repeats,
                 visibility_threshold, max_delta, crosstalk: bool = True, x_top=25.0):
        self.bench, self.cal, self.offsets, self.usable = bench, cal, offsets, usable
        self.top = top = cal.topology
        self.n, self.k_all, self.h = top.n, top.n_mzis, top.n_shifters
        if sweep_x is not None:
            self.set_sweep(sweep_x)
        # per heater: the law's α as discovered (calibration.discovery) or guessed, rad/V²
        self.alpha_guess = np.broadcast_to(np.asarray(alpha_guess, dtype=float), (self.h,)).copy()
        self.power, self.r = power_mw, repeats
        # per heater: the largest drive² the bench allows (all heaters there at once stays within the
        # declared total power), and what discovery found: heater -> α (None: no full fringe in range)
        self.x_top = np.broadcast_to(np.asarray(x_top, dtype=float), (self.h,)).copy()
        self.discovered: dict[int, float | None] = {}
        self.short_reach: dict[int, float] = {}
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
        self.fit_beta = True  # the cubic term of the heater law, per heater
        self.max_v2 = 0.95 * self.x_top
        self.xt: dict[tuple[int, int], float] = {}
        self.xt_sigma: dict[tuple[int, int], float] = {}
        self.w_prev = np.eye(self.n, dtype=np.complex128)  # prefix before the last calibrated column

    def set_sweep(self, sweep_x) -> None:
        """The fine sweeps' points, drive² (V² or mA²), uniform from 0 (chosen from the discovered laws)."""
        self.sweep_x = np.asarray(sweep_x, dtype=float)
        self.sweep_v = np.sqrt(self.sweep_x)
        self.s = len(self.sweep_x)
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

    def deliver(self, f, prefix=None):
        """Input fields (B, n) that put the fields ``f`` (B, n) at the inputs of the current column (or
        after ``prefix``, a calibrated transfer matrix of the columns before another one)."""
        return np.linalg.solve(self.w if prefix is None else prefix, np.atleast_2d(f).T).T

    def mean_taps(self, volts, x):
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
        keep = cal.segment_keep()
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
            states += [self.moved(self.base_v, before[g::2]) for g in (0, 1)]
        def take(v, f, lit_mask, is_group):
            """``repeat_frames`` camera frames of one setting and one field, averaged."""
            frames_taps.append(self.mean_taps(v, self.deliver(np.repeat(np.atleast_2d(f), self.r, axis=0))))
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
            v_mid[fitted] = self.volts_for(fitted, 0.0, period=np.pi)
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
                measured = reverse_pairs(self, c, members, prev)
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
                    f_arm[m] = amp * a * np.exp(-1j * phases[k_all + k]) / keep[k, 0]
                    f_arm[m + 1] = amp * b / keep[k, 1]
                take(self.base_v, f_arm, group, True)
        frames_v, frames_f = np.asarray(frames_v), np.asarray(frames_f)
        data = (np.asarray(frames_taps), np.asarray(lit), np.asarray(group_frame), prev)
        unmeasured = [j for j in range(mc) if prev[j] >= 0 and (int(prev[j]), k_all + members[j]) not in measured]
        if self.fit_xt and unmeasured:
            # the fields that arrived: the frames' heat reaches column c−1 (moved θ heat their φ; the swept
            # φ of column c heat the θ of column c−1), through the crosstalk known so far. Where (1d) could
            # not measure X(θ'←φ), a first fit gives this column's X(φ←θ'), which (reciprocity) stands for
            # it; then the final fit.
            fit_stage(self, c, members, tops, channels, frames_v, self._arrivals(c, frames_v, frames_f), *data,
                      measured=measured, final=False)
        fit_stage(self, c, members, tops, channels, frames_v, self._arrivals(c, frames_v, frames_f), *data,
                  measured=measured)
        # column c joins the prefix: θ at the bar state, φ at 0 V (where the stage's frames pinned its phase)
        alive_theta = [k for k in members if k not in self.dead]
        self.base_v[alive_theta] = self.volts_for(alive_theta, np.pi)
        self.w_prev = self.w
        self.w = column_transfer(cal, cal.phases_for_voltages(self.base_v), [c]) @ self.w

    def _arrivals(self, c: int, volts, fields):
        """The field (F, n) at column c's inputs in each frame, per the calibrated model: the designed
        field ``fields`` was delivered through the base prefix; in a frame only column c−1 of the prefix
        differs from the base (through its heaters and their crosstalk)."""
        if not self.fit_xt or c == 0:
            return fields
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
                cache[key] = column_transfer(cal, phases, [c - 1]) @ self.w_prev @ w_inv
            out[i] = cache[key] @ fields[i]
        return out

    def volts_for(self, heaters, target, near: float = 0.0, period: float = TWO_PI):
        """Voltages putting ``heaters`` at ``target`` (mod ``period``), on the branch whose V² is nearest
        ``near``."""
        cal = self.cal
        alpha = np.where(cal.alpha[heaters] > 0, cal.alpha[heaters], np.inf)
        need = np.mod(target - cal.phase_offsets[heaters], period)
        wraps = np.clip(np.round((near * alpha - need) / period), 0, None)
        x = (need + period * wraps) / alpha
        x = np.where(x > self.sweep_x[-1] * 1.2, need / alpha, x)
        x = np.where(x > self.max_v2[heaters], np.mod(need, TWO_PI) / alpha, x)  # the branch that fits the limits
        return np.sqrt(np.clip(x, 0.0, self.x_top[heaters]))

    # ---------------------------------------------------------------- first fits (starting points)
    def _apply_fringe(self, heater, fringe, j, phase_offset, readings):
        """One heater's sweep verdict: dead → α = 0 (reported); ok/weak → its φ0 (``phase_offset``, rad) and
        α from fringe ``j``; distorted → left for the stage's fit. The readings and fit are kept for plots."""
        verdict = fringe_verdict(fringe, j, self.alpha_guess[heater], self.vis_threshold)
        if verdict == "dead":
            self.dead.add(heater)
            self.cal.alpha[heater] = 0.0
        elif verdict in ("ok", "weak"):
            self.cal.phase_offsets[heater] = np.mod(phase_offset, TWO_PI)
            self.cal.alpha[heater] = fringe.alpha[j]
        else:
            self.unfitted.add(heater)
        self.fits_y[heater] = readings
        self.fits_m[heater] = readings + fringe.residuals[:, j]  # the fit: residual = model − reading

    def _prefit_phi(self, members, readings):
        k_all = self.k_all
        fringe = fit_fringes(self.sweep_x, readings, self.alpha_guess[[k_all + k for k in members]])
        for j, k in enumerate(members):
            heater = k_all + k
            if not self.usable[0, k]:
                self.unfitted.add(heater)
                self.notes.append(f"φ heater {heater}: its θ tap is dark, φ0 started from a scan")
                continue
            # equal in-phase inputs: reading = A + B sin(φ) → Bc = B sin φ0, Bs = B cos φ0
            self._apply_fringe(heater, fringe, j, np.arctan2(fringe.cos[j], fringe.sin[j]), readings[:, j])

    def _prefit_delta1(self, members, p_top, p_bottom):
        cal = self.cal
        for j, k in enumerate(members):
            if p_top[j] > 0 and p_bottom[j] > 0 and self.usable[0, k]:
                ratio = p_bottom[j] / p_top[j] * cal.input_power_ratio(k)
                cal.delta[k, 0] = delta_from_split_ratio(ratio, self.max_delta)

    def _prefit_theta(self, heaters, sweep, channels):
        # read each MZI's fringe at its bottom-output channel, or at its top-output one if it has none
        use = [(0, bottom) if bottom >= 0 else (1, top) for bottom, top in channels]
        if all(tap < 0 for _, tap in use):
            self.unfitted.update(heaters)
            return
        cols = [tap for _, tap in use if tap >= 0]
        fringe = fit_fringes(self.sweep_x, sweep[:, cols], self.alpha_guess[[k for k, (_, t) in zip(heaters, use) if t >= 0]])
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

    def publish_crosstalk(self) -> None:
        pairs = np.array(list(self.xt.keys()), dtype=int).reshape(-1, 2)
        self.cal.crosstalk = Crosstalk.from_pairs(self.h, pairs, np.array(list(self.xt.values())))

    # ---------------------------------------------------------------- output phases
    def gamma(self) -> bool:
        """Output phases γ from the coherent readout, even and odd modes apart. False if the chip has none."""
        return gamma_crosstalk(self) if self.fit_xt else gamma_plain(self)

    def moved(self, v, heaters):
        """``v`` with each live heater of ``heaters`` moved to the next 2π branch of its phase (a bar state
        stays a bar state, but its heat changes by 2π/α), or where no other branch is in range, off it to
        the far end of the range (the calibrated model then routes the light)."""
        cal = self.cal
        v = v.copy()
        for k in heaters:
            if k in self.dead or cal.alpha[k] <= 0:
                continue
            p_b, d_p = v[k] ** 2, TWO_PI / cal.alpha[k]
            if p_b + d_p <= self.max_v2[k]:
                v[k] = np.sqrt(p_b + d_p)
            elif p_b - d_p >= 0:
                v[k] = np.sqrt(p_b - d_p)
            else:
                v[k] = 0.0 if p_b > self.max_v2[k] / 2 else np.sqrt(self.max_v2[k])
        return v
