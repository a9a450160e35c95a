"""Checks of scalar arguments at the public API's boundary: integers in a range, finite floats in a range,
wavelengths. Each raises a named error whose message names the argument, before any work is done.

Every package (circuits, calibration, training, the CLI) uses these, so a bad value reads the same
everywhere; the error class is the caller's (a ``ValueError`` subclass of its package by default).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from tapmesh.circuits.errors import CircuitsError

MAX_MODES = 1024
"""Largest mesh a topology is built for: n = 1024 holds 523,776 MZIs, 16× the largest mesh benchmarked
(n = 256 on a GPU); a 10⁶-mode request would allocate for seconds before running out of memory."""

WL_RANGE_UM = (0.2, 20.0)
"""Wavelengths the models accept, µm (the SAX models are written for the near infrared; outside this
range the dispersion expansions are meaningless)."""


class ArgumentError(CircuitsError):
    """A scalar argument is of the wrong type or outside its range (the message names it)."""


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None, error=ArgumentError) -> int:
    """``value`` as an ``int`` within [minimum, maximum]; ``error`` (naming ``name``) otherwise.

    Bools are refused (``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise error(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise error(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise error(f"{name} must be at most {maximum}, got {value}")
    return value


def check_float(
    value,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    unit: str = "",
    error=ArgumentError,
) -> float:
    """``value`` as a finite ``float`` within its range (``strict_minimum``: above ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise error(f"{name} must be a number, got {value!r}")
    value = float(value)
    suffix = f" {unit}" if unit else ""
    if not math.isfinite(value):
        raise error(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        raise error(f"{name} must be {'above' if strict_minimum else 'at least'} {minimum:g}{suffix}, got {value:g}{suffix}")
    if maximum is not None and value > maximum:
        raise error(f"{name} must be at most {maximum:g}{suffix}, got {value:g}{suffix}")
    return value


def check_wavelength(wl, name: str = "wl", error=ArgumentError):
    """A wavelength in µm (a number or an array of them) inside :data:`WL_RANGE_UM`; arrays are checked
    when they hold concrete values (inside a jax trace the check is left to the caller)."""
    import jax

    low, high = WL_RANGE_UM
    if isinstance(wl, jax.core.Tracer):
        return wl
    try:
        values = np.asarray(wl, dtype=float)
    except (TypeError, ValueError):
        raise error(f"{name} must be a wavelength in µm (a number or an array of numbers), got {wl!r}") from None
    if values.size == 0:
        raise error(f"{name} must hold at least one wavelength")
    if not np.all(np.isfinite(values)):
        raise error(f"{name} must be finite, got {wl!r}")
    if values.min() < low or values.max() > high:
        raise error(f"{name} must lie in {low:g}–{high:g} µm, got {values.min():g}–{values.max():g} µm")
    return wl
