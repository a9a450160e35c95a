"""An as-built virtual chip: a simulated mesh with hidden fabrication errors and a noisy camera.

:class:`VirtualChip` implements the :class:`tapmesh.calibration.Chip` protocol on the JAX engine
(:func:`tapmesh.circuits.propagate` with ``taps="power"``), with the errors of an
:class:`~tapmesh.calibration.asbuilt.AsBuilt` and the camera of a :class:`~tapmesh.calibration.noise.Noise`;
calibration and training code must never read its hidden truth. Heater law, camera model and the lazy
simulation are described in docs/calibration.md. On several devices (``jax.devices()``) each injected batch
is split over them (:func:`tapmesh.circuits.engine.shard_batch`), with the same readings.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from tapmesh import circuits
from tapmesh.calibration.asbuilt import AsBuilt
from tapmesh.calibration.bench import electrical_power_mw
from tapmesh.calibration.capabilities import Capabilities
from tapmesh.calibration.chip import checked_field, checked_voltages
from tapmesh.calibration.crosstalk import Crosstalk, neighbour_pairs  # noqa: F401  (re-exported)
from tapmesh.calibration.errors import ChipStateError, VoltageError
from tapmesh.calibration.heater import heater_phases
from tapmesh.calibration.noise import Noise, camera_reading
from tapmesh.circuits.engine import padded_batch, replicate, shard_batch


# ----------------------------------------------------------------------------- the chip
PRECISIONS = ("complex128", "complex64")


def _bucket(batch: int) -> int:
    """Batch sizes are padded to the next power of two, so varying batches reuse a few compiled shapes."""
    return batch if batch & (batch - 1) == 0 else 1 << batch.bit_length()


@partial(jax.jit, static_argnames=("topology", "direction"))
def _tapped_pass(topology, params, x, tap_fraction, lit, direction):
    """Output field and true tap powers (tapped fraction × guide power; 0 at dark taps) of one batch,
    in one compiled call: the |f|² is fused into the pass, so only real powers come back to the host."""
    y, guide_power = circuits.propagate(topology, params, x, taps="power", direction=direction, check=False)
    return y, jnp.where(lit, tap_fraction * guide_power, 0.0).astype(jnp.float64)


@jax.jit
def _apply(matrix, x):
    """y = x @ matrix (rows of x are fields): the untapped pass through a cached transfer matrix."""
    return jnp.matmul(x, matrix, precision=jax.lax.Precision.HIGHEST)


KIND_TAPS, KIND_OUTPUTS, KIND_COHERENT = 0, 2, 3
"""Reading kinds of keyed noise (forward taps 0, backward taps 1, output powers, coherent fields)."""


class FrameKeyedRng:
    """Normal draws for ``batch`` frames, frame k's row from its own generator keyed by (``seed``, ``kind``,
    tag ``start + k``): successive :meth:`normal` calls continue each frame's stream, so what frame k
    reads depends only on its key, never on the frames before it (the bench emulator's scheme)."""

    def __init__(self, seed: int, kind: int, start: int, batch: int):
        self._streams = [np.random.default_rng([seed, 104729, kind, start + k]) for k in range(batch)]

    def normal(self, size) -> np.ndarray:
        rows = [g.normal(size=size[1:]) for g in self._streams]
        return np.stack(rows) if rows else np.zeros(size)


class VirtualChip:
    """A simulated fabricated mesh with hidden errors and a noisy camera; implements :class:`tapmesh.calibration.Chip`.

    Args:
        topology: the mesh (:class:`tapmesh.circuits.MeshTopology`).
        errors: its hidden truth; default ``AsBuilt.random(topology, seed=seed)``.
        noise: detector noise; default :meth:`Noise.none`.
        seed: seeds the default errors, the per-grating gains/offsets and the noise stream.
        max_voltage: heaters accept drive values in [``min_voltage``, ``max_voltage``] (V, or mA with
            ``drive="current"``; the heater law then reads α in rad/mA²).
        min_voltage: lower end of the drive range (default ``-max_voltage``).
        drive: ``"voltage"`` or ``"current"`` (the declared unit of ``set_voltages``).
        output_side_source: light can be injected at the output side; without it ``inject(...,
            side="output")`` raises ``NotImplementedError``.
        output_detectors, coherent_readout: the output power meters / the coherent analyzer exist;
            without them ``read_outputs`` / ``read_outputs_coherent`` raise ``NotImplementedError``.
        max_total_power_mw, heater_resistance_ohm: a limit on the summed electrical heater power (mW),
            enforced by ``set_voltages`` (``VoltageError``), and the heater resistance (Ω) it needs.
        tap_noise_mw: the camera read noise the chip declares (mW rms; default: what ``noise`` has).
        precision: ``"complex128"`` (default: exact to ~1e-15, what calibration fits and the in-situ
            gradient identities are tested against) or ``"complex64"`` (the light simulated in single
            precision, ~1e-7 relative: far below any camera noise, ~2× faster). The heater law and the
            camera model run in float64 either way; readings are float64 arrays.
        lazy: ``True`` (default) simulates only what is read: :meth:`inject` stores the field; the output
            ports are computed when a ``read_outputs*`` asks (through the transfer matrix, cached per
            voltage setting and direction); the tapped pass runs only when :meth:`read_taps` asks for the
            lit direction (the unlit one reads dark without a simulation). ``False`` runs the full
            tapped pass at every :meth:`inject` (the reference behaviour). Both give the same readings to
            rounding, with the same noise draws.
        keyed_noise: ``False`` (default) draws the camera and detector noise from one stream, so a
            reading depends on how many were taken before by this object. ``True`` keys every frame's
            noise by (``seed``, reading kind, frame tag), as the bench emulator does: the chip then has
            a settable ``frame_index`` (tag of the next frame; each ``read_*`` advances it by the batch),
            and a fresh chip set to ``frame_index = k`` draws what the first drew at frame k, which is
            what lets a resumed run (``train(..., resume=True)``, ``calibrate(..., resume=True)``) equal
            an uninterrupted one. A lazy keyed chip also takes the output field always from the transfer
            matrix (not from a tapped pass that ran first), so no reading depends, even in its last
            bits, on the order of the reads. The fixed gains and offsets are drawn from ``seed`` either way.

    ``truth`` and :meth:`unitary` are for tests only. ``measurements`` counts every frame read (each
    ``read_*`` call counts one per injected field).
    """

    def __init__(
        self,
        topology: circuits.MeshTopology,
        errors: AsBuilt | None = None,
        noise: Noise | None = None,
        seed: int = 0,
        max_voltage: float = 5.0,
        precision: str = "complex128",
        lazy: bool = True,
        min_voltage: float | None = None,
        drive: str = "voltage",
        output_side_source: bool = True,
        output_detectors: bool = True,
        coherent_readout: bool = True,
        max_total_power_mw: float | None = None,
        heater_resistance_ohm: float | None = None,
        tap_noise_mw: float | None = None,
        keyed_noise: bool = False,
    ):
        if not isinstance(topology, circuits.MeshTopology):
            raise TypeError(
                f"VirtualChip needs a circuits.MeshTopology, got {type(topology).__name__}; for a layout, "
                "build the topology of its mesh (circuits.topology(n, kind))"
            )
        precision = str(jnp.dtype(precision)) if not isinstance(precision, str) else precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.topology = topology
        self.truth = errors if errors is not None else AsBuilt.random(topology, seed=seed)
        self.noise = noise if noise is not None else Noise.none()
        self.max_voltage = float(max_voltage)
        self.min_voltage = -self.max_voltage if min_voltage is None else float(min_voltage)
        if max_total_power_mw is not None and heater_resistance_ohm is None:
            heater_resistance_ohm = 1000.0
        self.capabilities = Capabilities(
            drive=drive,
            drive_min=self.min_voltage,
            drive_max=self.max_voltage,
            max_total_power_mw=max_total_power_mw,
            heater_resistance_ohm=heater_resistance_ohm,
            output_side_source=bool(output_side_source),
            output_detectors=bool(output_detectors),
            coherent_readout=bool(coherent_readout),
            camera_saturation_mw=self.noise.full_scale_mw if self.noise.bits else None,
            tap_noise_mw=tap_noise_mw if tap_noise_mw is not None else (self.noise.read_mw or None),
        ).check(topology.n_shifters)
        self.precision = precision
        self.lazy = bool(lazy)
        self.measurements = 0
        h = topology.n_shifters
        self._check_truth(self.truth)
        self._cdtype = jnp.dtype(precision)
        self._rdtype = jnp.float32 if precision == "complex64" else jnp.float64
        self._rng = np.random.default_rng([seed, 7919])
        self._seed, self.keyed_noise = int(seed), bool(keyed_noise)
        if self.keyed_noise:
            self.frame_index = 0
        gains = 1.0 + self.noise.gain_sigma * self._rng.normal(size=(2, h))
        self._gain = np.clip(gains, 0.05, None)
        self._offset = self.noise.offset_mw * self._rng.uniform(0.5, 1.5, size=(2, h))
        self._unit_camera = bool(np.all(self._gain == 1.0) and not np.any(self._offset))
        dark = np.zeros(h, dtype=bool)
        dark[list(self.truth.dark_taps)] = True
        self._dark = dark
        # device-side constants of the tapped pass
        self._tap_fraction = jnp.asarray(self.truth.tap_fraction, dtype=self._rdtype)
        self._lit = jnp.asarray(~dark)
        # the heater law's crosstalk as a sparse product (X is zero but for neighbouring heaters)
        self._xtalk = Crosstalk.coerce(self.truth.crosstalk, h)
        self._voltages = np.zeros(h)
        self._set_state(self._voltages)
        self._field = None
        self._batch = 0
        self._single = True
        self._side = "input"
        self._y = None
        self._taps = None

    def _check_truth(self, truth: AsBuilt) -> None:
        k, n, h = self.topology.n_mzis, self.topology.n, self.topology.n_shifters
        shapes = {
            "phase_offsets": (h,),
            "alpha": (h,),
            "beta": (h,),
            "crosstalk": (h, h),
            "delta": (k, 2),
            "loss_db": (k, 4),
            "output_loss_db": (n,),
            "tap_fraction": (h,),
        }
        for name, shape in shapes.items():
            if np.shape(getattr(truth, name)) != shape:
                raise circuits.ParamsError(f"AsBuilt.{name} has shape {np.shape(getattr(truth, name))}, need {shape}")
        for i in tuple(truth.dead_heaters) + tuple(truth.dark_taps):
            if not 0 <= i < h:
                raise circuits.ParamsError(f"fault index {i} is not a heater/tap of this chip (0..{h - 1})")

    def _phases(self, v: np.ndarray) -> np.ndarray:
        """The heater law of :meth:`AsBuilt.phases`, with the crosstalk product taken over its nonzeros."""
        t = self.truth
        return heater_phases(v, t.phase_offsets, t.alpha, t.beta, self._xtalk, t.dead_heaters)

    def _set_state(self, v: np.ndarray) -> None:
        """The true mesh parameters at voltages ``v``; the cached transfer matrices of the previous
        setting are dropped."""
        params = circuits.MeshParams.assemble(
            self.topology,
            self._phases(v),
            delta=self.truth.delta,
            loss_db=self.truth.loss_db,
            output_loss_db=self.truth.output_loss_db,
            tap_fraction=self.truth.tap_fraction,
            idle_loss_db=self.truth.idle_loss_db,
        )
        self._params = params  # float64: the engine casts to the simulation precision inside the compiled pass
        self._transfer = {}

    # ------------------------------------------------------------------ protocol
    @property
    def n_modes(self) -> int:
        return self.topology.n

    @property
    def n_heaters(self) -> int:
        return self.topology.n_shifters

    @property
    def voltages(self) -> np.ndarray:
        """The voltages applied last (a copy)."""
        return self._voltages.copy()

    def set_voltages(self, voltages: ArrayLike) -> None:
        v = checked_voltages(voltages, self.n_heaters)
        caps = self.capabilities
        unit = "V" if caps.drive == "voltage" else "mA"
        if np.any((v > self.max_voltage) | (v < self.min_voltage)):
            worst = int(np.argmax(np.maximum(v - self.max_voltage, self.min_voltage - v)))
            raise VoltageError(f"drive {v[worst]:.3g} {unit} on heater {worst} is outside "
                               f"[{self.min_voltage}, {self.max_voltage}] {unit}")
        if caps.max_total_power_mw is not None:
            power = electrical_power_mw(caps, v)
            if power > caps.max_total_power_mw * (1 + 1e-9):
                raise VoltageError(f"total heater power {power:.4g} mW exceeds {caps.max_total_power_mw} mW")
        changed = not np.array_equal(v, self._voltages)
        self._voltages = v
        if changed:  # the same setting again keeps the simulated state (and cached transfer matrices)
            self._set_state(v)
        self._y = self._taps = None
        if not self.lazy and self._field is not None:
            self._simulate_tapped()

    def inject(self, x: ArrayLike, side: str = "input") -> None:
        x = checked_field(x, side, self.n_modes)
        if side == "output" and not self.capabilities.output_side_source:
            raise NotImplementedError("this chip has no light source at the output side")
        self._single = x.ndim == 1
        x = np.atleast_2d(x)
        self._batch = x.shape[0]
        padded = padded_batch(_bucket(self._batch))  # on several devices also a multiple of their count
        if padded != self._batch:
            x = np.concatenate([x, np.zeros((padded - self._batch, self.n_modes), dtype=x.dtype)])
        self._field = shard_batch(jnp.asarray(x, dtype=self._cdtype))  # one host→device copy per injection
        self._side = side
        self._y = self._taps = None
        if not self.lazy:
            self._simulate_tapped()

    def _direction(self) -> str:
        return "forward" if self._side == "input" else "backward"

    def _require_field(self) -> None:
        if self._field is None:
            raise ChipStateError("inject a field before reading the chip")

    def _simulate_tapped(self) -> None:
        y, power = _tapped_pass(self.topology, self._params, self._field, self._tap_fraction, self._lit, self._direction())
        # lazy and keyed: the output field always through the transfer matrix, so that no reading depends (even
        # in its last bits) on whether the taps were read first: a resumed run's readings equal the original's
        if self._y is None and not (self.lazy and self.keyed_noise):
            self._y = np.asarray(y)[: self._batch].astype(np.complex128)
        self._taps = np.asarray(power)[: self._batch]

    def _outputs(self) -> np.ndarray:
        """The field at the ports opposite the injection side (complex128 array), simulated once per injection."""
        self._require_field()
        if self._y is None:
            direction = self._direction()
            matrix = self._transfer.get(direction)
            if matrix is None:
                u = circuits.unitary(self.topology, self._params.astype(self._rdtype), dtype=self._cdtype)
                matrix = replicate(u.T if direction == "forward" else u)  # y = U x forward, Uᵀ x backward (rows: fields)
                self._transfer[direction] = matrix
            self._y = np.asarray(_apply(matrix, self._field))[: self._batch].astype(np.complex128)
        return self._y

    def _tap_powers(self) -> np.ndarray:
        """True tap powers (batch, n_heaters) of the lit direction, simulated once per injection."""
        self._require_field()
        if self._taps is None:
            self._simulate_tapped()
        return self._taps

    def _shape(self, a: np.ndarray) -> np.ndarray:
        return a[0] if self._single else a

    def read_taps(self, direction: str = "forward") -> np.ndarray:
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        self._require_field()
        batch = self._batch
        self.measurements += batch
        lit = (direction == "forward") == (self._side == "input")
        if lit:
            power = self._tap_powers()
            self._taps = None  # the caller owns this array (no copy); a second read simulates again
        else:
            power = np.zeros((batch, self.n_heaters))
        g = 0 if direction == "forward" else 1
        rng = self._noise_rng(KIND_TAPS + g, batch)
        reading = camera_reading(self.noise, power, self._gain[g], self._offset[g], rng, self._unit_camera)
        return self._shape(reading)

    def read_outputs(self) -> np.ndarray:
        if not self.capabilities.output_detectors:
            raise NotImplementedError("this chip has no output power detectors")
        y = self._outputs()
        self.measurements += y.shape[0]
        rng = self._noise_rng(KIND_OUTPUTS, y.shape[0])
        power = np.abs(y) ** 2
        if self.noise.shot:
            power = power + self.noise.shot * np.sqrt(power) * rng.normal(size=power.shape)
        if self.noise.read_mw:
            power = power + self.noise.read_mw * rng.normal(size=power.shape)
        return self._shape(power)

    def read_outputs_coherent(self) -> np.ndarray:
        """Complex field at the ports opposite the injection side (an ideal coherent analyzer with noise)."""
        if not self.capabilities.coherent_readout:
            raise NotImplementedError("this chip has no coherent output readout")
        y = self._outputs()
        self.measurements += y.shape[0]
        rng = self._noise_rng(KIND_COHERENT, y.shape[0])
        sigma = self.noise.shot * np.abs(y) + self.noise.read_mw
        if np.any(sigma):
            y = y + sigma * (rng.normal(size=y.shape) + 1j * rng.normal(size=y.shape)) / np.sqrt(2)
        else:
            y = y.copy()
        return self._shape(y)

    def _noise_rng(self, kind: int, batch: int):
        """The generator of the next ``batch`` frames' noise: the chip's one stream, or with ``keyed_noise``
        one stream per frame keyed by (seed, ``kind``, frame tag), the tag then advanced by ``batch``."""
        if not self.keyed_noise:
            return self._rng
        start = int(self.frame_index)
        self.frame_index = start + batch
        return FrameKeyedRng(self._seed, kind, start, batch)

    # ------------------------------------------------------------------ tests only
    def unitary(self, voltages: ArrayLike | None = None) -> np.ndarray:
        """The true transfer matrix at ``voltages`` (default: the applied ones). For tests only."""
        v = self._voltages if voltages is None else np.asarray(voltages, dtype=float)
        if v.shape != (self.n_heaters,):
            raise VoltageError(f"voltages must have shape ({self.n_heaters},), got {v.shape}")
        return np.asarray(circuits.unitary(self.topology, self.truth.mesh_params(self.topology, v)))

    def __repr__(self) -> str:
        return f"VirtualChip({self.topology.kind} n={self.n_modes}, {self.n_heaters} heaters, {self.measurements} frames read)"
