"""The calibration procedure: :func:`calibrate` runs the steps on any chip, through the ``Chip`` protocol only.

Camera offsets and fault detection first, then the phase-voltage and coupler step (the progressive stages
of :mod:`tapmesh.calibration.progressive`, or the older :mod:`tapmesh.calibration.sweeps`), thermal
crosstalk, and the global refinement of :mod:`tapmesh.calibration.refine`. What each step measures and
why is in docs/calibration.md.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.bench import Bench
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.chip import check_chip
from tapmesh.calibration.crosstalk import neighbour_pairs
from tapmesh.calibration.errors import CalibrationError
from tapmesh.calibration.progressive import Progressive
from tapmesh.calibration.refine import refine
from tapmesh.calibration.sweeps import run_sweeps
from tapmesh.circuits.arguments import check_float, check_int

STEPS = ("phase_voltage", "couplers", "crosstalk", "refine")


class FaultWarning(UserWarning):
    """A dead heater or dark tap was found; it is reported in the calibration and left out of the fits."""


PRIOR_MAX_COLUMNS = 8
"""Deepest mesh (in MZI columns) whose refinement takes the stages' estimates as a prior. Each stage's
uncertainty is its own local fit's: it leaves out what the column inherits from the columns before it,
which grows with depth. Measured (crosstalk 0.01): at n = 4 and 8 the prior lowered the φ0 error on
every chip; at n = 16 it pulled φ0 toward the stages' worse values (0.0063 → 0.0120 and 0.0049 →
0.0077 rad, corrected F 0.9983 either way)."""


def _stage_prior(uncertainties: dict) -> dict:
    """The progressive stages' 1σ of φ0, α and δ, as the refinement's prior (:func:`~tapmesh.calibration.refine.refine`)."""
    return {name: uncertainties[name] for name in ("phase_offsets", "alpha", "delta") if name in uncertainties}


def _check_arguments(**values) -> None:
    """The numeric arguments of :func:`calibrate`, each in its range (:class:`CalibrationError` naming it)."""
    counts = {"seed": 0, "sweep_points": 5, "passes": 1, "repeat_frames": 1, "refine_settings": 1, "refine_batch": 1,
              "max_refine_parameters": 0}
    for name, minimum in counts.items():
        if values[name] is not None:
            check_int(values[name], name, minimum=minimum, error=CalibrationError)
    positive = {"alpha_guess": "rad/V²", "max_voltage": "V", "power_mw": "mW", "max_delta": "rad"}
    for name, unit in positive.items():
        if values[name] is not None:
            check_float(values[name], name, minimum=0.0, strict_minimum=True, unit=unit, error=CalibrationError)
    check_float(values["tap_guess"], "tap_guess", minimum=0.0, strict_minimum=True, maximum=1.0, error=CalibrationError)
    check_float(values["visibility_threshold"], "visibility_threshold", minimum=0.0, maximum=1.0, error=CalibrationError)


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
    archive=None,
    resume: bool = False,
    archive_images: bool = False,
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
        archive: path of a raw-measurement archive (HDF5, :mod:`tapmesh.calibration.archive`): every chip
            call and reading of the run is appended to it as it is taken, and ``info["archive"]`` names it.
        resume: continue the run recorded in ``archive`` (replayed up to where it stopped, then on
            ``chip``); it must have been recorded with the same options.
        archive_images: also archive the raw camera frames of chips that expose ``last_frames``.

    Raises:
        MeasurementError: the chip returned NaN/inf or a wrongly shaped reading.
        CalibrationError: unknown step names, or a chip whose size does not fit the topology.
    """
    from tqdm.auto import tqdm

    check_chip(chip)
    if method not in ("sweeps", "progressive"):
        raise CalibrationError(f"method must be 'sweeps' or 'progressive', got {method!r}")
    _check_arguments(seed=seed, sweep_points=sweep_points, passes=passes, repeat_frames=repeat_frames,
                     refine_settings=refine_settings, refine_batch=refine_batch, alpha_guess=alpha_guess,
                     tap_guess=tap_guess, max_voltage=max_voltage, power_mw=power_mw,
                     visibility_threshold=visibility_threshold, max_delta=max_delta,
                     max_refine_parameters=max_refine_parameters)
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
    if archive is not None:  # the same run, on a chip that records it (or replays it, then goes on)
        from tapmesh.calibration.replay import archived_run

        return archived_run(calibrate, locals())
    if resume:
        raise CalibrationError("resume=True needs archive= (the archive of the run to continue)")
    refine_power_mw = 1.0 if power_mw is None else power_mw
    if power_mw is None:
        power_mw = 3.0 if method == "progressive" else 1.0
    bench = Bench(chip, n, h)
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
        run_sweeps(bench, cal, passes=passes, sweep_x=sweep_x, offsets=offsets, usable=usable,
                   alpha_guess=alpha_guess, visibility_threshold=visibility_threshold, power_mw=power_mw,
                   tap_guess=tap_guess, max_delta=max_delta, couplers="couplers" in steps, dead=dead,
                   swept=swept, fits=fits, residuals=residuals, notes=notes, bar=bar)
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
        result = refine(
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


def refit(path, **changes):
    """Re-run the recorded calibration's fits on its archive, with no chip (a function beside
    :func:`calibrate`, not a method of :class:`Calibration`: the data class would then import the
    procedure that builds it, a cycle). Raises :class:`~tapmesh.calibration.archive.ArchiveExhaustedError`
    on the archive of a run cut off before its end (resume it on the chip instead).

    ``changes`` override recorded options; one that changes what the run measures makes the replay
    raise :class:`ReplayMismatchError` at the first call that differs."""
    from tapmesh.calibration.archive import Archive, ReplayMismatchError
    from tapmesh.calibration.replay import ReplayChip, call_options, record_archive_note

    with Archive.open(path) as archive:
        options = {**archive.meta.get("options", {}), **changes}
        replay = ReplayChip(archive)
        cal = calibrate(replay, progress=False, **call_options(options))
        if replay.cursor != archive.n_calls:
            raise ReplayMismatchError(f"the refit used {replay.cursor} of the {archive.n_calls} recorded calls: "
                                      "it is not the recorded run (other options or code)")
        record_archive_note(cal, archive, None)
    return cal
