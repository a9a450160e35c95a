"""What a bench can do and what each of its operations costs: the optional ``capabilities`` of a Chip.

A :class:`tapmesh.calibration.Chip` may carry a ``capabilities`` member (a :class:`Capabilities`);
calibration and training plan from it — drive limits, whether light can enter from the output side,
coherent readout, camera saturation, and the bench time of every operation (:class:`BenchCosts`) — and
never from a simulator's defaults. :func:`capabilities_of` reads it and checks it. The planning rules
and the cost model's defaults are explained in docs/calibration.md ("Capabilities and bench time").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import numpy as np

from tapmesh.calibration.errors import CalibrationError

Drive = Literal["voltage", "current"]
DRIVES = ("voltage", "current")


class MissingCapabilityError(CalibrationError):
    """A step needs something the bench declares it cannot do; raised before the first frame.

    ``capability`` names the :class:`Capabilities` field (e.g. ``"output_side_source"``)."""

    def __init__(self, capability: str, needed_by: str, hint: str = ""):
        self.capability = capability
        self.needed_by = needed_by
        message = f"{needed_by} needs the bench capability {capability!r}, which this chip declares it lacks"
        super().__init__(message + (f"; {hint}" if hint else ""))


class CapabilitiesError(CalibrationError):
    """A chip's ``capabilities`` member is malformed (wrong type, NaN, an empty or inverted range)."""


@dataclass(frozen=True)
class BenchCosts:
    """Bench time of each Chip operation, s. Defaults: the seed paper's bench (Pai et al. 2023).

    Attributes:
        settle_s: wait after every :meth:`~tapmesh.calibration.Chip.set_voltages` before a frame
            (thermal settling of the chip and its mount plus the DAC update; heaters themselves settle in
            1–100 µs, the wait is the bench's).
        frame_s: camera integration per frame (one injected field read at the taps), 20 ms.
        output_read_s: one reading of the output power meters.
        coherent_read_s: one coherent readout of the output fields.
        direction_switch_s: switching the light between the input and the output side.
        inject_s: changing the injected field (the generator mesh or modulators), beyond ``settle_s``.
    """

    settle_s: float = 0.010
    frame_s: float = 0.020
    output_read_s: float = 0.005
    coherent_read_s: float = 0.040
    direction_switch_s: float = 0.5
    inject_s: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise CapabilitiesError(f"BenchCosts.{f.name} must be a finite number of seconds ≥ 0, got {value!r}")


@dataclass(frozen=True)
class Capabilities:
    """What a bench can do (declared by its driver as the Chip's ``capabilities`` member).

    Attributes:
        drive: ``"voltage"`` (values given to ``set_voltages`` are V) or ``"current"`` (mA).
        drive_min, drive_max: allowed range of every heater's drive, V or mA: a scalar, or an array of
            shape (n_heaters,) for per-heater limits. Calibration never sets a value outside it.
        max_total_power_mw: limit on the summed electrical power of all heaters, mW (``None``: none).
            Needs ``heater_resistance_ohm`` to be enforced.
        heater_resistance_ohm: heater resistance, Ω (scalar or per heater), for the power limit.
        output_side_source: light can be injected from the output side (``inject(..., side="output")``).
        output_detectors: the output ports have power meters (``read_outputs``).
        coherent_readout: the output fields can be read coherently (``read_outputs_coherent``).
        camera_saturation_mw: tap power above which the camera saturates, mW (``None``: unknown).
        tap_noise_mw: the camera's declared read noise per tap reading, mW rms (``None``: measure it).
        costs: bench time of each operation (:class:`BenchCosts`).
    """

    drive: Drive = "voltage"
    drive_min: float | np.ndarray = 0.0
    drive_max: float | np.ndarray = 5.0
    max_total_power_mw: float | None = None
    heater_resistance_ohm: float | np.ndarray | None = None
    output_side_source: bool = True
    output_detectors: bool = True
    coherent_readout: bool = True
    camera_saturation_mw: float | None = None
    tap_noise_mw: float | None = None
    costs: BenchCosts = field(default_factory=BenchCosts)

    def limits(self, n_heaters: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-heater (low, high) drive limits, each shape (n_heaters,), V or mA."""
        low = np.broadcast_to(np.asarray(self.drive_min, dtype=float), (n_heaters,)).copy()
        high = np.broadcast_to(np.asarray(self.drive_max, dtype=float), (n_heaters,)).copy()
        return low, high

    def check(self, n_heaters: int) -> "Capabilities":
        """Raise :class:`CapabilitiesError` where a field is malformed for a chip of ``n_heaters``."""
        if self.drive not in DRIVES:
            raise CapabilitiesError(f"capabilities.drive must be one of {DRIVES}, got {self.drive!r}")
        try:
            low, high = self.limits(n_heaters)
        except ValueError as err:
            raise CapabilitiesError(f"capabilities.drive_min/drive_max must be scalars or shape ({n_heaters},): {err}") from None
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise CapabilitiesError("capabilities.drive_min/drive_max must be finite")
        if np.any(high <= low):
            raise CapabilitiesError(f"capabilities.drive_max must exceed drive_min for every heater (heaters {np.flatnonzero(high <= low).tolist()[:8]})")
        for name in ("max_total_power_mw", "camera_saturation_mw", "tap_noise_mw"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise CapabilitiesError(f"capabilities.{name} must be None or a positive number, got {value!r}")
        if self.max_total_power_mw is not None and self.heater_resistance_ohm is None:
            raise CapabilitiesError("capabilities.max_total_power_mw needs heater_resistance_ohm to be enforced")
        if not isinstance(self.costs, BenchCosts):
            raise CapabilitiesError(f"capabilities.costs must be a BenchCosts, got {type(self.costs).__name__}")
        return self

    def with_(self, **changes) -> "Capabilities":
        """A copy with some fields changed."""
        return replace(self, **changes)


def capabilities_of(chip) -> Capabilities:
    """The chip's declared :class:`Capabilities`, checked; :class:`Capabilities()` defaults if it declares none."""
    declared = getattr(chip, "capabilities", None)
    if declared is None:
        return Capabilities()
    if not isinstance(declared, Capabilities):
        raise CapabilitiesError(
            f"chip.capabilities must be a tapmesh.calibration.Capabilities, got {type(declared).__name__}"
        )
    return declared.check(int(chip.n_heaters))
