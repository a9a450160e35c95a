"""The ``Chip`` protocol: everything calibration and training may do to a mesh chip.

Calibration and training talk to hardware only through this protocol, so the same code drives the
simulated as-built chip (:class:`tapmesh.calibration.VirtualChip`) and a lab bench. To drive a real chip, write
a class with these members around your DAC (heater voltages), your input-field source (a generator mesh
or an external modulator array) and your IR camera (grating taps) and output detectors; nothing needs
to subclass anything.

Units: voltages in V; fields in √mW (|x|² is mW at the chip's input); powers in mW.

Heater / tap order is the canonical phase-shifter order of the mesh topology
(:attr:`tapmesh.circuits.MeshTopology.phase_shifters`): θ heaters of MZIs 0..K−1, then φ heaters of MZIs
0..K−1, then the n output γ heaters; tap i is the grating tap on the segment of heater i. Writing a
driver for a real bench: docs/calibration.md.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from tapmesh.calibration.errors import FieldError, VoltageError

Side = Literal["input", "output"]
TapDirection = Literal["forward", "backward"]


@runtime_checkable
class Chip(Protocol):
    """A programmable mesh chip with grating-tap monitors.

    A measurement cycle is: :meth:`set_voltages`, :meth:`inject` a field (or a batch of fields: one
    camera frame each), then any of the ``read_*`` methods, which report on the fields injected last.
    """

    @property
    def n_modes(self) -> int:
        """Number of waveguide modes (input and output ports)."""
        ...

    @property
    def n_heaters(self) -> int:
        """Number of heaters, equal to the number of grating taps (2K + n for K MZIs)."""
        ...

    def set_voltages(self, voltages: ArrayLike) -> None:
        """Apply heater voltages, shape (n_heaters,), in V. Raises on NaN or out-of-range voltages."""
        ...

    def inject(self, x: ArrayLike, side: Side = "input") -> None:
        """Launch complex field(s) ``x`` of shape (n_modes,) or (batch, n_modes), √mW, into the input ports
        (``side="input"``, light travels forward) or the output ports (``"output"``, light travels backward)."""
        ...

    def read_taps(self, direction: TapDirection = "forward") -> np.ndarray:
        """Power seen by the camera at every tap grating of one propagation direction, mW, shape
        (batch, n_heaters) (or (n_heaters,) for a single injected field). Forward gratings collect light
        travelling input→output, backward gratings light travelling output→input."""
        ...

    def read_outputs(self) -> np.ndarray:
        """Power at the ports opposite the injection side, mW, shape (batch, n_modes) or (n_modes,)."""
        ...

    def read_outputs_coherent(self) -> np.ndarray:
        """Complex field at the ports opposite the injection side, √mW (same shapes as ``read_outputs``).

        Only chips with a coherent analyzer (or a reference arm) have it; others raise
        ``NotImplementedError``."""
        ...


def checked_voltages(voltages: ArrayLike, n_heaters: int) -> np.ndarray:
    """``voltages`` as a float array of shape (n_heaters,), or :class:`VoltageError` (complex, wrong shape,
    NaN/inf): the checks every driver's ``set_voltages`` makes before its own range check."""
    if np.iscomplexobj(voltages):
        raise VoltageError("voltages must be real")
    v = np.array(voltages, dtype=float)
    if v.shape != (n_heaters,):
        raise VoltageError(f"voltages must have shape ({n_heaters},), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise VoltageError("voltages contain NaN or infinity")
    return v


def checked_field(x: ArrayLike, side: str, n_modes: int) -> np.ndarray:
    """``x`` as an array of shape (n_modes,) or (batch, n_modes), or :class:`FieldError` (side not
    input/output, not floating point, wrong shape, NaN/inf): the checks of every driver's ``inject``."""
    if side not in ("input", "output"):
        raise FieldError(f"side must be 'input' or 'output', got {side!r}")
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.complexfloating) or np.issubdtype(x.dtype, np.floating)):
        raise FieldError(f"field must be complex or real floating point, got dtype {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] != n_modes:
        raise FieldError(f"field must have shape ({n_modes},) or (batch, {n_modes}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FieldError("field contains NaN or infinity")
    return x


REQUIRED = ("n_modes", "n_heaters", "set_voltages", "inject", "read_taps", "read_outputs")
"""The members every chip must have (``read_outputs_coherent`` may raise NotImplementedError)."""


def check_chip(chip) -> None:
    """Refuse an object that is not a :class:`Chip` before any work: a missing member, or a mode or heater
    count that is not a positive integer, raises :class:`~tapmesh.calibration.ChipInterfaceError`."""
    from tapmesh.calibration.errors import ChipInterfaceError

    missing = [name for name in REQUIRED if not hasattr(chip, name)]
    if missing:
        raise ChipInterfaceError(
            f"{type(chip).__name__} is not a Chip: it lacks {', '.join(missing)} (see tapmesh.calibration.Chip)"
        )
    for name in ("n_modes", "n_heaters"):
        value = getattr(chip, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ChipInterfaceError(f"chip.{name} must be a positive integer, got {value!r}")
