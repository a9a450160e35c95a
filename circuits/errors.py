"""Named errors of the circuits package: each says what is wrong with the input."""

from __future__ import annotations


class CircuitsError(ValueError):
    """Base class of every error raised for bad input to ``circuits``."""


class TopologyError(CircuitsError):
    """A mesh topology cannot be built (n < 2, unknown kind, ...)."""


class ShapeError(CircuitsError):
    """An array does not have the shape the topology requires."""


class DTypeError(CircuitsError, TypeError):
    """An array has a dtype the engine does not accept (e.g. an integer field)."""


class ParamsError(CircuitsError):
    """Mesh parameters do not fit the topology."""


class NonFiniteError(CircuitsError):
    """NaN or infinity in parameters or fields."""


class NotUnitaryError(CircuitsError):
    """A decomposition target is not unitary."""


class NotRealizableError(CircuitsError):
    """A sequence of MZIs cannot be placed on the given topology."""
