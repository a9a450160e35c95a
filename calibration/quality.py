"""The verdict on a calibration, computed from its own data: does what it measured support what it claims?

:func:`assess` compares every step's residuals with the noise floor the camera step measured, lists the
heaters whose fits failed and why, the steps skipped or degraded, and predicts the fidelity on Haar targets
with an uncertainty (the fitted parameters' uncertainties, scaled by how far the residuals exceed the noise,
drawn and propagated through the calibrated model). :func:`enforce` raises
:class:`CalibrationQualityError` (or warns) on a failed verdict. The criteria are set out in
docs/calibration.md ("The verdict").
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.errors import CalibrationError

RESIDUAL_LIMIT = 4.0
"""The final step (the refinement where it ran, else the stages) fails when its residual RMS exceeds this
many times the noise it should show."""
NOISE_LIMIT = 10.0
"""The camera fails when its measured read noise exceeds this many times the noise the bench declares."""
FAILED_FRACTION = 0.2
"""The calibration fails when more than this fraction of its heaters failed their fits."""
SATURATED_LIMIT = 1e-3
"""Above this fraction of tap readings at the camera's declared saturation the verdict lists the camera as
degraded (a clipped reading is not the power the fits take it for). It does not fail on that alone: at n = 4
the fits held F 0.9998 with 5 % of readings clipped, and where clipping does spoil them (28 %) the residuals
and the predicted fidelity fail the verdict."""
DRAWS = 24
"""Parameter draws per target in the fidelity prediction."""


class CalibrationQualityError(CalibrationError):
    """The calibration's verdict failed; ``calibration`` is the partial result, ``quality`` the verdict."""

    def __init__(self, calibration):
        self.calibration = calibration
        self.quality = calibration.quality
        super().__init__("calibration failed its quality verdict: " + "; ".join(self.quality.reasons)
                         + " (the partial calibration is err.calibration; save it with err.save(path), which "
                         "writes beside path, never over it)")

    def save(self, path):
        """Save the partial calibration beside ``path`` (:func:`failed_path`); returns where it went."""
        return self.calibration.save(path)


class QualityWarning(UserWarning):
    """A calibration failed its quality verdict and ``strict=False`` returned it anyway."""


@dataclass
class Quality:
    """The verdict (module doc). Fidelities are on ``targets`` Haar targets; ``fidelity_low`` is the 5th
    percentile of the predicted distribution, the figure the verdict checks."""

    passed: bool
    reasons: list = field(default_factory=list)
    steps: dict = field(default_factory=dict)
    failed_heaters: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    degraded: list = field(default_factory=list)
    predicted_fidelity: float = float("nan")
    fidelity_sigma: float = float("nan")
    fidelity_low: float = float("nan")
    targets: int = 0
    up_to_output_phases: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed_heaters"] = {str(k): v for k, v in self.failed_heaters.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Quality":
        d = dict(d)
        d["failed_heaters"] = {int(k): v for k, v in d.get("failed_heaters", {}).items()}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def summary(self) -> str:
        """One paragraph for a lab notebook or a CLI."""
        head = "PASSED" if self.passed else "FAILED"
        text = (f"calibration {head}: predicted fidelity {self.predicted_fidelity:.4f} ± {self.fidelity_sigma:.4f} "
                f"(5th percentile {self.fidelity_low:.4f}, {self.targets} Haar targets"
                f"{', up to output phases' if self.up_to_output_phases else ''})")
        if self.reasons:
            text += "; failed because: " + "; ".join(self.reasons)
        if self.degraded:
            text += "; degraded: " + ", ".join(self.degraded)
        return text


def fidelity_up_to_output_phases(u: np.ndarray, v: np.ndarray) -> float:
    """The fidelity of :func:`tapmesh.circuits.fidelity` maximized over output phases (a diagonal D):
    max_D |tr(U† D V)|² / (tr(U†U) tr(V†V)) = (Σ_i |(V U†)_ii|)² / (tr(U†U) tr(V†V))."""
    u, v = np.asarray(u), np.asarray(v)
    overlap = float(np.sum(np.abs(np.einsum("ij,ij->i", v, u.conj())))) ** 2
    return overlap / (float(np.real(np.vdot(u, u))) * float(np.real(np.vdot(v, v))))


def _step_checks(cal, q: Quality) -> None:
    info = cal.info
    floor = float(info.get("noise_floor_mw", 0.0))
    read = float(info.get("read_noise_mw", 0.0))
    declared = info.get("declared_tap_noise_mw")
    camera = {"read_noise_mw": read, "noise_floor_mw": floor}
    if declared:
        camera["declared_mw"] = float(declared)
        camera["ratio"] = read / float(declared)
        if read > NOISE_LIMIT * float(declared):
            q.reasons.append(f"camera read noise {read:.3g} mW is {read / float(declared):.0f}× the "
                             f"{float(declared):.3g} mW the bench declares")
    saturation = info.get("saturation") or {}
    if saturation.get("camera_saturation_mw") is not None and saturation.get("tap_readings"):
        clipped, total = int(saturation["saturated_readings"]), int(saturation["tap_readings"])
        camera["saturated_fraction"] = clipped / total
        if clipped > SATURATED_LIMIT * total:
            q.degraded.append(f"camera saturated in {clipped} of {total} tap readings ({clipped / total:.2%}) at "
                              f"{saturation['camera_saturation_mw']:.3g} mW: lower the input power or the camera gain")
    q.steps["camera"] = camera
    screened = info.get("screening")
    if screened:  # crosstalk screening (no chip map): what it found and what it cost
        q.steps["screening"] = {"new_pairs": len(screened["new_pairs"]),
                                "corrected_pairs": len(screened["corrected_pairs"]), "settings": screened["settings"],
                                "frames": screened["frames"], "threshold_sigma": screened["z"],
                                "chi2_median": screened["chi2_median"]}
    r = int(info.get("repeat_frames", 1))
    checks = (("stages", info.get("stage_scale_mw"), np.sqrt(r)), ("refine", info.get("refine_scale_mw"), 1.0))
    for name, scale, averaging in checks:
        res = cal.residuals.get(name)
        if res is None or not np.size(res) or not scale:
            continue
        rms = float(np.sqrt(np.mean(np.square(res)))) * float(scale)
        # a perfect camera has no floor: residuals below 1e-4 of the signal scale count as noise
        expected = max(floor / averaging, 1e-4 * float(scale))
        ratio = rms / expected if expected > 0 else float("inf")
        # the global refinement, where it ran, refits everything: its residuals judge the final model
        final = name == "refine" or not np.size(cal.residuals.get("refine", []))
        q.steps[name] = {"rms_mw": rms, "noise_mw": expected, "ratio": ratio, "final": final}
        if ratio > RESIDUAL_LIMIT and final:
            q.reasons.append(f"step {name!r}: residual RMS {rms:.3g} mW is {ratio:.1f}× the noise floor "
                             f"{expected:.3g} mW it measured (the model does not explain the chip)")


def _heater_checks(cal, q: Quality) -> None:
    h = cal.n_heaters
    for i in cal.dead_heaters:
        q.failed_heaters[int(i)] = "no fringe: dead heater (α set to 0)"
    for i, reach in cal.info.get("short_reach", {}).items():
        i = int(i)
        if i in q.failed_heaters:
            continue
        q.failed_heaters[i] = (f"reaches only {float(reach):.2f} rad within the declared drive limits (needs 2π)"
                               if float(reach) > 0 else "no fringe found over the whole drive range")
    for t in cal.dark_taps:
        q.failed_heaters.setdefault(int(t), "its tap is dark: fitted through other taps only")
    sigma = cal.uncertainties.get("phase_offsets")
    if sigma is not None:
        for i in np.flatnonzero(np.asarray(sigma) > 0.2):
            q.failed_heaters.setdefault(int(i), f"φ0 uncertain by {float(sigma[i]):.2f} rad")
    reach_short = [i for i, why in q.failed_heaters.items() if why.startswith("reaches only")]
    if reach_short:
        q.reasons.append(f"heaters {reach_short[:8]} cannot reach 2π within the declared limits")
    if len(q.failed_heaters) > FAILED_FRACTION * h:
        q.reasons.append(f"{len(q.failed_heaters)} of {h} heaters failed their fits")


def _draw(cal, rng: np.random.Generator, inflate: float):
    """A copy of ``cal``'s heater law and couplers with errors drawn from its uncertainties × ``inflate``."""
    from copy import copy

    other = copy(cal)
    unc = cal.uncertainties
    h = cal.n_heaters
    sig_phi = np.nan_to_num(np.asarray(unc.get("phase_offsets", np.zeros(h)), dtype=float), nan=0.0)
    sig_alpha = np.nan_to_num(np.asarray(unc.get("alpha", np.zeros(h)), dtype=float), nan=0.0)
    other.phase_offsets = cal.phase_offsets + inflate * sig_phi * rng.normal(size=h)
    other.alpha = cal.alpha + inflate * sig_alpha * rng.normal(size=h)
    if "delta" in unc:
        sig_d = np.nan_to_num(np.asarray(unc["delta"], dtype=float), nan=0.0)
        other.delta = cal.delta + inflate * sig_d * rng.normal(size=cal.delta.shape)
    xt = unc.get("crosstalk_pairs")
    if xt is not None and len(xt) and cal.crosstalk.nnz:
        pairs = np.asarray(xt[:, :2], dtype=int)
        values = cal.crosstalk.values_at(pairs) + inflate * np.nan_to_num(xt[:, 2]) * rng.normal(size=len(pairs))
        from tapmesh.calibration.crosstalk import Crosstalk

        other.crosstalk = Crosstalk.from_pairs(h, pairs, values)
    return other


def _predict(cal, q: Quality, targets: int, seed: int, inflate: float) -> None:
    n = cal.topology.n
    rng = np.random.default_rng([seed, 1313])
    up_to_phases = "output_phases" in q.degraded
    score = fidelity_up_to_output_phases if up_to_phases else (lambda u, v: float(circuits.fidelity(u, v)))
    values = []
    for t in range(targets):
        u = circuits.haar_unitary(n, seed=int(rng.integers(2**31)))
        try:
            volts = cal.correct(u, polish=False).voltages  # local correction: the polish only adds
        except CalibrationError as err:  # a target the calibrated model cannot set within range
            q.reasons.append(f"target {t}: no settings found ({err})")
            values.append(0.0)
            continue
        limits = cal.info.get("drive_limits")
        if limits is not None and np.any(volts > np.asarray(limits[1]) + 1e-9):
            worst = int(np.argmax(volts - np.asarray(limits[1])))
            q.reasons.append(f"target {t}: heater {worst} would need {volts[worst]:.3g}, above its declared "
                             f"limit {limits[1][worst]:.3g}")
        for _ in range(DRAWS):
            other = _draw(cal, rng, inflate)
            values.append(score(u, other.unitary(other.phases_for_voltages(volts))))
    values = np.asarray(values)
    q.predicted_fidelity = float(np.mean(values))
    q.fidelity_sigma = float(np.std(values))
    q.fidelity_low = float(np.percentile(values, 5))
    q.targets = targets
    q.up_to_output_phases = up_to_phases


def assess(cal, targets: int = 3, seed: int = 0, min_fidelity: float = 0.9) -> Quality:
    """The :class:`Quality` verdict of ``cal`` from its own data (module doc): it fails on residuals above
    :data:`RESIDUAL_LIMIT` × the measured noise, a camera noisier than declared, heaters that cannot reach
    2π, more than :data:`FAILED_FRACTION` failed heaters, or a predicted fidelity whose 5th percentile is
    below ``min_fidelity``."""
    info = cal.info
    q = Quality(passed=False, skipped=list(info.get("skipped", [])), degraded=list(info.get("degraded", [])))
    _step_checks(cal, q)
    _heater_checks(cal, q)
    ratios = [s["ratio"] for name, s in q.steps.items() if s.get("final") and np.isfinite(s["ratio"])]
    # parameter uncertainties come from the fits' own residuals; where those exceed the noise the model
    # misses something, and the uncertainties are scaled up by that much (never down)
    inflate = max(1.0, max(ratios, default=1.0))
    if targets:
        _predict(cal, q, targets, seed, inflate)
        if not q.fidelity_low >= min_fidelity:
            q.reasons.append(f"predicted fidelity {q.predicted_fidelity:.4f} (5th percentile {q.fidelity_low:.4f}) "
                             f"is below min_fidelity={min_fidelity}")
    q.passed = not q.reasons
    return q


def enforce(cal, strict: bool) -> None:
    """Raise :class:`CalibrationQualityError` (``strict``) or warn (:class:`QualityWarning`) on a failed verdict."""
    q = cal.quality
    if q is None or q.passed:
        return
    if strict:
        raise CalibrationQualityError(cal)
    warnings.warn(q.summary(), QualityWarning, stacklevel=3)


def failed_path(path):
    """Where a failed calibration meant for ``path`` is saved: ``NAME.failed.json`` beside it."""
    from pathlib import Path

    path = Path(path)
    if path.name.endswith(".failed" + (path.suffix or ".json")):
        return path
    return path.with_name(path.stem + ".failed" + (path.suffix or ".json"))
