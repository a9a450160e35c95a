"""Photonic neural networks: layers of programmed meshes with digital nonlinearities between them.

A :class:`PhotonicNetwork` of ``L`` layers runs each layer as one pass through a programmed mesh on a
:class:`tapmesh.calibration.Chip` (one chip per layer, or one time-multiplexed chip), with its calibrated
model as the digital twin. The forward model and the adjoint convention are in docs/training.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tapmesh.circuits import MeshParams, MeshTopology
from tapmesh.training.digital import LOSSES, Activation, Encoding, port_groups
from tapmesh.training.twin import COMPILED, compile_network, device_array


def _as_tuple(value, n_layers, what):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = tuple(value)
        if len(value) not in (1, n_layers):
            raise ValueError(f"give one {what} (time-multiplexed) or {n_layers}, got {len(value)}")
        return value
    return (value,)



class PhotonicNetwork:
    """``n_layers`` meshes of one topology with digital nonlinearities between them.

    Args:
        topology: the mesh of every layer (:func:`tapmesh.circuits.rectangular` / :func:`tapmesh.circuits.triangular`).
        n_layers: number of meshes.
        n_classes: number of classes; output ports are split into ``n_classes`` contiguous groups.
        chips: ``None`` (a model-only network: only ``autodiff`` and model evaluation), one
            :class:`tapmesh.calibration.Chip` time-multiplexed over all layers, or one chip per layer.
        calibrations: the :class:`tapmesh.calibration.Calibration` of each chip (same count as ``chips``); it
            converts phases to heater voltages and is the digital twin. ``None``: the ideal mesh model.
        activation: an :class:`Activation` or its kind (``"abs"``, ``"abs2"``, ``"eo"``, ``"linear"``).
        encoding: an :class:`Encoding` or its kind (``"amplitude"``, ``"amplitude_phase"``).
        loss: ``"ce"`` (cross-entropy on normalized class powers), ``"softmax_ce"`` (on softmax of
            ``temperature`` × normalized powers) or ``"mse"`` (see :data:`LOSSES`).
        dtype: complex dtype of the digital twin and of injected fields (complex128 for checks,
            complex64 for speed).
    """

    def __init__(
        self,
        topology: MeshTopology,
        n_layers: int,
        n_classes: int,
        *,
        chips=None,
        calibrations=None,
        activation: Activation | str = "abs",
        encoding: Encoding | str = "amplitude",
        loss: str = "ce",
        groups: Sequence[Sequence[int]] | None = None,
        temperature: float = 10.0,
        dtype=jnp.complex128,
    ):
        if n_layers < 1:
            raise ValueError("a network needs at least one layer")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.topology = topology
        self.n = topology.n
        self.n_layers = int(n_layers)
        self.n_classes = int(n_classes)
        self.activation = activation if isinstance(activation, Activation) else Activation(activation)
        self.encoding = encoding if isinstance(encoding, Encoding) else Encoding(encoding)
        self.loss_kind = loss
        self.temperature = float(temperature)
        self.dtype = jnp.dtype(dtype)
        self.real_dtype = jnp.float32 if self.dtype == jnp.complex64 else jnp.float64
        self.groups = tuple(tuple(g) for g in (groups or port_groups(self.n, n_classes)))
        group_matrix = np.zeros((self.n, self.n_classes))
        for k, group in enumerate(self.groups):
            group_matrix[list(group), k] = 1.0
        self.group_matrix = jnp.asarray(group_matrix, dtype=self.real_dtype)

        self.chips = _as_tuple(chips, self.n_layers, "chip")
        self.calibrations = _as_tuple(calibrations, self.n_layers, "calibration")
        if self.chips is not None and self.calibrations is not None and len(self.chips) != len(self.calibrations):
            raise ValueError("give one calibration per chip")
        if self.chips is not None:
            for chip in self.chips:
                if chip.n_modes != self.n or chip.n_heaters != topology.n_shifters:
                    raise ValueError(
                        f"chip has {chip.n_modes} modes / {chip.n_heaters} heaters, the network's mesh "
                        f"{topology.n} / {topology.n_shifters}"
                    )
            if self.calibrations is None:
                raise ValueError("a network on chips needs their calibrations (Calibration.nominal for an ideal chip)")
        self._programmed: dict[int, tuple[int, np.ndarray]] = {}
        self._dark: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.overhead_passes = 0

        zeros = np.zeros(topology.n_shifters)
        if self.calibrations is None:
            bases = [MeshParams.zeros(topology)]
        else:
            bases = [cal.mesh_params(zeros) for cal in self.calibrations]
        self._bases = [b.astype(self.real_dtype) for b in bases]
        self._build_functions()

    # ------------------------------------------------------------------------------ structure
    @property
    def n_phases(self) -> int:
        """Phases per layer (= heaters = taps of one mesh)."""
        return self.topology.n_shifters

    @property
    def on_chip(self) -> bool:
        return self.chips is not None

    @property
    def time_multiplexed(self) -> bool:
        return self.chips is not None and len(self.chips) == 1 and self.n_layers > 1

    def _slot(self, layer: int) -> int:
        return 0 if (self.calibrations is None or len(self.calibrations) == 1) else layer

    def chip(self, layer: int):
        """The chip that realizes ``layer``."""
        if self.chips is None:
            raise RuntimeError("this network has no chip (model only): use autodiff / on='model'")
        return self.chips[0 if len(self.chips) == 1 else layer]

    def calibration(self, layer: int):
        return None if self.calibrations is None else self.calibrations[self._slot(layer)]

    def twin(self, layer: int, phases_l) -> MeshParams:
        """Digital-twin parameters of ``layer`` at phases ``phases_l`` (canonical order)."""
        return self._bases[self._slot(layer)].with_phases(jnp.asarray(phases_l, dtype=self.real_dtype))

    def tap_fraction(self, layer: int) -> np.ndarray:
        """Calibrated tap fraction t of every tap of ``layer``'s chip."""
        cal = self.calibration(layer)
        if cal is None:
            raise RuntimeError("in-situ methods need the calibrated tap fractions of the chip")
        return np.asarray(cal.tap_fraction, dtype=np.float64) * np.ones(self.n_phases)

    def tap_efficiency(self, layer: int) -> np.ndarray:
        """(2, n_phases) camera reading per mW in the guide, forward / backward gratings, from the
        calibration (``Calibration.tap_efficiency``; the tap fraction when a calibration lacks it)."""
        cal = self.calibration(layer)
        eff = getattr(cal, "tap_efficiency", None)
        if eff is None:
            return np.stack([self.tap_fraction(layer)] * 2)
        return np.asarray(eff, dtype=np.float64) * np.ones((2, self.n_phases))

    def init(self, seed: int = 0) -> list[jax.Array]:
        """Initial phases: one (n_phases,) array per layer, uniform in [0, 2π)."""
        rng = np.random.default_rng(seed)
        return [jnp.asarray(rng.uniform(0, 2 * np.pi, self.n_phases), dtype=self.real_dtype) for _ in range(self.n_layers)]

    def encode(self, features) -> np.ndarray:
        """Input fields (batch, n) for features (batch, d) in [0, 1]."""
        return self.encoding(features, self.n, dtype=self.dtype)

    # --------------------------------------------------------------------------- pure functions
    def _build_functions(self):
        # Compiled once per network *shape* (module cache): networks that differ only in their chips or
        # calibration values share the compiled code; the twin's base parameters are arguments.
        key = (self.topology, self.n_layers, self.activation, self.loss_kind, self.groups, self.n_classes, str(self.dtype), self.temperature)
        if key not in COMPILED:
            COMPILED[key] = compile_network(
                self.topology, self.n_layers, self.activation, self.loss_kind, self.group_matrix, self.n_classes,
                self.real_dtype, self.temperature,
            )
        fns = COMPILED[key]
        self._layer_bases = [self._bases[self._slot(l)] for l in range(self.n_layers)]
        b = self._layer_bases
        self._class_powers = fns["class_powers"]
        self._loss_of_powers = fns["loss_of_powers"]
        self._model_fields = lambda phases, x: fns["model_fields"](b, phases, x)
        self._model_loss = lambda phases, x, y: fns["model_loss"](b, phases, x, y)
        self._model_value_and_grad = lambda phases, x, y: fns["model_value_and_grad"](b, phases, x, y)
        self._output_adjoint = fns["output_adjoint"]
        self._activation_adjoint = fns["activation_adjoint"]
        self._activation = fns["activation"]
        self._local_gradients = [
            (lambda p, x, c, _l=l: fns["local_gradient"](b[_l], p, x, c)) for l in range(self.n_layers)
        ]

    # digital helpers used by the gradient methods
    def class_powers(self, z) -> jax.Array:
        return self._class_powers(jnp.asarray(z, dtype=self.dtype))

    def loss_of_powers(self, class_powers, y) -> float:
        return float(self._loss_of_powers(jnp.asarray(class_powers, dtype=self.real_dtype), jnp.asarray(y)))

    def output_adjoint(self, z_last, y):
        """(loss, c): the loss of the last layer's field and its adjoint ``c`` (mean over the batch)."""
        loss, c = self._output_adjoint(device_array(z_last, self.dtype), jnp.asarray(y))
        return float(loss), np.asarray(c)

    def activation_adjoint(self, z, a) -> np.ndarray:
        """Adjoint at a layer's output ``z`` from the adjoint ``a`` at the next layer's input f(z)."""
        return np.asarray(self._activation_adjoint(device_array(z, self.dtype), device_array(a, self.dtype)))

    def activate(self, z) -> np.ndarray:
        """The activation of a read-out field ``z`` (compiled), as a host array of the network's dtype."""
        return np.asarray(self._activation(device_array(z, self.dtype)))

    def local_model_gradient(self, layer: int, phases_l, x, c) -> jax.Array:
        """∂/∂θ Re Σ_b c_b·(U_l(θ) x_b) on the digital twin: maps a field-space error (a weight update
        ``ΔW = Σ_b conj(c_b) conj(x_b)ᵀ``) to phases through the model's Jacobian."""
        return self._local_gradients[layer](
            device_array(phases_l, self.real_dtype), device_array(x, self.dtype), device_array(c, self.dtype)
        )

    # ------------------------------------------------------------------------------ model
    def model_fields(self, phases, x_fields) -> list[jax.Array]:
        """Every layer's output field z_l on the digital twin."""
        return self._model_fields(list(phases), jnp.asarray(x_fields, dtype=self.dtype))

    def model_loss(self, phases, features, y) -> float:
        return float(self._model_loss(list(phases), jnp.asarray(self.encode(features)), jnp.asarray(y)))

    def model_value_and_grad(self, phases, features, y):
        return self._model_value_and_grad(list(phases), jnp.asarray(self.encode(features)), jnp.asarray(y))

    # ------------------------------------------------------------------------------ chip
    def program(self, layer: int, phases_l) -> None:
        """Set the heater voltages of ``layer``'s chip to realize ``phases_l`` (calibrated conversion).

        A chip this network programmed last with the same phases is not reprogrammed (so nothing else
        should drive the chip between two calls)."""
        chip = self.chip(layer)
        key = id(getattr(chip, "wrapped", chip))  # a bench-clocked wrapper shares its chip's state
        phases_l = np.asarray(phases_l, dtype=np.float64)
        last = self._programmed.get(key)
        if last is not None and last[0] == layer and np.array_equal(last[1], phases_l):
            return
        volts = np.asarray(self.calibration(layer).voltages_for_phases(phases_l))
        chip.set_voltages(volts)
        self._programmed[key] = (layer, phases_l.copy())

    def dark_taps(self, layer: int, frames: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Camera dark frames (forward, backward gratings) of ``layer``'s chip, mW: the mean reading with
        no light injected, measured once per chip (``frames`` dark fields, counted in
        ``overhead_passes``) and subtracted from tap readings by the in-situ methods."""
        chip = self.chip(layer)
        key = id(getattr(chip, "wrapped", chip))
        if key not in self._dark:
            chip.inject(np.zeros((frames, self.n), dtype=self.dtype), "input")
            fwd = np.asarray(chip.read_taps("forward")).mean(axis=0)
            bwd = np.asarray(chip.read_taps("backward")).mean(axis=0)
            self._dark[key] = (fwd, bwd)
            self.overhead_passes += frames
        return self._dark[key]

    def chip_forward(self, phases, x_fields, *, taps: bool = False, coherent: bool = True):
        """One forward pass of every layer on the chip(s).

        Returns a dict: ``xs`` (each layer's injected field), ``zs`` (each layer's coherent output field,
        when ``coherent``), ``powers`` (last layer's output powers, mW), ``taps`` (forward tap powers per
        layer when ``taps``) and ``passes`` (sample-passes through a mesh: batch × layers)."""
        x = np.asarray(x_fields, dtype=self.dtype)
        xs, zs, tap_powers = [], [], []
        passes = 0
        powers = None
        for l in range(self.n_layers):
            self.program(l, phases[l])
            chip = self.chip(l)
            chip.inject(x, "input")
            passes += x.shape[0]
            xs.append(x)
            if taps:
                tap_powers.append(np.asarray(chip.read_taps("forward")))
            last = l == self.n_layers - 1
            if coherent:
                z = np.asarray(chip.read_outputs_coherent())
                zs.append(z)
                if last:
                    powers = np.asarray(chip.read_outputs())
                else:
                    x = self.activate(z)
            else:
                p = np.asarray(chip.read_outputs())
                if last:
                    powers = p
                elif self.activation.from_powers:
                    x = self.activation.of_powers(p).astype(self.dtype)
                else:
                    raise ValueError(f"activation {self.activation.kind!r} needs the coherent output field")
        return {"xs": xs, "zs": zs, "powers": powers, "taps": tap_powers if taps else None, "passes": passes}

    # --------------------------------------------------------------------------- evaluation
    def class_powers_of(self, phases, features, on: str = "chip") -> np.ndarray:
        """Class powers (batch, n_classes) measured on the chip (``on="chip"``) or from the twin."""
        x = self.encode(features)
        if on == "model" or not self.on_chip:
            return np.asarray(self.class_powers(self.model_fields(phases, x)[-1]))
        out = self.chip_forward(phases, x, coherent=not self.activation.from_powers)
        return np.asarray(out["powers"]) @ np.asarray(self.group_matrix, dtype=np.float64)

    def predict(self, phases, features, on: str = "chip") -> np.ndarray:
        return np.argmax(self.class_powers_of(phases, features, on=on), axis=1)

    def evaluate(self, phases, features, y, on: str = "chip", batch_size: int = 1024) -> tuple[float, float]:
        """(loss, accuracy) on ``features``/``y``, measured on the chip or on the twin."""
        losses, correct = [], 0
        for start in range(0, len(y), batch_size):
            p = self.class_powers_of(phases, features[start : start + batch_size], on=on)
            yy = np.asarray(y[start : start + batch_size])
            losses.append(self.loss_of_powers(p, yy) * len(yy))
            correct += int(np.sum(np.argmax(p, axis=1) == yy))
        return float(np.sum(losses) / len(y)), correct / len(y)

    def __repr__(self) -> str:
        where = "model" if self.chips is None else ("1 chip, time-multiplexed" if self.time_multiplexed else f"{len(self.chips)} chip(s)")
        return (
            f"PhotonicNetwork({self.n_layers} × {self.topology.kind}({self.n}), {self.activation.kind}, "
            f"{self.encoding.kind} encoding, {self.n_classes} classes, loss={self.loss_kind}, {where})"
        )
