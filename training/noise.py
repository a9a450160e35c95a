"""Field noise of a chip's input modulators and coherent readout, as a Chip wrapper.

The seed paper's simulated 64-port network adds amplitude and phase noise to the fields (σ_A = 0.05
relative amplitude, σ_φ = 0.05π) on top of tap shot noise; :class:`tapmesh.calibration.Noise` models the camera
and detectors, :class:`FieldNoise` adds the field part: every injected field and every coherent readout
is multiplied, mode by mode and sample by sample, by ``(1 + σ_A·N(0,1))·exp(iσ_φ·N(0,1))``. It wraps
any :class:`tapmesh.calibration.Chip` and is one itself.
"""

from __future__ import annotations

import numpy as np


class FieldNoise:
    """A :class:`tapmesh.calibration.Chip` whose injected and coherently read fields carry amplitude/phase noise."""

    def __init__(self, chip, amplitude: float = 0.05, phase: float = 0.05 * np.pi, seed: int = 0):
        self.inner = chip
        self.amplitude = float(amplitude)
        self.phase = float(phase)
        self._rng = np.random.default_rng([seed, 104729])

    def _perturb(self, x):
        x = np.asarray(x)
        noise = (1.0 + self.amplitude * self._rng.normal(size=x.shape)) * np.exp(1j * self.phase * self._rng.normal(size=x.shape))
        return x * noise

    @property
    def n_modes(self) -> int:
        return self.inner.n_modes

    @property
    def n_heaters(self) -> int:
        return self.inner.n_heaters

    def set_voltages(self, voltages) -> None:
        self.inner.set_voltages(voltages)

    def inject(self, x, side="input") -> None:
        self.inner.inject(self._perturb(x), side)

    def read_taps(self, direction="forward"):
        return self.inner.read_taps(direction)

    def read_outputs(self):
        return self.inner.read_outputs()

    def read_outputs_coherent(self):
        return self._perturb(self.inner.read_outputs_coherent())

    def __getattr__(self, name):  # measurements, topology, … of the wrapped chip
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"FieldNoise({self.inner!r}, amplitude={self.amplitude}, phase={self.phase:.3g})"
