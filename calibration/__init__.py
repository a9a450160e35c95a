"""calibration: the Chip interface, an as-built virtual chip, and calibration of fabricated meshes."""

from tapmesh.calibration.calibration import FORMAT_VERSION, Calibration, Correction
from tapmesh.calibration.capabilities import (
    BenchCosts,
    Capabilities,
    CapabilitiesError,
    MissingCapabilityError,
    capabilities_of,
)
from tapmesh.calibration.chip import Chip
from tapmesh.calibration.crosstalk import Crosstalk
from tapmesh.calibration.errors import (
    CalibrationError,
    CalibrationFileError,
    CalibrationVersionError,
    ChipStateError,
    FieldError,
    MeasurementError,
    VoltageError,
)
from tapmesh.calibration.plots import plot_fits, plot_residuals
from tapmesh.calibration.procedure import STEPS, FaultWarning, calibrate
from tapmesh.calibration.virtual import AsBuilt, Noise, VirtualChip, neighbour_pairs
from tapmesh.circuits import fidelity

__all__ = [
    "FORMAT_VERSION",
    "Calibration",
    "Correction",
    "BenchCosts",
    "Capabilities",
    "CapabilitiesError",
    "MissingCapabilityError",
    "capabilities_of",
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
