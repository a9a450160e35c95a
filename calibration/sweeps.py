"""The older ``method="sweeps"`` calibration: per-heater sin² sweeps with light routed through bar states.

θ heaters column by column from the last one with backward light, φ heaters from the first with equal
in-phase light on both inputs, γ from the coherent readout, couplers from split ratios; reliable to
n ≈ 16 and only with the global refinement after it. The frames are described in docs/calibration.md.
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration.bench import Bench
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.fringes import delta_from_split_ratio, fit_fringes, fringe_verdict
from tapmesh.calibration.transfer import TWO_PI, column_transfer, routing_voltages


def sweep_heaters(bench, base_v, heaters, sweep_x, x, side: str, offset, read_taps, alpha_guess: float,
                   visibility_threshold: float, usable_taps):
    """Sweep ``heaters`` together (uniform in V²) from ``base_v`` with the field ``x`` injected on ``side``,
    read the taps of that propagation direction and fit a fringe to the ``read_taps`` columns.

    Returns the readings (S, H) less the camera ``offset``, the fringe fit, and one verdict per read tap
    (:func:`fringe_verdict`, or ``"dark"`` where ``usable_taps`` is False)."""
    direction = "forward" if side == "input" else "backward"
    readings = []
    for v2 in sweep_x:
        v = np.array(base_v, dtype=float)
        v[heaters] = np.sqrt(v2)
        readings.append(bench.measure(v, x, side, taps=direction)["taps"][0])
    readings = np.asarray(readings) - offset
    fringe = fit_fringes(sweep_x, readings[:, read_taps], alpha_guess)
    verdicts = [fringe_verdict(fringe, j, alpha_guess, visibility_threshold) if usable_taps[j] else "dark"
                for j in range(len(read_taps))]
    return readings, fringe, verdicts


def run_sweeps(bench: Bench, cal: Calibration, *, passes: int, sweep_x, offsets, usable, alpha_guess: float,
               visibility_threshold: float, power_mw: float, tap_guess: float, max_delta: float, couplers: bool,
               dead: set, swept: np.ndarray, fits: dict, residuals: dict, notes: list, bar) -> None:
    """The ``"sweeps"`` method's θ, φ and γ sweeps (and, with ``couplers``, the split-ratio δ), ``passes``
    times, each pass routing light through the model of the previous one. Writes into ``cal`` and into
    the procedure's ``dead``, ``swept``, ``fits``, ``residuals`` and ``notes``; ``bar`` is its progress
    bar. ``sweep_x`` (V²), ``offsets`` (2, H) camera dark readings (mW), ``usable`` (2, H) live gratings,
    ``power_mw`` per lit MZI."""
    topology = cal.topology
    n, k_all, n_cols = topology.n, topology.n_mzis, topology.n_columns
    sweep_x = np.asarray(sweep_x)
    sweep_v = np.sqrt(sweep_x)
    sweep_points = len(sweep_x)

    def record(heaters, readings, model):
        fits["sweep_readings"][heaters] = readings.T
        fits["sweep_model"][heaters] = model.T

    amp = np.sqrt(power_mw)
    for sweep_pass in range(passes):
        dead.clear()
        swept[:] = False
        residuals["sweeps"] = []
        phases_now = cal.phase_offsets.copy()
        # --- θ heaters, last column first, light backward into each MZI's top output
        top_only_ratio = np.full(k_all, np.nan)
        for c in reversed(range(n_cols)):
            members = list(topology.columns[c])
            routing = {i: np.pi for cc in range(c + 1, n_cols) for i in topology.columns[cc]}
            base_v = routing_voltages(cal, routing)
            phases_now = cal.phases_for_voltages(base_v)
            after = column_transfer(cal, phases_now, range(c + 1, n_cols), with_gamma=True)
            tops = [topology.mzis[k][1] for k in members]
            g_top = np.zeros(n, dtype=np.complex128)
            g_top[tops] = amp
            g_bottom = np.zeros(n, dtype=np.complex128)
            g_bottom[[m + 1 for m in tops]] = amp
            # backward: the field at the outputs of column c is after.T @ x  ->  x = solve(after.T, g)
            x_top = np.linalg.solve(after.T, g_top)
            x_bottom = np.linalg.solve(after.T, g_bottom)
            phi_taps = [k_all + k for k in members]
            readings, fringe, verdicts = sweep_heaters(
                bench, base_v, members, sweep_x, x_top, "output", offsets[1], phi_taps, alpha_guess,
                visibility_threshold, usable[1, phi_taps])
            bottom = bench.measure(base_v, np.repeat(x_bottom[None], 3, axis=0), "output", taps="backward")["taps"]
            bottom = bottom.mean(0) - offsets[1]
            # reading = A − B cos(θ0 + α x): Bc = −B cos θ0, Bs = B sin θ0
            for j, (k, verdict) in enumerate(zip(members, verdicts)):
                if verdict == "dead":
                    dead.add(k)
                if verdict != "ok":
                    continue  # weak or distorted fringes are left to the refinement (started from a scan)
                cal.phase_offsets[k] = np.mod(np.arctan2(fringe.sin[j], -fringe.cos[j]), TWO_PI)
                cal.alpha[k] = fringe.alpha[j]
                cal.tap_efficiency[1, k_all + k] = (fringe.offset[j] + fringe.amplitude[j]) / power_mw
                swept[k] = True
            record([k for k in members], readings[:, phi_taps], readings[:, phi_taps] + fringe.residuals)  # residual = model − reading
            # output-coupler split ratio at the θ tap (backward grating): top-only cos²κ2, bottom-only sin²κ2
            for k in members:
                if usable[1, k]:
                    top_reading = readings[:, k].mean()
                    top_only_ratio[k] = bottom[k] / top_reading if top_reading > 0 else np.nan
            residuals.setdefault("sweeps", [])
            residuals["sweeps"].append((fringe.residuals / max(power_mw * tap_guess, 1e-30)).ravel())
            bar.update(1)
        if couplers:
            cal.delta[:, 1] = delta_from_split_ratio(top_only_ratio, max_delta)

        # --- φ heaters, first column first, equal in-phase light on both inputs of each MZI
        in_ratio = np.full(k_all, np.nan)
        for c in range(n_cols):
            members = list(topology.columns[c])
            routing = {i: np.pi for cc in range(c) for i in topology.columns[cc]}
            base_v = routing_voltages(cal, routing)
            phases_now = cal.phases_for_voltages(base_v)
            before = column_transfer(cal, phases_now, range(c))
            tops = [topology.mzis[k][1] for k in members]
            f_both = np.zeros(n, dtype=np.complex128)
            f_top = np.zeros(n, dtype=np.complex128)
            f_bottom = np.zeros(n, dtype=np.complex128)
            for m in tops:
                f_both[m] = f_both[m + 1] = amp / np.sqrt(2)
                f_top[m] = amp
                f_bottom[m + 1] = amp
            x_both, x_top, x_bottom = (np.linalg.solve(before, f) for f in (f_both, f_top, f_bottom))
            arrival = before @ x_both
            phi_heaters = [k_all + k for k in members]
            theta_taps = list(members)
            readings, fringe, verdicts = sweep_heaters(
                bench, base_v, phi_heaters, sweep_x, x_both, "input", offsets[0], theta_taps, alpha_guess,
                visibility_threshold, usable[0, theta_taps])
            split = bench.measure(base_v, np.stack([x_top] * 3 + [x_bottom] * 3), "input", taps="forward")["taps"]
            split = split - offsets[0]
            # reading = A + B sin(φ + Δ): Bc = B sin(φ0 + Δ), Bs = B cos(φ0 + Δ)
            for j, (k, verdict) in enumerate(zip(members, verdicts)):
                heater = k_all + k
                if verdict == "dead":
                    dead.add(heater)
                if verdict != "ok":
                    continue  # weak or distorted fringes are left to the refinement (started from a scan)
                m = topology.mzis[k][1]
                delta_in = np.angle(arrival[m]) - np.angle(arrival[m + 1])
                cal.phase_offsets[heater] = np.mod(np.arctan2(fringe.cos[j], fringe.sin[j]) - delta_in, TWO_PI)
                cal.alpha[heater] = fringe.alpha[j]
                swept[heater] = True
                p_top, p_bottom = split[:3, k].mean(), split[3:, k].mean()
                if p_top > 0 and p_bottom > 0:
                    in_ratio[k] = p_bottom / p_top * cal.input_power_ratio(k)
            record(phi_heaters, readings[:, theta_taps], readings[:, theta_taps] + fringe.residuals)  # residual = model − reading
            residuals["sweeps"].append((fringe.residuals / max(power_mw * tap_guess, 1e-30)).ravel())
            bar.update(1)
        if couplers:
            cal.delta[:, 0] = delta_from_split_ratio(in_ratio, max_delta)

        # --- γ heaters, from the coherent readout, even and odd modes apart (neighbours heat each other)
        try:
            routing = {i: np.pi for i in range(k_all)}
            base_v = routing_voltages(cal, routing)
            phases_now = cal.phases_for_voltages(base_v)
            mesh = column_transfer(cal, phases_now, range(n_cols))
            f_all = np.full(n, amp, dtype=np.complex128)
            x_all = np.linalg.solve(mesh, f_all)
            arrival = mesh @ x_all
            for parity in (0, 1):
                modes = np.arange(parity, n, 2)
                heaters = 2 * k_all + modes
                volts = np.repeat(base_v[None, :], sweep_points, axis=0)
                volts[:, heaters] = sweep_v[:, None]
                ys = np.asarray([bench.measure(volts[s], x_all, "input", coherent=True)["coherent"][0]
                                 for s in range(sweep_points)])
                phase = np.unwrap(np.angle(ys[:, modes] / arrival[modes]), axis=0)
                design = np.stack([np.ones_like(sweep_x), sweep_x], axis=1)
                coef, *_ = np.linalg.lstsq(design, phase, rcond=None)
                res = design @ coef - phase
                for j, (m, heater) in enumerate(zip(modes, heaters)):
                    if coef[1, j] < 0.5 * alpha_guess:
                        dead.add(int(heater))
                        continue
                    cal.phase_offsets[heater] = np.mod(coef[0, j], TWO_PI)
                    cal.alpha[heater] = coef[1, j]
                    swept[heater] = True
                fits["sweep_readings"][heaters] = phase.T
                fits["sweep_model"][heaters] = (design @ coef).T
                residuals["sweeps"].append(res.ravel())
        except NotImplementedError:
            bench.coherent = False
            notes.append("chip has no coherent readout: output phases γ are not calibrated (offsets 0, nominal α)")
        bar.update(1)
    residuals["sweeps"] = np.concatenate(residuals["sweeps"]) if residuals.get("sweeps") else np.zeros(0)
