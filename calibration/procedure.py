"""The calibration procedure: :func:`calibrate` runs the steps on any chip, through the ``Chip`` protocol only.

The plan from the chip's declared capabilities (:mod:`tapmesh.calibration.planning`), camera offsets, noise
floor and fault detection first, the heater-law discovery (:mod:`tapmesh.calibration.discovery`), then the
phase-voltage and coupler step (the progressive stages
of :mod:`tapmesh.calibration.progressive`, or the older :mod:`tapmesh.calibration.sweeps`), thermal
crosstalk (with no chip map, the pairs measured by :mod:`tapmesh.calibration.screening`), the global refinement of :mod:`tapmesh.calibration.refine`, and the verdict
(:mod:`tapmesh.calibration.quality`). What each step measures and
why is in docs/calibration.md.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.bench import Bench
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.capabilities import capabilities_of
from tapmesh.calibration.discovery import discover_column
from tapmesh.calibration.chip import check_chip
from tapmesh.calibration.errors import CalibrationError
from tapmesh.calibration.neighbours import crosstalk_pairs
from tapmesh.calibration.planning import fine_sweep, measure_camera, plan_steps, without_backward_light
from tapmesh.calibration.progressive import Progressive
from tapmesh.calibration.quality import assess, enforce
from tapmesh.calibration.refine import refine
from tapmesh.calibration import screening
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
    alpha_guess: float | None = None,
    tap_guess: float = 0.02,
    balanced_taps: bool | None = None,
    max_voltage: float | None = None,
    power_mw: float | None = None,
    fit_beta: bool = False,
    visibility_threshold: float = 0.25,
    max_delta: float = 0.2,
    max_refine_parameters: int = 6000,
    refine_prior: bool = True,
    strict: bool = True,
    chip_map=None,
    neighbours=None,
    neighbour_distance_um: float | None = None,
    screen_crosstalk: bool | None = None,
    quality_targets: int = 3,
    min_fidelity: float = 0.9,
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
        alpha_guess: a hint of the heaters' α (rad/V², or rad/mA² for a current drive): it only makes the
            heater-law discovery start nearer the answer (:mod:`tapmesh.calibration.discovery`); the law
            of every heater is found from the chip either way.
        tap_guess: design tap fraction.
        balanced_taps: the layout draws a dummy tap beside every monitor tap (``pcells.mesh(balanced_taps=
            True)``): the model carries them as nominal loss (:meth:`Calibration.nominal`). ``None``: what
            ``chip_map.balanced_taps`` says, else ``False``.
        max_voltage: an extra cap on the drive, V or mA, below the chip's declared limits (default: the
            declared ``capabilities`` limits alone). No frame is ever taken outside them.
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
        strict: a calibration whose quality verdict fails (:mod:`tapmesh.calibration.quality`) raises
            :class:`~tapmesh.calibration.quality.CalibrationQualityError` carrying it (``True``, default);
            ``False`` returns it with a :class:`~tapmesh.calibration.quality.QualityWarning`.
        chip_map, neighbours, neighbour_distance_um: where the crosstalk pairs come from
            (:func:`tapmesh.calibration.neighbours.crosstalk_pairs`): explicit ``neighbours`` pairs, else
            pairs of heaters of a chip map (``pcells.chip_map`` object or an (H, 2) positions array, µm)
            within ``neighbour_distance_um``, else the mesh's neighbour grid and what the screening measures.
        screen_crosstalk: measure which heaters couple (:mod:`tapmesh.calibration.screening`) after the
            phase-voltage stages and add the pairs found to the model and the refinement. ``None``
            (default): only when neither ``chip_map`` nor ``neighbours`` is given, the crosstalk and
            phase-voltage steps run with the progressive method, and the mesh has at most
            :data:`~tapmesh.calibration.screening.AUTO_MAX_HEATERS` heaters (n = 32; larger: skipped with a note); ``True`` also beside a map (a check of
            it); ``False`` never. Its frames and bench time are ``info["frames"]["screening"]`` and
            ``info["bench_seconds"]["screening"]``, its findings ``info["screening"]``.
        quality_targets: Haar targets the verdict's predicted fidelity is computed on.
        min_fidelity: the verdict fails when its predicted fidelity's lower bound is below this.
        archive: path of a raw-measurement archive (HDF5, :mod:`tapmesh.calibration.archive`): every chip
            call and reading of the run is appended to it as it is taken, and ``info["archive"]`` names it.
        resume: continue the run recorded in ``archive`` (replayed up to where it stopped, then on
            ``chip``); it must have been recorded with the same options.
        archive_images: also archive the raw camera frames of chips that expose ``last_frames``.

    Raises:
        MeasurementError: the chip returned NaN/inf or a wrongly shaped reading.
        CalibrationError: unknown step names, or a chip whose size does not fit the topology.
        MissingCapabilityError: before the first frame, for a step the bench declares it cannot do.
        CalibrationQualityError: with ``strict``, the verdict failed (the calibration is ``err.calibration``).
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
    if balanced_taps is None:
        balanced_taps = bool(getattr(chip_map, "balanced_taps", False))
    if balanced_taps not in (True, False):
        raise CalibrationError(f"balanced_taps must be True, False or None (from chip_map), got {balanced_taps!r}")
    if screen_crosstalk not in (None, True, False):
        raise CalibrationError(f"screen_crosstalk must be None (automatic), True or False, got {screen_crosstalk!r}")
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
    if alpha_guess is not None and not (np.isfinite(alpha_guess) and alpha_guess > 0):
        raise CalibrationError(f"alpha_guess must be a positive number (rad/V²) or None, got {alpha_guess!r}")
    caps = capabilities_of(chip)
    plan = plan_steps(caps, steps, method, topology, h, max_voltage)
    pairs = crosstalk_pairs(topology, neighbours=neighbours, chip_map=chip_map,
                            distance_um=neighbour_distance_um)
    refine_power_mw = 1.0 if power_mw is None else power_mw
    if power_mw is None:
        power_mw = 3.0 if method == "progressive" else 1.0
    bench = Bench(chip, n, h, caps)
    hint = 0.5 if alpha_guess is None else float(alpha_guess)
    cal = Calibration.nominal(topology, alpha=hint, tap_fraction=tap_guess, balanced_taps=balanced_taps)
    k_all = topology.n_mzis
    n_cols = topology.n_columns
    rng = np.random.default_rng(seed)
    if sweep_points is None:
        sweep_points = 16 if method == "progressive" else 24
    do_sweeps = "phase_voltage" in steps
    do_refine = "refine" in steps and plan.refine
    # parameters of a full refinement: φ0, α, two camera efficiencies per heater, δ, neighbour crosstalk
    refine_size = 4 * h + 2 * k_all + len(pairs)
    skip_refine = do_refine and method == "progressive" and do_sweeps and refine_size > max_refine_parameters
    repeat_auto = repeat_frames is None
    if repeat_auto:
        repeat_frames = 4 if do_refine and not skip_refine else 16
    timings, frames_by_step = {}, {}
    total = 2 + ((n_cols + 1 if method == "progressive" else passes * (2 * n_cols + 1)) if do_sweeps else 0) + (1 if do_refine else 0)
    bar = tqdm(total=total, desc="calibrate", disable=not progress, leave=False)
    swept = np.zeros(h, dtype=bool)
    dead: set[int] = set()
    residuals: dict[str, np.ndarray] = {}
    uncertainties: dict[str, np.ndarray] = {}
    notes: list[str] = list(plan.notes)

    def mark(step, start, frames0):
        timings[step] = time.perf_counter() - start
        frames_by_step[step] = bench.frames - frames0
        bench.clock.step = "next"  # what runs between steps is charged apart (nothing, as written)

    def begin(step):
        bench.clock.step = step
        return time.perf_counter(), bench.frames

    # ------------------------------------------------------------- camera: offsets, noise floor, dark taps
    start, f0 = begin("camera")
    camera = measure_camera(bench, rng, power_mw, plan.backward)
    offsets, usable = camera["offsets"], camera["usable"]
    read_sigma = camera["read_noise_mw"]
    cal.tap_offset = offsets
    dark_taps = camera["dark_taps"]
    if camera["backward_dark"]:
        warnings.warn("light from the output side reaches none of the backward gratings: the output-side source, "
                      "the switch or the camera's backward spots do not work; calibrating as a bench without "
                      "an output-side source", FaultWarning, stacklevel=2)
        caps, plan = without_backward_light(caps, plan, steps, method, topology, h, max_voltage)
        notes.extend(note for note in plan.notes if note not in notes)
        do_refine = "refine" in steps and plan.refine
        skip_refine = skip_refine and do_refine
        repeat_frames = (4 if do_refine and not skip_refine else 16) if repeat_auto else repeat_frames
    if dark_taps:
        warnings.warn(f"dark taps found (no light at their gratings): {list(dark_taps)}", FaultWarning, stacklevel=2)
        notes.append(f"dark taps {list(dark_taps)}: their readings are excluded from every fit")
    mark("camera", start, f0)
    bar.update(2)

    # ------------------------------------------------------------- heater-law discovery (column 0)
    start, f0 = begin("discovery")
    stages = Progressive(bench, cal, offsets, usable, None, hint, power_mw, repeat_frames,
                         visibility_threshold, max_delta, crosstalk="crosstalk" in steps, x_top=plan.x_top)
    reading_noise = camera["noise_mw"] / np.sqrt(max(1, repeat_frames // 2))
    if alpha_guess is not None:
        stages.discovered[-1] = float(alpha_guess)  # a hint: discovery starts near it
    discover_column(stages, 0, reading_noise)
    stages.discovered.pop(-1, None)
    sweep_x = fine_sweep(stages, plan.x_top, sweep_points, hint)
    stages.set_sweep(sweep_x)
    cal.alpha[:] = stages.alpha_guess
    mark("discovery", start, f0)
    first_discovery = (timings["discovery"], frames_by_step["discovery"])
    fits: dict[str, np.ndarray] = {"sweep_x": sweep_x, "sweep_readings": np.full((h, sweep_points), np.nan),
                                   "sweep_model": np.full((h, sweep_points), np.nan)}

    # ------------------------------------------------------------- phase-voltage sweeps
    if do_sweeps and method == "progressive":
        start, f0 = begin("phase_voltage")
        for c in range(n_cols):
            if c:
                t0, d0 = time.perf_counter(), bench.frames
                bench.clock.step = "discovery"
                found = discover_column(stages, c, reading_noise)
                bench.clock.step = "phase_voltage"
                cal.alpha[list(found)] = stages.alpha_guess[list(found)]
                timings["discovery"] += time.perf_counter() - t0
                frames_by_step["discovery"] += bench.frames - d0
            stages.column(c)
            bar.update(1)
        if not plan.coherent_gamma or not stages.gamma():
            bench.coherent = False
            if plan.backward and do_refine and not skip_refine:
                notes.append("no coherent readout: output phases γ fitted by the refinement from backward light, "
                             "up to one common phase")
            else:
                plan.degraded.append("output_phases")
                notes.append("no coherent readout and no backward light: output phases γ are not calibrated "
                             "(offsets 0): unitaries are realized up to output phases")
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
            xt_pairs = np.array(list(stages.xt_sigma.keys()), dtype=float).reshape(-1, 2)
            uncertainties["crosstalk_pairs"] = np.column_stack([xt_pairs, list(stages.xt_sigma.values())])
            notes.append(f"crosstalk: {cal.crosstalk.nnz} neighbour pairs estimated in the stages (X θ'←φ of "
                         "the previous column and X θ←γ taken equal to their reverse pairs)")
        notes.extend(stages.notes)
        mark("phase_voltage", start, f0)
        timings["phase_voltage"] -= timings["discovery"] - first_discovery[0]
        frames_by_step["phase_voltage"] -= frames_by_step["discovery"] - first_discovery[1]
    elif do_sweeps:
        start, f0 = begin("phase_voltage")
        run_sweeps(bench, cal, passes=passes, sweep_x=sweep_x, offsets=offsets, usable=usable,
                   alpha_guess=float(np.median(stages.alpha_guess)), visibility_threshold=visibility_threshold,
                   power_mw=power_mw, tap_guess=tap_guess, max_delta=max_delta, couplers="couplers" in steps,
                   dead=dead, swept=swept, fits=fits, residuals=residuals, notes=notes, bar=bar)
        mark("phase_voltage", start, f0)

    if dead:
        warnings.warn(f"dead heaters found (no fringe): {sorted(dead)}", FaultWarning, stacklevel=2)
        notes.append(f"dead heaters {sorted(dead)}: α set to 0, their phase is fitted as a constant")
    cal.dead_heaters = tuple(sorted(dead))
    cal.dark_taps = dark_taps
    for i in dead:
        cal.alpha[i] = 0.0

    # ------------------------------------------------------------- crosstalk screening (no chip map)
    screened = None
    if screen_crosstalk is None and do_sweeps and "crosstalk" in steps:
        screen_crosstalk = screening.automatic(h, chip_map is not None or neighbours is not None,
                                               method == "progressive", notes)
    if screen_crosstalk and do_sweeps and "crosstalk" in steps:
        start, f0 = begin("screening")
        screened, pairs = screening.step(bench, cal, stages, offsets, usable, power_mw, seed, read_sigma, pairs,
                                         uncertainties, notes)
        mark("screening", start, f0)

    # ------------------------------------------------------------- global refinement
    x_max = float(sweep_x[-1])
    if skip_refine:
        notes.append(f"refinement skipped: about {refine_size} parameters exceed max_refine_parameters="
                     f"{max_refine_parameters}; the progressive stages' estimates and uncertainties are kept "
                     "(no crosstalk fitted)")
        bar.update(1)
    elif do_refine:
        start, f0 = begin("refine")
        result = refine(
            bench,
            cal,
            rng=rng,
            settings=refine_settings,
            batch=refine_batch,
            max_voltage=float(np.sqrt(min(x_max, float(np.min(plan.x_top))))),
            fit_crosstalk="crosstalk" in steps,
            fit_couplers="couplers" in steps or not do_sweeps,
            fit_beta=True if fit_beta else cal.beta != 0,  # only the β the stages resolved (docs/calibration.md)
            usable=usable,
            unswept=~swept,
            max_parameters=max_refine_parameters,
            power_mw=refine_power_mw,
            prior=_stage_prior(uncertainties) if refine_prior and method == "progressive" and do_sweeps
            and n_cols <= PRIOR_MAX_COLUMNS else None,
            pairs=pairs,
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
    clock = bench.clock.summary()
    cal.info = {"timings_s": timings, "frames": frames_by_step, "notes": notes, "steps": list(steps),
                "read_noise_mw": read_sigma, "noise_floor_mw": camera["noise_mw"], "repeat_frames": repeat_frames,
                "sweep_points": sweep_points, "drive": caps.drive, "drive_limits": [plan.low.tolist(), plan.high.tolist()],
                "discovered_alpha": {int(k): v for k, v in stages.discovered.items()},
                "short_reach": {int(k): v for k, v in stages.short_reach.items()},
                "degraded": list(plan.degraded), "skipped": list(plan.skipped),
                "declared_tap_noise_mw": caps.tap_noise_mw, "settings": bench.settings,
                "saturation": {"camera_saturation_mw": caps.camera_saturation_mw, "tap_readings": bench.tap_readings,
                               "saturated_readings": bench.saturated_readings},
                "stage_scale_mw": float(np.mean(cal.tap_fraction) * power_mw),
                "refine_scale_mw": float(np.mean(cal.tap_fraction) * 0.5 * refine_power_mw),
                "bench_seconds": {**clock["by_step"], "total": clock["total_s"]}, "bench_time": clock}
    if screened is not None:
        cal.info["screening"] = screened.info()
    cal.quality = assess(cal, targets=quality_targets, seed=seed, min_fidelity=min_fidelity)
    enforce(cal, strict)
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
