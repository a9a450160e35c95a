"""calibration: the Chip interface, an as-built virtual chip, and calibration of fabricated meshes."""

from calibration.chip import Chip
from calibration.errors import (
    CalibrationError,
    CalibrationFileError,
    CalibrationVersionError,
    ChipStateError,
    FieldError,
    MeasurementError,
    VoltageError,
)
from calibration.virtual import AsBuilt, Noise, VirtualChip, neighbour_pairs

__all__ = [
    "AsBuilt",
    "CalibrationError",
    "CalibrationFileError",
    "CalibrationVersionError",
    "Chip",
    "ChipStateError",
    "FieldError",
    "MeasurementError",
    "Noise",
    "VirtualChip",
    "VoltageError",
    "neighbour_pairs",
]
