"""A calibration's measured error, and a stand-in calibration drawn from it (the yield study's fast mode).

:meth:`ErrorModel.measure` compares full calibrations of simulated chips with their hidden truth and keeps,
per heater class (θ, φ, γ), the RMS φ0 and relative α errors, their correlation and the growth of the φ0
error with column depth, and the RMS δ and crosstalk errors. :meth:`ErrorModel.calibration` then makes a
:class:`Calibration` of another simulated chip by perturbing its truth by errors drawn with those
statistics, with what a real calibration does not learn (loss, tap spread) left at the nominal values, as
``calibrate`` leaves them. This is a simulation of calibration for fabrication studies, never a
calibration of a chip; ``docs/yield.md`` says how well it stands in for the full procedure."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.crosstalk import Crosstalk
from tapmesh.calibration.asbuilt import AsBuilt
from tapmesh.calibration.crosstalk import neighbour_pairs

TWO_PI = 2 * np.pi


def _wrap(a) -> np.ndarray:
    """Phases to (−π, π]."""
    return np.angle(np.exp(1j * np.asarray(a, dtype=float)))


CLASSES = ("theta", "phi", "gamma")
"""Heater classes, in canonical order: θ (K), φ (K), γ (n)."""
MAX_DEPTH_GAIN = 1.9
"""|gain| bound: the variance 1 + g·(x − ½) stays positive at both ends of the mesh."""


@dataclass(frozen=True)
class ErrorModel:
    """Calibration errors measured against the truth of ``chips`` calibrated chips of ``n`` modes.

    Each heater class (θ, φ, γ) has an RMS φ0 error, an RMS relative α error and their correlation: a
    heater law fitted to a voltage sweep pins the phase where the sweep has its data, so an offset too high
    comes with a slope too low (correlation ≈ −0.5 … −0.7 measured at n = 8–16; ``docs/yield.md``). The
    variance of θ and φ offsets may grow with column depth x = column / (columns − 1):
    ``σ²(x) = σ²·(1 + gain·(x − ½))``.

    Attributes:
        n: mesh size the errors were measured at.
        chips: how many full calibrations they pool.
        theta_rad, phi_rad, gamma_rad: RMS φ0 error of θ, φ and γ heaters, rad (γ after removing each chip's
            common output phase, which no fidelity sees).
        alpha_rel: RMS relative error of α over all heaters.
        delta_rad: RMS error of the couplers' δ, rad.
        crosstalk: RMS error of X on neighbouring pairs (absolute, per V² of the source heater's power ratio).
        tap_guess: the tap fraction the calibrated model assumes (``calibrate``'s ``tap_guess``).
        alpha_theta_rel, alpha_phi_rel, alpha_gamma_rel: RMS relative α error per class (None: ``alpha_rel``).
        theta_alpha_corr, phi_alpha_corr, gamma_alpha_corr: correlation of a heater's φ0 and α errors.
        theta_depth_gain, phi_depth_gain: slope of the φ0 error variance over the mesh's depth, relative.
        excess_full: mean infidelity that the full calibrations' errors add on their own chips, over the
            error chips' targets: 1 − F(corrected with the calibration) − (1 − F(corrected with the truth)).
        excess_draw: the same for stand-ins drawn at these statistics (scale 1) on the same chips.
        Models written before these fields existed load with them at their defaults: independent errors of
        one size, drawn at scale 1 (the model's first form).

    A calibration's errors are not random draws of their size: it fits what the chip shows, so its errors
    lie where the measured light barely depends on the parameters, and the corrected fidelity barely does
    either (at n = 16 they add 0.2e-3 infidelity where independent draws of the same RMS add 4.8e-3).
    :attr:`effective_scale` scales the draws so that they add, on the error chips, the infidelity the real
    errors added there.
    """

    n: int
    chips: int
    theta_rad: float
    phi_rad: float
    gamma_rad: float
    alpha_rel: float
    delta_rad: float
    crosstalk: float = 0.0
    tap_guess: float = 0.02
    alpha_theta_rel: float | None = None
    alpha_phi_rel: float | None = None
    alpha_gamma_rel: float | None = None
    theta_alpha_corr: float = 0.0
    phi_alpha_corr: float = 0.0
    gamma_alpha_corr: float = 0.0
    theta_depth_gain: float = 0.0
    phi_depth_gain: float = 0.0
    excess_full: float | None = None
    excess_draw: float | None = None

    @property
    def effective_scale(self) -> float:
        """Factor on every drawn error: sqrt(excess_full / excess_draw) (infidelity is quadratic in small
        errors), 0 when the real errors added nothing, 1 for a model without the fidelity measurement."""
        if self.excess_full is None or self.excess_draw is None or self.excess_draw <= 0:
            return 1.0
        return float(np.sqrt(max(self.excess_full, 0.0) / self.excess_draw))

    def with_excess(self, excess_full: float, excess_draw: float) -> "ErrorModel":
        """This model with its fidelity measurement (see :attr:`effective_scale`)."""
        return replace(self, excess_full=float(excess_full), excess_draw=float(excess_draw))

    def __post_init__(self):
        for name in CLASSES:
            corr = getattr(self, f"{name}_alpha_corr")
            if not -1.0 <= corr <= 1.0:
                raise ValueError(f"ErrorModel: {name}_alpha_corr must be a correlation in [-1, 1], got {corr}")
        for name in CLASSES[:2]:
            gain = getattr(self, f"{name}_depth_gain")
            if abs(gain) > MAX_DEPTH_GAIN:
                raise ValueError(f"ErrorModel: |{name}_depth_gain| must be ≤ {MAX_DEPTH_GAIN}, got {gain}")

    def phase_rms(self, name: str) -> float:
        return getattr(self, f"{name}_rad")

    def alpha_rms(self, name: str) -> float:
        value = getattr(self, f"alpha_{name}_rel")
        return self.alpha_rel if value is None else value

    @classmethod
    def measure(cls, pairs, tap_guess: float = 0.02) -> "ErrorModel":
        """Pool the errors of ``pairs`` = [(Calibration, AsBuilt), …] of one mesh size (dead heaters left out)."""
        pairs = list(pairs)
        if not pairs:
            raise ValueError("ErrorModel.measure needs at least one (Calibration, AsBuilt) pair")
        topology = pairs[0][0].topology
        k, n = topology.n_mzis, topology.n
        depth = np.concatenate([_column_depth(topology)] * 2 + [np.full(n, 0.5)])  # γ: no depth (its gain is not fitted)
        kind = np.repeat(np.arange(3), [k, k, n])
        phase, alpha, where, classes, delta, crosstalk = [], [], [], [], [], []
        pair_index = neighbour_pairs(topology)
        for cal, truth in pairs:
            if cal.topology.n != n:
                raise ValueError("ErrorModel.measure: every calibration must be of the same mesh size")
            live = np.ones(topology.n_shifters, dtype=bool)
            live[list(cal.dead_heaters) + list(truth.dead_heaters)] = False
            d_phase = _wrap(cal.phase_offsets - truth.phase_offsets)
            gamma = d_phase[2 * k:][live[2 * k:]]
            d_phase[2 * k:][live[2 * k:]] = _wrap(gamma - np.angle(np.mean(np.exp(1j * gamma))))
            phase.append(d_phase[live])
            alpha.append(((cal.alpha - truth.alpha) / truth.alpha)[live])
            where.append(depth[live])
            classes.append(kind[live])
            delta.append(np.ravel(cal.delta - truth.delta))
            x_true = np.asarray(truth.crosstalk)[pair_index[:, 0], pair_index[:, 1]]
            crosstalk.append(cal.crosstalk.values_at(pair_index) - x_true)
        phase, alpha, where, classes = map(np.concatenate, (phase, alpha, where, classes))
        fields = {}
        for c, name in enumerate(CLASSES):
            e, a, x = phase[classes == c], alpha[classes == c], where[classes == c]
            fields[f"{name}_rad"] = _rms(e)
            fields[f"alpha_{name}_rel"] = _rms(a)
            fields[f"{name}_alpha_corr"] = _correlation(e, a)
            if c < 2:
                fields[f"{name}_depth_gain"] = _depth_gain(e, x)
        return cls(n=n, chips=len(pairs), alpha_rel=_rms(alpha), delta_rad=_rms(np.concatenate(delta)),
                   crosstalk=_rms(np.concatenate(crosstalk)), tap_guess=tap_guess, **fields)

    @classmethod
    def pool(cls, models) -> "ErrorModel":
        """One model from several of the same mesh size: second moments (variances, covariances, the depth
        slopes of the variance) averaged with weights ``chips`` (every chip of one size contributes the same
        number of parameters), then turned back into RMS, correlations and gains."""
        models = list(models)
        if not models or len({m.n for m in models}) != 1:
            raise ValueError("ErrorModel.pool needs models of one mesh size")
        w = np.array([m.chips for m in models], dtype=float)
        w /= w.sum()

        def mean(values) -> float:
            return float(np.dot(w, list(values)))

        fields = {f: float(np.sqrt(mean(getattr(m, f) ** 2 for m in models)))
                  for f in ("alpha_rel", "delta_rad", "crosstalk")}
        for name in CLASSES:
            var_e = mean(m.phase_rms(name) ** 2 for m in models)
            var_a = mean(m.alpha_rms(name) ** 2 for m in models)
            cov = mean(getattr(m, f"{name}_alpha_corr") * m.phase_rms(name) * m.alpha_rms(name) for m in models)
            fields[f"{name}_rad"], fields[f"alpha_{name}_rel"] = float(np.sqrt(var_e)), float(np.sqrt(var_a))
            fields[f"{name}_alpha_corr"] = float(np.clip(cov / np.sqrt(var_e * var_a), -1, 1)) if var_e * var_a else 0.0
            if name != "gamma":
                slope = mean(getattr(m, f"{name}_depth_gain") * m.phase_rms(name) ** 2 for m in models)
                fields[f"{name}_depth_gain"] = float(np.clip(slope / var_e, -MAX_DEPTH_GAIN, MAX_DEPTH_GAIN)) if var_e else 0.0
        if all(m.excess_full is not None and m.excess_draw is not None for m in models):
            fields["excess_full"] = mean(m.excess_full for m in models)
            fields["excess_draw"] = mean(m.excess_draw for m in models)
        return cls(n=models[0].n, chips=int(sum(m.chips for m in models)), tap_guess=models[0].tap_guess, **fields)

    def calibration(self, topology: circuits.MeshTopology, truth: AsBuilt, seed, scale: float | None = None) -> Calibration:
        """A stand-in calibration of the chip ``truth``: its φ0 and α perturbed by Gaussian errors drawn jointly
        per heater (this model's RMS, correlation and depth gain), δ and crosstalk by independent ones, all
        times ``scale`` (default :attr:`effective_scale`; 1: the measured statistics, 0: the truth) (``seed``:
        anything ``numpy.random.default_rng`` takes); loss 0 and tap fraction ``tap_guess`` as a real
        calibration assumes; faults known."""
        if topology.n != self.n:
            raise ValueError(f"ErrorModel of n = {self.n} used for a mesh of n = {topology.n}")
        scale = self.effective_scale if scale is None else float(scale)
        if not (np.isfinite(scale) and scale >= 0):
            raise ValueError(f"ErrorModel.calibration: scale must be finite and ≥ 0, got {scale}")
        rng = np.random.default_rng(seed)
        k, n, h = topology.n_mzis, topology.n, topology.n_shifters
        depth = _column_depth(topology)
        sizes = (k, k, n)
        phase_sigma = np.concatenate([
            *(self.phase_rms(name) * np.sqrt(1 + getattr(self, f"{name}_depth_gain") * (depth - 0.5))
              for name in CLASSES[:2]),
            np.full(n, self.gamma_rad)])
        alpha_sigma = np.concatenate([np.full(size, self.alpha_rms(name)) for name, size in zip(CLASSES, sizes)])
        corr = np.concatenate([np.full(size, getattr(self, f"{name}_alpha_corr")) for name, size in zip(CLASSES, sizes)])
        z_phase, z_other = rng.standard_normal(h), rng.standard_normal(h)
        z_alpha = corr * z_phase + np.sqrt(1 - corr**2) * z_other
        cal = Calibration.nominal(topology, tap_fraction=self.tap_guess)
        cal.phase_offsets = np.mod(truth.phase_offsets + scale * phase_sigma * z_phase, TWO_PI)
        cal.alpha = truth.alpha * (1 + scale * alpha_sigma * z_alpha)
        cal.delta = truth.delta + scale * self.delta_rad * rng.standard_normal((k, 2))
        pairs = neighbour_pairs(topology)
        x_error = scale * self.crosstalk * rng.standard_normal(len(pairs))
        x = np.asarray(truth.crosstalk)[pairs[:, 0], pairs[:, 1]] + x_error
        cal.crosstalk = Crosstalk.from_pairs(h, pairs[x != 0], x[x != 0])
        cal.dead_heaters = tuple(truth.dead_heaters)
        cal.dark_taps = tuple(truth.dark_taps)
        for i in cal.dead_heaters:
            cal.alpha[i] = 0.0
        cal.info = {"surrogate": {**asdict(self), "scale": scale}}
        return cal

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ErrorModel":
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
        except TypeError as error:
            raise ValueError(f"not an error model: {error}") from None


def _column_depth(topology: circuits.MeshTopology) -> np.ndarray:
    """(K,) each MZI's depth in the mesh, column / (columns − 1), from 0 (inputs) to 1 (outputs)."""
    return np.array([c for c, _ in topology.mzis], dtype=float) / max(topology.n_columns - 1, 1)


def _rms(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.sqrt(np.mean(values**2))) if values.size else 0.0


def _correlation(e: np.ndarray, a: np.ndarray) -> float:
    """Correlation of two zero-mean errors about zero (the model draws them zero-mean)."""
    norm = np.sqrt(np.sum(e**2) * np.sum(a**2))
    return float(np.clip(np.sum(e * a) / norm, -1, 1)) if norm > 0 else 0.0


def _depth_gain(e: np.ndarray, x: np.ndarray) -> float:
    """Relative slope g of the variance over depth, E[e²](x) = σ²·(1 + g·(x − ½)), by least squares."""
    var_x = np.var(x) if x.size else 0.0
    if var_x == 0 or not np.any(e):
        return 0.0
    slope = np.mean((e**2 - np.mean(e**2)) * (x - np.mean(x))) / var_x
    return float(np.clip(slope / np.mean(e**2), -MAX_DEPTH_GAIN, MAX_DEPTH_GAIN))


def save_error_models(models: dict[int, ErrorModel]) -> str:
    """JSON text of error models keyed by mesh size."""
    return json.dumps({str(n): m.to_dict() for n, m in sorted(models.items())}, indent=1, sort_keys=True)


def load_error_models(text: str) -> dict[int, ErrorModel]:
    """Error models keyed by mesh size from :func:`save_error_models`' JSON (ValueError if malformed)."""
    try:
        data = json.loads(text)
        return {int(n): ErrorModel.from_dict(m) for n, m in data.items()}
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"malformed error-model file: {error}") from None

