"""calibration: the Chip interface, an as-built virtual chip, and calibration of fabricated meshes."""

from calibration.calibration import FORMAT_VERSION, Calibration, Correction
from calibration.chip import Chip
from calibration.crosstalk import Crosstalk
from calibration.errors import (
    CalibrationError,
    CalibrationFileError,
    CalibrationVersionError,
    ChipStateError,
    FieldError,
    MeasurementError,
    VoltageError,
)
from calibration.plots import plot_fits, plot_residuals
from calibration.procedure import STEPS, FaultWarning, calibrate
from calibration.virtual import AsBuilt, Noise, VirtualChip, neighbour_pairs
from circuits import fidelity

__all__ = [
    "FORMAT_VERSION",
    "Calibration",
    "Correction",
    "Crosstalk",
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
    "STEPS",
    "FaultWarning",
    "calibrate",
    "plot_fits",
    "plot_residuals",
    "fidelity",
    "neighbour_pairs",
]
