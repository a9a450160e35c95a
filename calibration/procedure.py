"""Calibration of a mesh chip through the :class:`tapmesh.calibration.Chip` protocol only.

Steps (``calibrate(chip, steps=...)``):

0. **camera** (always): dark frames give every grating's offset and read noise; a few frames of random
   light find dark taps (gratings that never see light while the others do).
1. **phase_voltage** and **couplers**, default ``method="progressive"``
   (:mod:`tapmesh.calibration.progressive`): column by column from the first, the calibrated earlier columns
   deliver designed fields to the column's inputs; φ and θ sweeps, split and arm-only frames; each MZI's
   φ0, α (both heaters) and δ (both couplers) from one small least-squares problem on a local model;
   γ from the coherent output readout. Dead heaters (no fringe) and dark taps are reported, not fitted.

   ``method="sweeps"`` (older; reliable to n ≈ 16 with the refinement): per heater a sweep uniform in V²,
   the tap reading fitted to the sin² law ``A ± B·cos(φ0 + α V²)`` (grid search on α, then
   Gauss–Newton), all MZIs of a column in parallel (they share no tap):

   * θ heaters, column by column from the last one back: calibrated later columns are set to the bar
     state (θ = π) and light is injected backward so it reaches only the top output of each MZI of the
     column; that MZI's own φ tap (backward grating, before its φ heater) reads ``C − D·cos θ``.
   * φ heaters, column by column from the first: earlier columns at bar, and the input field chosen
     through the calibrated model of those columns so that each MZI of the column receives equal,
     in-phase light on both inputs; its θ tap (forward) reads ``A + B·sin(φ + Δ)``.
   * γ heaters, from the coherent output readout (if the chip has one), even and odd modes apart.
   * couplers: δ of the input coupler from the split ratio at the θ tap with light on the top input only
     vs the bottom input only (same grating, so its gain cancels), δ of the output coupler likewise with
     backward light.

   A heater whose fringe has no visibility is reported as dead, not fitted (:func:`fringe_verdict`).
3. **crosstalk**: thermal crosstalk between neighbouring heaters. With the progressive method the stages
   estimate it (paired sweeps: a heater swept while its neighbour is held at two powers; see
   :mod:`tapmesh.calibration.progressive`) and model it in the prefix; the refinement, where it runs, starts from
   those values and fits X from settings in which every heater is driven independently.
4. **refine** (where it has at most ``max_refine_parameters`` parameters; after the progressive method
   it is skipped above, n ≳ 24): nonlinear least squares (``scipy.optimize.least_squares``, Jacobian from JAX) of all
   parameters on the differentiable model (:func:`tapmesh.circuits.propagate` with taps) against tap and output
   readings at random voltages and random input fields, forward and backward; 1σ uncertainties from the
   Jacobian.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.errors import CalibrationError, MeasurementError
from tapmesh.calibration.virtual import neighbour_pairs

STEPS = ("phase_voltage", "couplers", "crosstalk", "refine")
TWO_PI = 2 * np.pi


class FaultWarning(UserWarning):
    """A dead heater or dark tap was found; it is reported in the calibration and left out of the fits."""


# ============================================================================= bench wrapper
class _Bench:
    """Every chip access goes through here: validation of what the chip returns, and frame counting."""

    def __init__(self, chip, n: int, h: int):
        self.chip, self.n, self.h = chip, n, h
        self.frames = 0
        self._voltages = None
        self.coherent = True

    def set(self, voltages):
        v = np.asarray(voltages, dtype=float)
        if self._voltages is None or not np.array_equal(v, self._voltages):
            self.chip.set_voltages(v)
            self._voltages = v.copy()

    def _check(self, a, shape, name):
        a = np.asarray(a)
        if a.shape != shape:
            raise MeasurementError(f"chip.{name} returned shape {a.shape}, expected {shape}")
        if not np.all(np.isfinite(a)):
            raise MeasurementError(f"chip.{name} returned NaN or infinity")
        return a

    def measure(self, voltages, x, side="input", taps=None, outputs=False, coherent=False):
        """Set voltages, inject the batch ``x`` (B, n) and read what is asked; returns a dict of arrays."""
        self.set(voltages)
        x = np.atleast_2d(np.asarray(x, dtype=np.complex128))
        self.chip.inject(x, side=side)
        b = x.shape[0]
        out = {}
        if taps:
            out["taps"] = self._check(self.chip.read_taps(taps), (b, self.h), "read_taps").astype(float)
            self.frames += b
        if outputs:
            out["outputs"] = self._check(self.chip.read_outputs(), (b, self.n), "read_outputs").astype(float)
            self.frames += b
        if coherent:
            out["coherent"] = self._check(self.chip.read_outputs_coherent(), (b, self.n), "read_outputs_coherent")
            self.frames += b
        return out


# ============================================================================= model helpers (numpy)
def _coupler(kappa):
    return np.array([[np.cos(kappa), 1j * np.sin(kappa)], [1j * np.sin(kappa), np.cos(kappa)]])


def _transfer(cal: Calibration, phases, columns, with_gamma=False) -> np.ndarray:
    """Model transfer matrix (n, n) of the MZI columns in ``columns`` (in order), optionally then γ."""
    top_of = cal.topology.mzis
    k_all = cal.topology.n_mzis
    t = cal.tap_fraction
    w = np.eye(cal.topology.n, dtype=np.complex128)
    for c in columns:
        for k in cal.topology.columns[c]:
            m = top_of[k][1]
            theta, phi = phases[k], phases[k_all + k]
            block = (
                _coupler(np.pi / 4 + cal.delta[k, 1])
                @ np.diag([np.exp(1j * theta) * np.sqrt(1 - t[k]), 1.0])
                @ _coupler(np.pi / 4 + cal.delta[k, 0])
                @ np.diag([np.exp(1j * phi) * np.sqrt(1 - t[k_all + k]), 1.0])
            )
            w[m : m + 2, :] = block @ w[m : m + 2, :]
    if with_gamma:
        g = phases[2 * k_all :]
        w = (np.exp(1j * g) * np.sqrt(1 - t[2 * k_all :]))[:, None] * w
    return w


def _routing_voltages(cal: Calibration, targets: dict[int, float]) -> np.ndarray:
    """Voltages with the given heaters at the given phases (per the current heater law, crosstalk
    ignored) and every other heater at 0 V."""
    v = np.zeros(cal.n_heaters)
    for i, phase in targets.items():
        if i in cal.dead_heaters or cal.alpha[i] <= 0:
            continue
        need = np.mod(phase - cal.phase_offsets[i], TWO_PI)
        v[i] = np.sqrt(need / cal.alpha[i])
    return v


# ============================================================================= sinusoid fits
@dataclass
class _Fringe:
    offset: np.ndarray     # A
    cos: np.ndarray        # Bc
    sin: np.ndarray        # Bs
    alpha: np.ndarray      # α
    rms: np.ndarray        # residual RMS
    residuals: np.ndarray  # (S, M)

    @property
    def amplitude(self):
        return np.hypot(self.cos, self.sin)


def fit_fringes(x, readings, alpha_guess: float, iterations: int = 12) -> _Fringe:
    """Fit ``readings[:, j] ≈ A_j + Bc_j cos(α_j x) + Bs_j sin(α_j x)`` for every column j.

    ``x`` (S,) is the swept V². A grid search over α (±40 % of ``alpha_guess``) with linear least squares
    for A, Bc, Bs, then damped Gauss–Newton on all four. Vectorized over the M columns."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(readings, dtype=float)
    grid = alpha_guess * np.linspace(0.6, 1.4, 81)
    best_cost = np.full(y.shape[1], np.inf)
    best = np.zeros((y.shape[1], 4))
    for a in grid:
        design = np.stack([np.ones_like(x), np.cos(a * x), np.sin(a * x)], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        cost = np.sum((design @ coef - y) ** 2, axis=0)
        better = cost < best_cost
        best_cost = np.where(better, cost, best_cost)
        best[better, :3] = coef.T[better]
        best[better, 3] = a
    p = best.copy()  # (M, 4): A, Bc, Bs, α
    lam = np.full(y.shape[1], 1e-3)
    def residual(p):
        ax = p[:, 3][None, :] * x[:, None]
        return p[:, 0] + p[:, 1] * np.cos(ax) + p[:, 2] * np.sin(ax) - y
    cost = np.sum(residual(p) ** 2, axis=0)
    for _ in range(iterations):
        ax = p[:, 3][None, :] * x[:, None]
        c, s = np.cos(ax), np.sin(ax)
        jac = np.stack([np.ones_like(c), c, s, x[:, None] * (-p[:, 1] * s + p[:, 2] * c)], axis=2)  # (S, M, 4)
        r = residual(p)
        jtj = np.einsum("smi,smj->mij", jac, jac)
        jtr = np.einsum("smi,sm->mi", jac, r)
        damp = jtj + lam[:, None, None] * np.eye(4) * np.maximum(np.diagonal(jtj, axis1=1, axis2=2)[:, :, None], 1e-30)
        try:
            step = np.linalg.solve(damp, -jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = p + step
        new_cost = np.sum(residual(trial) ** 2, axis=0)
        ok = new_cost < cost
        p = np.where(ok[:, None], trial, p)
        cost = np.where(ok, new_cost, cost)
        lam = np.where(ok, lam * 0.3, lam * 10)
    r = residual(p)
    return _Fringe(p[:, 0], p[:, 1], p[:, 2], p[:, 3], np.sqrt(np.mean(r**2, axis=0)), r)


def delta_from_split_ratio(ratio, max_delta: float) -> np.ndarray:
    """Coupler error δ (rad) from measured cross/bar power ratios ``tan²(π/4 + δ)``; 0 where a ratio is
    unknown (NaN) or the estimate is not below ``max_delta`` (rad)."""
    ratio = np.asarray(ratio, dtype=float)
    estimate = np.arctan(np.sqrt(np.clip(np.nan_to_num(ratio, nan=-1.0), 0, None))) - np.pi / 4
    return np.where(np.isfinite(ratio) & (np.abs(estimate) < max_delta), estimate, 0.0)


def _flat(fringe: _Fringe, j: int) -> bool:
    """No fringe at all: the fitted modulation is within noise (3× the fit's residual RMS). A dead heater
    gives this; light that reaches the tap poorly gives a weak fringe that is still well above noise."""
    return bool(fringe.amplitude[j] <= 3 * fringe.rms[j] + 1e-9 * abs(fringe.offset[j]))


def fringe_verdict(fringe: _Fringe, j: int, alpha_guess: float, visibility_threshold: float) -> str:
    """What a fitted fringe says about its heater: ``"ok"`` (fit it), ``"dead"`` (no fringe at all),
    ``"weak"`` (low visibility but a real fringe: poorly routed light) or ``"distorted"`` (α far from the
    design value). Only ``"ok"`` fringes give starting values; the others are left to later fits."""
    vis = fringe.amplitude[j] / (abs(fringe.offset[j]) + fringe.amplitude[j] + 1e-30)
    if vis < visibility_threshold:
        return "dead" if _flat(fringe, j) else "weak"
    if not 0.5 * alpha_guess < fringe.alpha[j] < 1.5 * alpha_guess:
        return "distorted"
    return "ok"


def _sweep_heaters(bench, base_v, heaters, sweep_x, x, side: str, offset, read_taps, alpha_guess: float,
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


# ============================================================================= the procedure
PRIOR_MAX_COLUMNS = 8
"""Deepest mesh (in MZI columns) whose refinement takes the stages' estimates as a prior. Each stage's
uncertainty is its own local fit's: it leaves out what the column inherits from the columns before it,
which grows with depth. Measured (crosstalk 0.01): at n = 4 and 8 the prior lowered the φ0 error on
every chip; at n = 16 it pulled φ0 toward the stages' worse values (0.0063 → 0.0120 and 0.0049 →
0.0077 rad, corrected F 0.9983 either way)."""


def _stage_prior(uncertainties: dict) -> dict:
    """The progressive stages' 1σ of φ0, α and δ, as the refinement's prior (:func:`refine.refine`)."""
    return {name: uncertainties[name] for name in ("phase_offsets", "alpha", "delta") if name in uncertainties}


def calibrate(
    chip,
    steps=STEPS,
    seed: int = 1,
    progress: bool = True,
    topology: circuits.MeshTopology | None = None,
    sweep_points: int | None = None,
    passes: int = 1,
    method: str = "progressive",
    repeat_frames: int | None = None,
    refine_settings: int | None = None,
    refine_batch: int = 2,
    alpha_guess: float = 0.5,
    tap_guess: float = 0.02,
    max_voltage: float = 5.0,
    power_mw: float | None = None,
    fit_beta: bool = False,
    visibility_threshold: float = 0.25,
    max_delta: float = 0.2,
    max_refine_parameters: int = 6000,
    refine_prior: bool = True,
) -> Calibration:
    """Calibrate ``chip`` (any :class:`tapmesh.calibration.Chip`) and return a :class:`Calibration`.

    Args:
        chip: the chip; touched only through the ``Chip`` protocol.
        steps: any of ``"phase_voltage"``, ``"couplers"``, ``"crosstalk"``, ``"refine"`` (camera offsets and
            fault detection always run).
        seed: seeds the random settings and input fields of the refinement.
        progress: show a tqdm progress bar.
        topology: the mesh; default ``chip.topology`` if the chip has one, else rectangular.
        sweep_points: points per heater sweep, uniform in V² over 1.5 fringe periods (default 16 for
            ``"progressive"``, each averaged over ``repeat_frames`` frames; 24 for ``"sweeps"``).
        passes: times the θ/φ/γ sweeps are repeated (``method="sweeps"``); each pass routes light through
            the model of the previous one.
        method: ``"progressive"`` (default: column by column, each MZI fitted on a local model fed by the
            calibrated earlier columns; see :mod:`tapmesh.calibration.progressive`; works to n = 64 and beyond) or
            ``"sweeps"`` (the older bar-state routing with bare sin² fits; reliable to n ≈ 16 only, and
            only with the refinement). ``"sweeps"`` does not model crosstalk in its sweeps (the
            refinement does); ``"progressive"`` does when ``"crosstalk"`` is in ``steps``.
        repeat_frames: camera frames averaged per setting and field in the progressive method (default 4
            when the global refinement follows and sets the final accuracy, else 16: the stages' noise then
            decides how fast phase errors build up with depth).
        refine_settings: random voltage settings for the refinement (default: enough for ~15 readings per
            parameter).
        refine_batch: input fields per setting and direction.
        alpha_guess, tap_guess: design values of α (rad/V²) and tap fraction.
        max_voltage: the largest voltage applied, V.
        power_mw: optical power per lit MZI in the sweeps, mW (default 1 for ``"sweeps"``, 3 for
            ``"progressive"``, whose readings stay below ~70 % of a camera that reads a 1 mW guide at 20 %;
            the refinement's random fields, which can pile power into one guide, use 1 unless given).
        fit_beta: also fit the cubic coefficient β in the refinement.
        max_delta: split-ratio estimates of |δ| above this (rad) are taken as corrupted and set to 0.
        visibility_threshold: a fringe whose visibility B/(A+|B|) is below this marks a dead heater.
        max_refine_parameters: after ``"sweeps"``, above this many parameters the refinement first drops
            crosstalk, then the camera efficiencies (kept from the sweeps), fitting φ0, α and δ only. After
            ``"progressive"``, a refinement of more parameters than this (crosstalk and efficiencies
            included: n ≳ 24) is skipped, with a note: the stages' result is better than what a cut-down
            global fit reaches in minutes.
        refine_prior: after ``"progressive"`` on meshes of at most :data:`PRIOR_MAX_COLUMNS` columns, the
            refinement takes the stages' φ0, α and δ, with their uncertainties, as a Gaussian prior (a MAP
            fit). Without it the refinement's random settings alone decide the phase offsets, and they pin
            them less well than the stages' targeted readings: over 12 chips at n = 4 and 8 the prior
            lowered the φ0 error by 1.1–6x and never lowered the corrected fidelity.

    Raises:
        MeasurementError: the chip returned NaN/inf or a wrongly shaped reading.
        CalibrationError: unknown step names, or a chip whose size does not fit the topology.
    """
    from tqdm.auto import tqdm

    if method not in ("sweeps", "progressive"):
        raise CalibrationError(f"method must be 'sweeps' or 'progressive', got {method!r}")
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise CalibrationError(f"unknown calibration steps {sorted(unknown)}; choose from {STEPS}")
    n, h = int(chip.n_modes), int(chip.n_heaters)
    if topology is None:
        topology = getattr(chip, "topology", None)
        if not isinstance(topology, circuits.MeshTopology):
            topology = circuits.rectangular(n)
    if topology.n != n or topology.n_shifters != h:
        raise CalibrationError(
            f"chip has {n} modes and {h} heaters; a {topology.kind} mesh on {topology.n} modes has "
            f"{topology.n_shifters}"
        )
    refine_power_mw = 1.0 if power_mw is None else power_mw
    if power_mw is None:
        power_mw = 3.0 if method == "progressive" else 1.0
    bench = _Bench(chip, n, h)
    cal = Calibration.nominal(topology, alpha=alpha_guess, tap_fraction=tap_guess)
    k_all = topology.n_mzis
    n_cols = topology.n_columns
    rng = np.random.default_rng(seed)
    x_max = min(3 * np.pi / alpha_guess, max_voltage**2)
    if sweep_points is None:
        sweep_points = 16 if method == "progressive" else 24
    do_sweeps = "phase_voltage" in steps
    # parameters of a full refinement: φ0, α, two camera efficiencies per heater, δ, neighbour crosstalk
    refine_size = 4 * h + 2 * k_all + len(neighbour_pairs(topology))
    skip_refine = "refine" in steps and method == "progressive" and do_sweeps and refine_size > max_refine_parameters
    if repeat_frames is None:
        repeat_frames = 4 if "refine" in steps and not skip_refine else 16
    sweep_x = np.linspace(0.0, x_max, sweep_points)
    sweep_v = np.sqrt(sweep_x)
    timings, frames_by_step = {}, {}
    total = 2 + ((n_cols + 1 if method == "progressive" else passes * (2 * n_cols + 1)) if do_sweeps else 0) + (1 if "refine" in steps else 0)
    bar = tqdm(total=total, desc="calibrate", disable=not progress, leave=False)
    swept = np.zeros(h, dtype=bool)
    dead: set[int] = set()
    fits: dict[str, np.ndarray] = {"sweep_x": sweep_x, "sweep_readings": np.full((h, sweep_points), np.nan),
                                   "sweep_model": np.full((h, sweep_points), np.nan)}
    residuals: dict[str, np.ndarray] = {}
    uncertainties: dict[str, np.ndarray] = {}
    notes: list[str] = []

    def mark(step, start, frames0):
        timings[step] = time.perf_counter() - start
        frames_by_step[step] = bench.frames - frames0

    # ------------------------------------------------------------- camera: offsets and dark taps
    start, f0 = time.perf_counter(), bench.frames
    zero_v = np.zeros(h)
    dark_frames = 4
    zeros = np.zeros((dark_frames, n))
    d_fwd = bench.measure(zero_v, zeros, "input", taps="forward")["taps"]
    d_bwd = bench.measure(zero_v, zeros, "output", taps="backward")["taps"]
    offsets = np.stack([d_fwd.mean(0), d_bwd.mean(0)])
    read_sigma = float(np.sqrt(np.mean(np.concatenate([d_fwd.var(0), d_bwd.var(0)])))) if dark_frames > 1 else 0.0
    cal.tap_offset = offsets
    probe = (rng.normal(size=(4, n)) + 1j * rng.normal(size=(4, n))) * np.sqrt(power_mw / 2)
    lit_f = bench.measure(zero_v, probe, "input", taps="forward")["taps"] - offsets[0]
    lit_b = bench.measure(zero_v, probe, "output", taps="backward")["taps"] - offsets[1]
    signal = np.stack([lit_f.max(0), lit_b.max(0)])
    floor = 10 * read_sigma + 1e-12
    typical = np.median(signal, axis=1, keepdims=True)
    dark_grating = signal < np.maximum(floor, 0.02 * typical)
    dark_taps = tuple(int(i) for i in np.nonzero(dark_grating.any(0))[0])
    if dark_taps:
        warnings.warn(f"dark taps found (no light at their gratings): {list(dark_taps)}", FaultWarning, stacklevel=2)
        notes.append(f"dark taps {list(dark_taps)}: their readings are excluded from every fit")
    usable = ~dark_grating  # (2, h)
    mark("camera", start, f0)
    bar.update(2)

    # ------------------------------------------------------------- phase-voltage sweeps
    def record(heaters, readings, model):
        fits["sweep_readings"][heaters] = readings.T
        fits["sweep_model"][heaters] = model.T

    if do_sweeps and method == "progressive":
        from tapmesh.calibration.progressive import Progressive

        start, f0 = time.perf_counter(), bench.frames
        stages = Progressive(bench, cal, offsets, usable, sweep_x, alpha_guess, power_mw, repeat_frames,
                             visibility_threshold, max_delta, crosstalk="crosstalk" in steps,
                             max_voltage=max_voltage)
        for c in range(n_cols):
            stages.column(c)
            bar.update(1)
        if not stages.gamma():
            bench.coherent = False
            notes.append("chip has no coherent readout: output phases γ are not calibrated (offsets 0, nominal α)")
            stages.unfitted.update(range(2 * k_all, h))
        bar.update(1)
        dead.update(stages.dead)
        swept[:] = True
        swept[list(stages.unfitted | stages.dead)] = False
        cal.tap_efficiency[0] = stages.efficiency
        for i in stages.fits_y:
            fits["sweep_readings"][i, : len(stages.fits_y[i])] = stages.fits_y[i]
            fits["sweep_model"][i, : len(stages.fits_m[i])] = stages.fits_m[i]
        residuals["stages"] = np.concatenate(stages.residuals) if stages.residuals else np.zeros(0)
        uncertainties.update({name: value.copy() for name, value in stages.sigma.items()})
        if stages.xt_sigma:
            pairs = np.array(list(stages.xt_sigma.keys()), dtype=float).reshape(-1, 2)
            uncertainties["crosstalk_pairs"] = np.column_stack([pairs, list(stages.xt_sigma.values())])
            notes.append(f"crosstalk: {cal.crosstalk.nnz} neighbour pairs estimated in the stages (X θ'←φ of "
                         "the previous column and X θ←γ taken equal to their reverse pairs)")
        notes.extend(stages.notes)
        mark("phase_voltage", start, f0)
    elif do_sweeps:
        start, f0 = time.perf_counter(), bench.frames
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
                base_v = _routing_voltages(cal, routing)
                phases_now = cal.phases_for_voltages(base_v)
                after = _transfer(cal, phases_now, range(c + 1, n_cols), with_gamma=True)
                tops = [topology.mzis[k][1] for k in members]
                g_top = np.zeros(n, dtype=np.complex128)
                g_top[tops] = amp
                g_bottom = np.zeros(n, dtype=np.complex128)
                g_bottom[[m + 1 for m in tops]] = amp
                # backward: the field at the outputs of column c is after.T @ x  ->  x = solve(after.T, g)
                x_top = np.linalg.solve(after.T, g_top)
                x_bottom = np.linalg.solve(after.T, g_bottom)
                phi_taps = [k_all + k for k in members]
                readings, fringe, verdicts = _sweep_heaters(
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
                record([k for k in members], readings[:, phi_taps], readings[:, phi_taps] - fringe.residuals)
                # output-coupler split ratio at the θ tap (backward grating): top-only cos²κ2, bottom-only sin²κ2
                for k in members:
                    if usable[1, k]:
                        top_reading = readings[:, k].mean()
                        top_only_ratio[k] = bottom[k] / top_reading if top_reading > 0 else np.nan
                residuals.setdefault("sweeps", [])
                residuals["sweeps"].append((fringe.residuals / max(power_mw * tap_guess, 1e-30)).ravel())
                bar.update(1)
            if "couplers" in steps:
                cal.delta[:, 1] = delta_from_split_ratio(top_only_ratio, max_delta)

            # --- φ heaters, first column first, equal in-phase light on both inputs of each MZI
            in_ratio = np.full(k_all, np.nan)
            for c in range(n_cols):
                members = list(topology.columns[c])
                routing = {i: np.pi for cc in range(c) for i in topology.columns[cc]}
                base_v = _routing_voltages(cal, routing)
                phases_now = cal.phases_for_voltages(base_v)
                before = _transfer(cal, phases_now, range(c))
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
                readings, fringe, verdicts = _sweep_heaters(
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
                    t_phi = cal.tap_fraction[heater]
                    if p_top > 0 and p_bottom > 0:
                        in_ratio[k] = p_bottom / p_top * (1 - t_phi)
                record(phi_heaters, readings[:, theta_taps], readings[:, theta_taps] - fringe.residuals)
                residuals["sweeps"].append((fringe.residuals / max(power_mw * tap_guess, 1e-30)).ravel())
                bar.update(1)
            if "couplers" in steps:
                cal.delta[:, 0] = delta_from_split_ratio(in_ratio, max_delta)

            # --- γ heaters, from the coherent readout, even and odd modes apart (neighbours heat each other)
            try:
                routing = {i: np.pi for i in range(k_all)}
                base_v = _routing_voltages(cal, routing)
                phases_now = cal.phases_for_voltages(base_v)
                mesh = _transfer(cal, phases_now, range(n_cols))
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
        mark("phase_voltage", start, f0)

    if dead:
        warnings.warn(f"dead heaters found (no fringe): {sorted(dead)}", FaultWarning, stacklevel=2)
        notes.append(f"dead heaters {sorted(dead)}: α set to 0, their phase is fitted as a constant")
    cal.dead_heaters = tuple(sorted(dead))
    cal.dark_taps = dark_taps
    for i in dead:
        cal.alpha[i] = 0.0

    # ------------------------------------------------------------- global refinement
    if skip_refine:
        notes.append(f"refinement skipped: about {refine_size} parameters exceed max_refine_parameters="
                     f"{max_refine_parameters}; the progressive stages' estimates and uncertainties are kept "
                     "(no crosstalk fitted)")
        bar.update(1)
    elif "refine" in steps:
        start, f0 = time.perf_counter(), bench.frames
        from tapmesh.calibration import refine as _refine

        result = _refine.refine(
            bench,
            cal,
            rng=rng,
            settings=refine_settings,
            batch=refine_batch,
            max_voltage=min(max_voltage, float(np.sqrt(x_max))),
            fit_crosstalk="crosstalk" in steps,
            fit_couplers="couplers" in steps or not do_sweeps,
            fit_beta=fit_beta,
            usable=usable,
            unswept=~swept,
            max_parameters=max_refine_parameters,
            power_mw=refine_power_mw,
            prior=_stage_prior(uncertainties) if refine_prior and method == "progressive" and do_sweeps
            and n_cols <= PRIOR_MAX_COLUMNS else None,
        )
        uncertainties.update(result["uncertainties"])
        residuals["refine"] = result["residuals"]
        notes.extend(result["notes"])
        mark("refine", start, f0)
        bar.update(1)
    bar.close()
    cal.uncertainties = uncertainties
    cal.residuals = residuals
    cal.fits = fits
    cal.n_measurements = bench.frames
    cal.info = {"timings_s": timings, "frames": frames_by_step, "notes": notes, "steps": list(steps),
                "read_noise_mw": read_sigma, "sweep_points": sweep_points}
    return cal
