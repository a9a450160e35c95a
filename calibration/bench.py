"""The calibration's only door to a chip: every access validated, every camera frame counted.

:class:`Bench` wraps any :class:`tapmesh.calibration.Chip`: it sets voltages only when they change,
injects a batch of fields and checks the shape and finiteness of what the chip returns
(:class:`~tapmesh.calibration.MeasurementError` otherwise). See docs/calibration.md.
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration.bench_time import BenchClock, ClockedChip
from tapmesh.calibration.errors import MeasurementError

class Bench:
    """Every chip access goes through here: validation of what the chip returns, and frame counting."""

    def __init__(self, chip, n: int, h: int):
        self.chip, self.n, self.h = chip, n, h
        self.clock = BenchClock.for_chip(chip)  # bench seconds of every operation (bench_time.py)
        self.chip = ClockedChip(chip, self.clock)
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
