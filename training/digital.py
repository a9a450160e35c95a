"""The digital ends of a photonic network layer: input encoding, nonlinearities, readout groups and losses.

:class:`Encoding` turns features into input fields (√mW), :class:`Activation` is the nonlinearity applied to a
read-out field (or to measured powers), :func:`port_groups` and :data:`LOSSES` define the class readout.
The network they plug into is :class:`tapmesh.training.PhotonicNetwork`; see docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np


# --------------------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Encoding:
    """How a feature vector ``u`` (values in [0, 1]) becomes an input field on ``n_ports`` modes.

    * ``"amplitude"``: mode j carries amplitude ``scale·u_j`` (j < d); every remaining mode is a
      bias/reference mode of constant amplitude ``bias``.
    * ``"amplitude_phase"``: modes j < d carry ``scale·u_j``; modes d ≤ j < 2d carry the same features
      as phases, ``bias·exp(iπ u_j)``, on a reference amplitude; remaining modes are bias modes.

    Fields are in √mW: an amplitude of 1 is 1 mW in that input port.
    """

    kind: str = "amplitude"
    bias: float = 1.0
    scale: float = 1.0

    def __post_init__(self):
        if self.kind not in ("amplitude", "amplitude_phase"):
            raise ValueError(f"encoding kind must be 'amplitude' or 'amplitude_phase', got {self.kind!r}")

    def n_modes_needed(self, n_features: int) -> int:
        return n_features * (2 if self.kind == "amplitude_phase" else 1)

    def __call__(self, features, n_ports: int, dtype=np.complex128) -> np.ndarray:
        u = np.asarray(features, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :]
        batch, d = u.shape
        need = self.n_modes_needed(d)
        if need > n_ports:
            raise ValueError(f"{self.kind} encoding of {d} features needs {need} ports, the mesh has {n_ports}")
        x = np.full((batch, n_ports), self.bias, dtype=np.complex128)
        x[:, :d] = self.scale * u
        if self.kind == "amplitude_phase":
            x[:, d : 2 * d] = self.bias * np.exp(1j * np.pi * u)
        return x.astype(dtype)


# ---------------------------------------------------------------------------------------- activations


@dataclass(frozen=True)
class Activation:
    """Digital nonlinearity applied to a layer's read-out field (complex in, complex out).

    * ``"abs"``: ``|z|`` (needs only output powers: ``√P``);
    * ``"abs2"``: ``|z|²`` (output powers);
    * ``"eo"``: the electro-optic activation of Williamson et al. (2020), a fraction ``alpha`` of the
      power is tapped to a photodiode whose signal drives a phase modulator on the rest:
      ``f(z) = i√(1−α) · exp(−i(g|z|² + φ_b)/2) · cos((g|z|² + φ_b)/2) · z`` with gain ``g`` (rad/mW)
      and bias phase ``φ_b`` (needs the coherent field);
    * ``"linear"``: identity (for tests).
    """

    kind: str = "abs"
    alpha: float = 0.1
    gain: float = np.pi
    bias_phase: float = np.pi

    def __post_init__(self):
        if self.kind not in ("abs", "abs2", "eo", "linear"):
            raise ValueError(f"activation must be 'abs', 'abs2', 'eo' or 'linear', got {self.kind!r}")

    @property
    def from_powers(self) -> bool:
        """True when the activation can be computed from output powers alone (no coherent readout)."""
        return self.kind in ("abs", "abs2")

    def __call__(self, z):
        if self.kind == "abs":
            # smooth at 0 so that the adjoint stays finite
            return jnp.sqrt(jnp.real(z) ** 2 + jnp.imag(z) ** 2 + 1e-30).astype(z.dtype)
        if self.kind == "abs2":
            return (jnp.real(z) ** 2 + jnp.imag(z) ** 2).astype(z.dtype)
        if self.kind == "eo":
            p = jnp.real(z) ** 2 + jnp.imag(z) ** 2
            arg = 0.5 * (self.gain * p + self.bias_phase)
            return (1j * np.sqrt(1.0 - self.alpha) * jnp.exp(-1j * arg) * jnp.cos(arg) * z).astype(z.dtype)
        return z

    def of_powers(self, powers: np.ndarray) -> np.ndarray:
        """The activation from measured powers (``abs``/``abs2`` only); negative noisy readings clip to 0."""
        p = np.clip(np.asarray(powers, dtype=np.float64), 0.0, None)
        return np.sqrt(p) if self.kind == "abs" else p


# ------------------------------------------------------------------------------------------ readout


def port_groups(n_ports: int, n_classes: int) -> tuple[tuple[int, ...], ...]:
    """Contiguous, equal groups of output ports, one per class; leftover ports are unused."""
    if n_classes > n_ports:
        raise ValueError(f"{n_classes} classes need at least as many ports, the mesh has {n_ports}")
    size = n_ports // n_classes
    return tuple(tuple(range(k * size, (k + 1) * size)) for k in range(n_classes))


LOSSES = ("ce", "softmax_ce", "mse")
"""``ce``: −log q_y with q = P/ΣP the normalized class powers; ``softmax_ce``: cross-entropy of
softmax(T·q) (temperature ``T = PhotonicNetwork.temperature``, sharper margins on many classes);
``mse``: Σ (q − onehot)²."""
