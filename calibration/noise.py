"""The camera and detector noise model of a virtual chip (:class:`Noise`) and how it turns powers into readings.

Shot noise, read noise, ADC quantization and the fixed per-grating gains and dark offsets of the camera
imaging the tap gratings (:func:`camera_reading`); the model and its units are set out in
docs/calibration.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tapmesh.calibration.errors import CalibrationError
from tapmesh.circuits.arguments import check_float, check_int


@dataclass(frozen=True)
class Noise:
    """Detector noise of the camera imaging the taps (and of the output detectors); see the module doc.

    Attributes:
        shot: relative shot-noise scale, σ = shot·sqrt(P·full_scale_mw) (σ/P = shot at full scale).
        read_mw: additive Gaussian read noise, mW.
        bits: ADC bits over [0, full_scale_mw] (None: no quantization, no clipping).
        full_scale_mw: camera full scale, mW.
        gain_sigma: spread of the fixed per-grating gain (1 + gain_sigma·N(0,1), drawn once per chip).
        offset_mw: scale of the fixed per-grating dark offset (offset_mw·U(0.5, 1.5), drawn once).
    """

    shot: float = 0.0
    read_mw: float = 0.0
    bits: int | None = None
    full_scale_mw: float = 1.0
    gain_sigma: float = 0.0
    offset_mw: float = 0.0

    def __post_init__(self):
        for name in ("shot", "read_mw", "gain_sigma", "offset_mw"):
            check_float(getattr(self, name), f"Noise.{name}", minimum=0.0, error=CalibrationError)
        check_float(self.full_scale_mw, "Noise.full_scale_mw", minimum=0.0, strict_minimum=True, unit="mW", error=CalibrationError)
        if self.bits is not None:
            check_int(self.bits, "Noise.bits", minimum=1, maximum=32, error=CalibrationError)

    @classmethod
    def none(cls) -> "Noise":
        """A perfect camera."""
        return cls()

    @classmethod
    def realistic(cls) -> "Noise":
        """An InGaAs camera set so a tap of a 1 mW guide (t = 2 %) reads ~20 % of full scale: 12-bit ADC,
        ~0.5 % shot noise at full scale, 0.05 % of full scale read noise, 2 % gain spread, ~1 % offsets."""
        return cls(shot=0.005, read_mw=5e-5, bits=12, full_scale_mw=0.1, gain_sigma=0.02, offset_mw=1e-3)


def camera_reading(noise: Noise, power: np.ndarray, gain: np.ndarray, offset: np.ndarray, rng: np.random.Generator,
                   unit_camera: bool = False) -> np.ndarray:
    """Camera readings (mW) of true tap powers ``power`` (batch, H), mW: shot noise, the fixed per-grating
    ``gain`` and dark ``offset`` (mW; skipped when ``unit_camera``), read noise, then quantization to
    ``noise.bits`` over [0, ``noise.full_scale_mw``]. Noise is drawn from ``rng`` in that order."""
    fs = noise.full_scale_mw
    reading = power
    if noise.shot:
        reading = reading + noise.shot * np.sqrt(np.clip(power, 0, None) * fs) * rng.normal(size=power.shape)
    if not unit_camera:
        reading = gain * reading + offset
    if noise.read_mw:
        reading = reading + noise.read_mw * rng.normal(size=power.shape)
    if noise.bits:
        levels = 2**noise.bits - 1
        reading = np.round(np.clip(reading / fs, 0.0, 1.0) * levels) / levels * fs
    return reading
