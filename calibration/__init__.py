"""calibration: the Chip interface, an as-built virtual chip, and calibration of fabricated meshes."""

from calibration.chip import Chip

__all__ = ["Chip"]
