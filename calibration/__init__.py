"""tapmesh.calibration: the Chip interface, an as-built virtual chip, and calibration of fabricated meshes.

One module per job: :mod:`~tapmesh.calibration.procedure` (:func:`calibrate`), the progressive stages
(``progressive``, ``stage_model``, ``stage_fit``, ``stage_crosstalk``, ``gamma``), the older ``sweeps``,
``fringes``, the global ``refine``, ``correction``, in-situ ``program``, the bench-time model ``bench_time``,
``persistence``, ``crosstalk``, the plan from the bench's ``capabilities`` (``planning``, ``bench``),
``discovery`` of the heater laws, the verdict ``quality``, ``neighbours`` from the chip's geometry, the
driver kit ``testing``, and the virtual chip
(``virtual``, ``asbuilt``, ``noise``). Derivations are in docs/calibration.md.
"""

from tapmesh.calibration.archive import Archive, ArchiveError, ArchiveExhaustedError, ReplayMismatchError
from tapmesh.calibration.asbuilt import AsBuilt
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.capabilities import (
    BenchCosts,
    Capabilities,
    CapabilitiesError,
    MissingCapabilityError,
    capabilities_of,
)
from tapmesh.calibration.chip import Chip
from tapmesh.calibration.correction import Correction
from tapmesh.calibration.crosstalk import Crosstalk, neighbour_pairs
from tapmesh.calibration.errors import (
    CalibrationError,
    CalibrationFileError,
    CalibrationVersionError,
    ChipInterfaceError,
    ChipStateError,
    FieldError,
    MeasurementError,
    VoltageError,
)
from tapmesh.calibration.noise import Noise
from tapmesh.calibration.persistence import FORMAT_VERSION
from tapmesh.calibration.plots import plot_fits, plot_residuals
from tapmesh.calibration.program import Programmed, program, program_in_situ  # the function shadows its module name
from tapmesh.calibration.bench_time import BenchClock, ClockedChip
from tapmesh.calibration.quality import CalibrationQualityError, Quality, QualityWarning
from tapmesh.calibration.bench import Bench, LimitError
from tapmesh.calibration.procedure import STEPS, FaultWarning, calibrate, refit
from tapmesh.calibration.replay import ArchivingChip, ReplayChip
from tapmesh.calibration.virtual import VirtualChip
from tapmesh.circuits import fidelity

__all__ = [
    "Archive",
    "ArchiveError",
    "ArchiveExhaustedError",
    "ArchivingChip",
    "ReplayChip",
    "ReplayMismatchError",
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
    "ChipInterfaceError",
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
    "program",
    "program_in_situ",
    "Programmed",
    "BenchClock",
    "ClockedChip",
    "CalibrationQualityError",
    "Quality",
    "QualityWarning",
    "LimitError",
    "Bench",
    "refit",
    "plot_fits",
    "plot_residuals",
    "fidelity",
    "neighbour_pairs",
]
