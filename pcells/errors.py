"""Named errors of the layout generators: all are ``ValueError`` subclasses, so callers can catch either."""

from __future__ import annotations


class LayoutError(ValueError):
    """Base class: a layout cannot be drawn from the given parameters."""


class MeshSizeError(LayoutError):
    """Mesh size ``n`` out of range (2 ≤ n ≤ 64)."""


class MeshKindError(LayoutError):
    """Unknown mesh kind (expected ``"rectangular"`` or ``"triangular"``)."""


class PitchError(LayoutError):
    """A pitch (waveguide, pad, fiber) is smaller than what the drawn component needs."""


class CrossSectionError(LayoutError):
    """A cross-section name is not known to the active PDK."""


class TapFractionError(LayoutError):
    """Tap fraction outside the supported 1–5 % range."""


class CouplerKindError(LayoutError):
    """Unknown 2x2 coupler kind (expected ``"dc"`` or ``"mmi"``)."""


class ConnectivityError(LayoutError):
    """A drawn layout is not connected as intended (dangling optical port, heater without pad)."""


class ProcessError(LayoutError):
    """Process rules that are inconsistent, or a process name that is not registered."""


class RuleError(PitchError):
    """A width, pitch or spacing (track, pad, bump) below the process minimum; the message names the minimum."""


class ReticleError(LayoutError):
    """The die does not fit the reticle field with the chosen options; the message says what would fit."""


class StaggerError(RuleError):
    """A staggered pad field whose row offset puts a track closer than the metal space to a pad, or that cannot
    carry a stripe's tracks; the message says which offset or pad width would."""
