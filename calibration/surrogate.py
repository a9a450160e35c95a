"""A calibration's measured error, and a stand-in calibration drawn from it (the yield study's fast mode).

:meth:`ErrorModel.measure` compares full calibrations of simulated chips with their hidden truth and keeps
the RMS error of each parameter class (φ0 of θ, φ and γ heaters, relative α, δ, crosstalk).
:meth:`ErrorModel.calibration` then makes a :class:`Calibration` of another simulated chip by perturbing its
truth by those errors, with what a real calibration does not learn (loss, tap spread) left at the nominal
values, as ``calibrate`` leaves them. This is a simulation of calibration for fabrication studies, never a
calibration of a chip; ``docs/yield.md`` says how well it stands in for the full procedure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class ErrorModel:
    """RMS calibration errors, measured against the truth of ``chips`` calibrated chips of ``n`` modes.

    Attributes:
        n: mesh size the errors were measured at.
        chips: how many full calibrations they pool.
        theta_rad, phi_rad, gamma_rad: RMS φ0 error of θ, φ and γ heaters, rad (γ after removing each chip's
            common output phase, which no fidelity sees).
        alpha_rel: RMS relative error of α.
        delta_rad: RMS error of the couplers' δ, rad.
        crosstalk: RMS error of X on neighbouring pairs (absolute, per V² of the source heater's power ratio).
        tap_guess: the tap fraction the calibrated model assumes (``calibrate``'s ``tap_guess``).
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

    @classmethod
    def measure(cls, pairs, tap_guess: float = 0.02) -> "ErrorModel":
        """Pool the errors of ``pairs`` = [(Calibration, AsBuilt), …] of one mesh size (dead heaters left out)."""
        pairs = list(pairs)
        if not pairs:
            raise ValueError("ErrorModel.measure needs at least one (Calibration, AsBuilt) pair")
        topology = pairs[0][0].topology
        k, n = topology.n_mzis, topology.n
        errors = {name: [] for name in ("theta", "phi", "gamma", "alpha", "delta", "crosstalk")}
        pair_index = neighbour_pairs(topology)
        for cal, truth in pairs:
            if cal.topology.n != n:
                raise ValueError("ErrorModel.measure: every calibration must be of the same mesh size")
            live = np.ones(topology.n_shifters, dtype=bool)
            live[list(cal.dead_heaters) + list(truth.dead_heaters)] = False
            d_phase = _wrap(cal.phase_offsets - truth.phase_offsets)
            gamma = d_phase[2 * k:][live[2 * k:]]
            errors["theta"].append(d_phase[:k][live[:k]])
            errors["phi"].append(d_phase[k:2 * k][live[k:2 * k]])
            errors["gamma"].append(_wrap(gamma - np.angle(np.mean(np.exp(1j * gamma)))))
            errors["alpha"].append(((cal.alpha - truth.alpha) / truth.alpha)[live])
            errors["delta"].append(np.ravel(cal.delta - truth.delta))
            x_true = np.asarray(truth.crosstalk)[pair_index[:, 0], pair_index[:, 1]]
            errors["crosstalk"].append(cal.crosstalk.values_at(pair_index) - x_true)
        rms = {name: float(np.sqrt(np.mean(np.concatenate(v) ** 2))) if np.concatenate(v).size else 0.0
               for name, v in errors.items()}
        return cls(n=n, chips=len(pairs), theta_rad=rms["theta"], phi_rad=rms["phi"], gamma_rad=rms["gamma"],
                   alpha_rel=rms["alpha"], delta_rad=rms["delta"], crosstalk=rms["crosstalk"], tap_guess=tap_guess)

    @classmethod
    def pool(cls, models) -> "ErrorModel":
        """One model from several of the same mesh size, each RMS pooled as sqrt(mean of squares) weighted by
        chips (every chip of one size contributes the same number of parameters)."""
        models = list(models)
        if not models or len({m.n for m in models}) != 1:
            raise ValueError("ErrorModel.pool needs models of one mesh size")
        chips = np.array([m.chips for m in models], dtype=float)
        fields = ("theta_rad", "phi_rad", "gamma_rad", "alpha_rel", "delta_rad", "crosstalk")
        pooled = {f: float(np.sqrt(np.sum(chips * np.array([getattr(m, f) for m in models]) ** 2) / chips.sum()))
                  for f in fields}
        return cls(n=models[0].n, chips=int(chips.sum()), tap_guess=models[0].tap_guess, **pooled)

    def calibration(self, topology: circuits.MeshTopology, truth: AsBuilt, seed) -> Calibration:
        """A stand-in calibration of the chip ``truth``: its φ0, α, δ and crosstalk perturbed by independent
        Gaussian errors of this model's RMS (``seed``: anything ``numpy.random.default_rng`` takes); loss 0
        and tap fraction ``tap_guess`` as a real calibration assumes; faults known."""
        rng = np.random.default_rng(seed)
        k, n, h = topology.n_mzis, topology.n, topology.n_shifters
        cal = Calibration.nominal(topology, tap_fraction=self.tap_guess)
        sigma = np.concatenate([np.full(k, self.theta_rad), np.full(k, self.phi_rad), np.full(n, self.gamma_rad)])
        cal.phase_offsets = np.mod(truth.phase_offsets + sigma * rng.standard_normal(h), TWO_PI)
        cal.alpha = truth.alpha * (1 + self.alpha_rel * rng.standard_normal(h))
        cal.delta = truth.delta + self.delta_rad * rng.standard_normal((k, 2))
        pairs = neighbour_pairs(topology)
        x = np.asarray(truth.crosstalk)[pairs[:, 0], pairs[:, 1]] + self.crosstalk * rng.standard_normal(len(pairs))
        cal.crosstalk = Crosstalk.from_pairs(h, pairs[x != 0], x[x != 0])
        cal.dead_heaters = tuple(truth.dead_heaters)
        cal.dark_taps = tuple(truth.dark_taps)
        for i in cal.dead_heaters:
            cal.alpha[i] = 0.0
        cal.info = {"surrogate": asdict(self)}
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

