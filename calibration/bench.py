"""The calibration's only door to a chip: every access validated, every frame counted, every limit enforced.

:class:`Bench` wraps any :class:`tapmesh.calibration.Chip`: it checks every setting against the chip's
declared :class:`~tapmesh.calibration.Capabilities` (per-heater drive range and total electrical power)
before it reaches the chip, refuses operations the bench declares it cannot do, injects a batch of
fields and checks the shape and finiteness of what the chip returns. See docs/calibration.md
("Capabilities and bench time").
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration.bench_time import BenchClock, ClockedChip
from tapmesh.calibration.capabilities import Capabilities, MissingCapabilityError, capabilities_of
from tapmesh.calibration.errors import MeasurementError, VoltageError


class LimitError(VoltageError):
    """Calibration asked for a setting outside the chip's declared limits; it never reached the chip."""


def electrical_power_mw(caps: Capabilities, drive: np.ndarray) -> float:
    """Summed electrical power of all heaters at ``drive`` (V or mA), mW: V²/R (V, Ω → W) or I²R (mA, Ω → µW)."""
    r = np.asarray(caps.heater_resistance_ohm, dtype=float)
    d2 = np.asarray(drive, dtype=float) ** 2
    return float(np.sum(d2 / r) * 1e3) if caps.drive == "voltage" else float(np.sum(d2 * r) * 1e-3)


class Bench:
    """Every chip access goes through here: the declared limits, validation of what the chip returns, frame counting."""

    def __init__(self, chip, n: int, h: int, capabilities: Capabilities | None = None):
        self.chip, self.n, self.h = chip, n, h
        self.caps = capabilities if capabilities is not None else capabilities_of(chip)
        self.low, self.high = self.caps.limits(h)
        self.clock = BenchClock.for_chip(chip)  # bench seconds of every operation (bench_time.py)
        self.chip = ClockedChip(chip, self.clock)
        self.frames = 0
        self.settings = 0
        self._voltages = None
        self.coherent = bool(self.caps.coherent_readout)
        self.tap_readings = 0
        self.saturated_readings = 0  # tap readings at the camera's declared saturation (clipped powers)

    # ------------------------------------------------------------------ limits
    def violation(self, voltages) -> str | None:
        """Why ``voltages`` (V or mA) may not be applied, or None if they may."""
        v = np.asarray(voltages, dtype=float)
        if v.shape != (self.h,):
            return f"a setting must have shape ({self.h},), got {v.shape}"
        if not np.all(np.isfinite(v)):
            return "a setting contains NaN or infinity"
        unit = "V" if self.caps.drive == "voltage" else "mA"
        bad = np.flatnonzero((v < self.low - 1e-12) | (v > self.high + 1e-12))
        if len(bad):
            i = int(bad[0])
            return (f"heater {i} would be driven at {v[i]:.6g} {unit}, outside its declared range "
                    f"[{self.low[i]:.6g}, {self.high[i]:.6g}] {unit} ({len(bad)} heaters out of range)")
        if self.caps.max_total_power_mw is not None:
            p = electrical_power_mw(self.caps, v)
            if p > self.caps.max_total_power_mw * (1 + 1e-9):
                return f"total heater power {p:.6g} mW exceeds the declared {self.caps.max_total_power_mw:.6g} mW"
        return None

    def set(self, voltages):
        v = np.asarray(voltages, dtype=float)
        if self._voltages is None or not np.array_equal(v, self._voltages):
            why = self.violation(v)
            if why is not None:
                raise LimitError(f"calibration refused a setting: {why}")
            self.chip.set_voltages(v)
            self._voltages = v.copy()
            self.settings += 1

    # ------------------------------------------------------------------ readings
    def _check(self, a, shape, name):
        a = np.asarray(a)
        if a.shape != shape:
            raise MeasurementError(f"chip.{name} returned shape {a.shape}, expected {shape}")
        if not np.all(np.isfinite(a)):
            raise MeasurementError(f"chip.{name} returned NaN or infinity")
        return a

    def _count_saturated(self, powers: np.ndarray) -> None:
        """Count tap readings at or above the declared camera saturation (a clipped reading is not a power)."""
        self.tap_readings += powers.size
        limit = self.caps.camera_saturation_mw
        if limit is not None:
            self.saturated_readings += int(np.count_nonzero(powers >= float(limit) * (1 - 1e-9)))

    def require(self, capability: str, needed_by: str) -> None:
        """Raise :class:`MissingCapabilityError` if the bench declares it lacks ``capability``."""
        if not getattr(self.caps, capability):
            raise MissingCapabilityError(capability, needed_by)

    def measure(self, voltages, x, side="input", taps=None, outputs=False, coherent=False):
        """Set voltages, inject the batch ``x`` (B, n) and read what is asked; returns a dict of arrays."""
        if side == "output":
            self.require("output_side_source", "a frame with light injected at the output side")
        if outputs:
            self.require("output_detectors", "an output power reading")
        if coherent:
            self.require("coherent_readout", "a coherent output reading")
        self.set(voltages)
        x = np.atleast_2d(np.asarray(x, dtype=np.complex128))
        self.chip.inject(x, side=side)
        b = x.shape[0]
        out = {}
        if taps:
            out["taps"] = self._check(self.chip.read_taps(taps), (b, self.h), "read_taps").astype(float)
            self.frames += b
            self._count_saturated(out["taps"])
        if outputs:
            out["outputs"] = self._check(self.chip.read_outputs(), (b, self.n), "read_outputs").astype(float)
            self.frames += b
        if coherent:
            out["coherent"] = self._check(self.chip.read_outputs_coherent(), (b, self.n), "read_outputs_coherent")
            self.frames += b
        return out
