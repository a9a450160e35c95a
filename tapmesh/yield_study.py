"""Fabrication yield of a mesh design: what one chip of a study is, and how it is scored.

A :class:`Study` names the meshes (n), the process spreads (σδ) and the number of chips. Each chip is
fabricated from the wafer model (:mod:`tapmesh.calibration.wafer`), calibrated (the full
:func:`tapmesh.calibration.calibrate`, or ``mode="fast"``: a stand-in drawn from the calibration's
measured error, :mod:`tapmesh.calibration.surrogate`), corrected (``cal.voltages_for(U)``) and scored by
the fidelity on K Haar targets of the true chip. Running many chips on Dask: :mod:`tapmesh.yield_dask`.
Derivations and the validation of the fast mode: ``docs/yield.md``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.surrogate import ErrorModel
from tapmesh.calibration.wafer import CHIP_STREAM, IndependentModel, WaferModel

MODES = ("full", "fast")
VARIATIONS = ("wafer", "independent")
NOISES = ("realistic", "none")
TARGET_STREAM = 2
"""``spawn_key`` head of the Haar targets' seed sequence (one set per mesh size, shared by every chip)."""
ERROR_MODEL_SEED_OFFSET = 1_000_003
"""The fast mode's error model is measured on chips of the study seed + this offset: not the study's chips."""


class YieldStudyError(ValueError):
    """A yield study's settings are invalid (no chips, σ < 0, unknown mode, ...)."""


@dataclass(frozen=True)
class Study:
    """What to fabricate and how to score it.

    Attributes:
        ns: mesh sizes (modes).
        sigmas: process spreads σδ, rad: the wafer model scaled so that its couplers' δ has this σ.
        chips: chips per (n, σ); chip i sits on the same die at every σ and n (common random numbers).
        seed: study seed; chip i's draws come from ``SeedSequence(seed, spawn_key=(0, i))``.
        mode: ``"full"`` (calibrate every chip) or ``"fast"`` (perturb the truth by the measured error).
        k_targets: Haar-random targets per chip (the same K for every chip of a mesh size).
        spec: fidelity spec: a chip passes when its mean corrected fidelity is ≥ spec.
        kind: ``"rectangular"`` or ``"triangular"``.
        variation: ``"wafer"`` (correlated wafer maps) or ``"independent"`` (per-device draws).
        crosstalk: thermal crosstalk between neighbouring heaters (fraction of heater power).
        noise: camera of the simulated chips, ``"realistic"`` or ``"none"``.
        polish: run the gradient polish of ``voltages_for``.
        error_chips: full calibrations per mesh size that measure the fast mode's error model.
    """

    ns: tuple[int, ...] = (8,)
    sigmas: tuple[float, ...] = (0.01, 0.02, 0.03)
    chips: int = 100
    seed: int = 0
    mode: str = "full"
    k_targets: int = 4
    spec: float = 0.99
    kind: str = "rectangular"
    variation: str = "wafer"
    crosstalk: float = 0.0
    noise: str = "realistic"
    polish: bool = True
    error_chips: int = 3
    wafer: WaferModel = field(default_factory=WaferModel)

    def __post_init__(self):
        object.__setattr__(self, "ns", tuple(int(n) for n in np.atleast_1d(self.ns)))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in np.atleast_1d(self.sigmas)))
        if not self.ns or min(self.ns) < 2:
            raise YieldStudyError(f"n must be at least 2 modes, got {list(self.ns)}")
        if not self.sigmas or not all(math.isfinite(s) and s >= 0 for s in self.sigmas):
            raise YieldStudyError(f"sigma_delta must be finite and ≥ 0 rad, got {list(self.sigmas)}")
        if int(self.chips) < 1:
            raise YieldStudyError(f"chips must be at least 1, got {self.chips}")
        if int(self.k_targets) < 1:
            raise YieldStudyError(f"k_targets must be at least 1, got {self.k_targets}")
        if not 0 < self.spec < 1:
            raise YieldStudyError(f"spec must be a fidelity in (0, 1), got {self.spec}")
        for name, allowed in (("mode", MODES), ("variation", VARIATIONS), ("noise", NOISES), ("kind", circuits.KINDS)):
            if getattr(self, name) not in allowed:
                raise YieldStudyError(f"unknown {name} {getattr(self, name)!r}; expected one of {', '.join(allowed)}")
        if self.crosstalk < 0 or self.error_chips < 1:
            raise YieldStudyError("crosstalk must be ≥ 0 and error_chips ≥ 1")

    @property
    def fingerprint(self) -> dict:
        """Everything but (ns, sigmas, chips) that decides a chip's result: a rerun must match it."""
        data = asdict(self)
        for name in ("ns", "sigmas", "chips", "spec"):
            data.pop(name)
        return data

    def keys(self) -> list[tuple[int, float, int]]:
        """Every chip of the study as (n, σδ, chip index)."""
        return [(n, s, i) for n in self.ns for s in self.sigmas for i in range(int(self.chips))]

    def model(self, sigma: float):
        """The process at σδ = ``sigma`` rad: the wafer model scaled to it, or independent draws."""
        if self.variation == "wafer":
            return replace(self.wafer.for_sigma_delta(sigma), crosstalk=self.crosstalk)
        return IndependentModel(sigma_delta=sigma, crosstalk=self.crosstalk, wafer=self.wafer)

    def targets(self, n: int) -> list[np.ndarray]:
        """The K Haar-random targets of mesh size ``n`` (seeded from (seed, n))."""
        rng = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(TARGET_STREAM, int(n))))
        return [circuits.haar_unitary(n, seed=rng) for _ in range(int(self.k_targets))]

    def topology(self, n: int) -> circuits.MeshTopology:
        return circuits.topology(n, self.kind)


def _seeds(seed: int, chip: int, stream: int) -> np.random.SeedSequence:
    """Sub-streams of chip ``chip``: 1 the camera noise, 2 the calibration's random settings, 3 the fast mode."""
    return np.random.SeedSequence(int(seed), spawn_key=(CHIP_STREAM, int(chip), stream))


def _int_seed(sequence: np.random.SeedSequence) -> int:
    return int(sequence.generate_state(1)[0])


def fabricate(study: Study, n: int, sigma: float, chip: int, seed: int | None = None):
    """The simulated chip (:class:`tapmesh.calibration.VirtualChip`) and its site on the wafer."""
    from tapmesh.calibration import Noise, VirtualChip

    seed = study.seed if seed is None else seed
    topology = study.topology(n)
    truth, site = study.model(sigma).chip(topology, chip, seed)
    noise = Noise.realistic() if study.noise == "realistic" else Noise.none()
    return VirtualChip(topology, errors=truth, noise=noise, seed=_int_seed(_seeds(seed, chip, 1))), site


def calibrate_full(chip, seed: int, index: int):
    """``calibrate(chip)`` without progress bar or fault warnings, its random settings seeded per chip.

    A calibration whose quality verdict fails is returned, not raised: a chip the lab could not calibrate is
    part of the yield (scored as calibrated, its ``verdict`` column ``"failed"``); ``cal.quality.passed``
    says which."""
    from tapmesh.calibration import calibrate
    from tapmesh.calibration.quality import CalibrationQualityError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return calibrate(chip, seed=_int_seed(_seeds(seed, index, 2)), progress=False)
        except CalibrationQualityError as err:
            return err.calibration


def verdict_of(cal) -> str:
    """``"passed"`` / ``"failed"``: the calibration's quality verdict (``"stand-in"`` for a fast-mode draw)."""
    quality = getattr(cal, "quality", None)
    if quality is None:
        return "stand-in"
    return "passed" if quality.passed else "failed"


def corrected_fidelities(vchip, cal, targets, polish: bool) -> np.ndarray:
    """Fidelity on the true chip of each target set with ``cal.voltages_for`` (local correction, ± polish)."""
    return np.array([float(circuits.fidelity(u, vchip.unitary(cal.voltages_for(u, polish=polish)))) for u in targets])


def score_chip(study: Study, n: int, sigma: float, chip: int, error_model: ErrorModel | None = None) -> dict:
    """Fabricate, calibrate, correct and score one chip; a row of the results table.

    Columns: n, sigma_delta, chip, wafer, die, x_mm, y_mm (die centre), mode, f_mean / f_min (corrected
    fidelity over the K targets on the true chip), f_uncorrected (plain decomposition, mean), delta_rms /
    delta_mean (the chip's true δ, rad), frames (camera frames of the calibration, 0 in fast mode), seconds."""
    start = time.perf_counter()
    vchip, site = fabricate(study, n, sigma, chip)
    truth = vchip.truth  # a simulation of fabrication: the score is taken on the true chip
    if study.mode == "full":
        cal = calibrate_full(vchip, study.seed, chip)
    else:
        if error_model is None:
            raise YieldStudyError(f"fast mode needs an error model for n = {n}")
        cal = error_model.calibration(vchip.topology, truth, _seeds(study.seed, chip, 3))
    targets = study.targets(n)
    corrected = corrected_fidelities(vchip, cal, targets, study.polish)
    plain = [float(circuits.fidelity(u, vchip.unitary(cal.voltages_uncorrected(u)))) for u in targets]
    return {
        "n": int(n), "sigma_delta": float(sigma), "chip": int(chip), **site, "mode": study.mode,
        "f_mean": float(np.mean(corrected)), "f_min": float(np.min(corrected)),
        "f_uncorrected": float(np.mean(plain)),
        "delta_rms": float(np.sqrt(np.mean(truth.delta**2))), "delta_mean": float(np.mean(truth.delta)),
        "frames": int(cal.n_measurements), "verdict": verdict_of(cal), "seconds": time.perf_counter() - start,
    }


def run_chunk(study: Study, keys, error_models: dict | None = None) -> list[dict]:
    """Score the chips ``keys`` = [(n, σ, chip), …] in order (one Dask task)."""
    error_models = error_models or {}
    return [score_chip(study, n, s, i, error_models.get(n)) for n, s, i in keys]


def error_model_chip(study: Study, n: int, index: int) -> ErrorModel | None:
    """The calibration error of one full calibration at mesh size ``n``, at the study's largest σ, on a chip
    that is not one of the study's (seed + :data:`ERROR_MODEL_SEED_OFFSET`), with its fidelity measurement:
    the infidelity the calibration's errors add to the truth's, and what one stand-in draw at scale 1 adds,
    both corrected as the study corrects, on K targets that are not the study's (``docs/yield.md``).

    ``None`` when the calibration failed its quality verdict: a failed fit's errors are not what a working
    calibration leaves, so they must not set the stand-in's spread (:func:`pool_error_models`)."""
    seed = study.seed + ERROR_MODEL_SEED_OFFSET
    vchip, _ = fabricate(study, n, max(study.sigmas), index, seed=seed)
    cal = calibrate_full(vchip, seed, index)
    if verdict_of(cal) == "failed":
        return None
    model = ErrorModel.measure([(cal, vchip.truth)])
    targets = replace(study, seed=seed).targets(n)
    exact, draw = (model.calibration(vchip.topology, vchip.truth, _seeds(seed, index, 3), scale=s) for s in (0.0, 1.0))
    f_exact, f_full, f_draw = (corrected_fidelities(vchip, c, targets, study.polish) for c in (exact, cal, draw))
    return model.with_excess(float(np.mean(f_exact - f_full)), float(np.mean(f_exact - f_draw)))


def pool_error_models(n: int, models) -> tuple[ErrorModel, int]:
    """Pool the error chips of mesh size ``n`` (:meth:`ErrorModel.pool`), leaving out those whose calibration
    failed its verdict (``None``); returns the model and how many were left out. :class:`YieldStudyError` when
    every one failed."""
    models = list(models)
    passed = [m for m in models if m is not None]
    if not passed:
        raise YieldStudyError(f"all {len(models)} error-model calibrations at n = {n} failed their quality verdict: "
                              "the fast mode has no working calibration to draw from (run mode='full', or more "
                              "error_chips)")
    return ErrorModel.pool(passed), len(models) - len(passed)


def yield_at(f, spec: float) -> float:
    """Fraction of chips whose fidelity ``f`` reaches ``spec``."""
    f = np.asarray(f, dtype=float)
    return float(np.mean(f >= spec)) if f.size else float("nan")
