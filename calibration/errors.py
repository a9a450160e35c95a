"""Named errors of the calibration package: each says what is wrong and with which input."""

from __future__ import annotations


class CalibrationError(ValueError):
    """Base class of every error raised by ``calibration`` for bad input or a failed calibration."""


class ChipInterfaceError(CalibrationError, TypeError):
    """An object given as a chip lacks members of the :class:`tapmesh.calibration.Chip` protocol."""


class VoltageError(CalibrationError):
    """Heater voltages have the wrong shape, contain NaN/inf, or exceed the chip's range."""


class FieldError(CalibrationError):
    """An injected field has the wrong shape, dtype, or contains NaN/inf."""


class ChipStateError(CalibrationError, RuntimeError):
    """A chip was read before any field was injected, or read in a way its state does not allow."""


class MeasurementError(CalibrationError):
    """A measurement returned by a chip is unusable (NaN/inf, wrong shape)."""


class CalibrationFileError(CalibrationError):
    """A calibration file is missing, unreadable, corrupt, or fails its checksum."""


class CalibrationVersionError(CalibrationFileError):
    """A calibration file was written by a newer format version than this tapmesh can read."""
