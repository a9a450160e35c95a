"""Mesh parameters as an immutable JAX pytree (an equinox Module)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from tapmesh.circuits.errors import NonFiniteError, ParamsError
from tapmesh.circuits.topology import MeshTopology

SEGMENT_NAMES = ("top_in", "bottom_in", "top_arm", "bottom_arm")
"""Order of the per-MZI loss segments in :attr:`MeshParams.loss_db`."""


class MeshParams(eqx.Module):
    """Everything that sets a mesh's transfer matrix, for a topology with K MZIs on n modes.

    Attributes:
        theta: (K,) internal phases θ, radians (top arm).
        phi: (K,) external phases φ, radians (top input).
        gamma: (n,) output phases γ, radians.
        delta: (K, 2) splitting errors δ of the (input, output) coupler of each MZI, radians of κ.
        loss_db: (K, 4) loss of each MZI's segments in dB, order :data:`SEGMENT_NAMES`
            (top input, bottom input, top arm, bottom arm).
        output_loss_db: (n,) loss of the output segments, dB.
        tap_fraction: (2K + n,) power fraction t taken by the grating tap on each phase-shifter segment,
            canonical shifter order (θ…, φ…, γ…). The mesh loses it; the camera sees it.
        idle_loss_db: (P,) loss of each idle segment (a mode passing a column without an MZI), dB, in the
            order of ``topology.tables.idle_slots``; a balanced-tap layout puts two dummy taps there.
    """

    theta: jax.Array
    phi: jax.Array
    gamma: jax.Array
    delta: jax.Array
    loss_db: jax.Array
    output_loss_db: jax.Array
    tap_fraction: jax.Array
    idle_loss_db: jax.Array

    # ----------------------------------------------------------- constructors
    @classmethod
    def zeros(cls, topology: MeshTopology, dtype=jnp.float64) -> "MeshParams":
        """An ideal mesh (no errors, no loss, no taps) with every phase at 0 (all MZIs in the cross state)."""
        k, n = topology.n_mzis, topology.n
        z = lambda *shape: jnp.zeros(shape, dtype=dtype)  # noqa: E731
        return cls(z(k), z(k), z(n), z(k, 2), z(k, 4), z(n), z(2 * k + n), z(topology.n_idle))

    @classmethod
    def from_phases(
        cls,
        topology: MeshTopology,
        theta,
        phi,
        gamma,
        dtype=jnp.float64,
    ) -> "MeshParams":
        """An ideal mesh with the given phases (radians)."""
        ideal = cls.zeros(topology, dtype)
        return eqx.tree_at(
            lambda p: (p.theta, p.phi, p.gamma),
            ideal,
            tuple(jnp.asarray(a, dtype=dtype) for a in (theta, phi, gamma)),
        )

    @classmethod
    def assemble(
        cls,
        topology: MeshTopology,
        phases,
        delta=None,
        loss_db=None,
        output_loss_db=None,
        tap_fraction=None,
        idle_loss_db=None,
        dtype=jnp.float64,
    ) -> "MeshParams":
        """Parameters from a phase vector in canonical shifter order (θ…, φ…, γ…, radians) and optional
        error arrays (``None``: ideal). The one place a phase vector is split into θ, φ, γ."""
        k, n = topology.n_mzis, topology.n
        phases = jnp.asarray(phases, dtype=dtype)
        if phases.shape != (2 * k + n,):
            raise ParamsError(f"phases must have shape ({2 * k + n},) for this {topology.kind} mesh, got {phases.shape}")

        def given(value, shape):
            if value is None:
                return jnp.zeros(shape, dtype=dtype)
            return jnp.broadcast_to(jnp.asarray(value, dtype=dtype), shape)

        return cls(
            phases[:k],
            phases[k : 2 * k],
            phases[2 * k :],
            given(delta, (k, 2)),
            given(loss_db, (k, 4)),
            given(output_loss_db, (n,)),
            given(tap_fraction, (2 * k + n,)),
            given(idle_loss_db, (topology.n_idle,)),
        )

    @classmethod
    def random(
        cls,
        topology: MeshTopology,
        seed: int = 0,
        delta_sigma: float = 0.0,
        loss_db_sigma: float = 0.0,
        loss_db_mean: float = 0.0,
        tap_fraction: float = 0.0,
        dtype=jnp.float64,
    ) -> "MeshParams":
        """Phases uniform in [0, 2π); optional Gaussian splitting errors (σ in rad), segment losses (dB,
        clipped at 0; idle segments too) and a uniform tap fraction. For tests, benchmarks and examples."""
        rng = np.random.default_rng(seed)
        k, n = topology.n_mzis, topology.n
        loss = np.clip(rng.normal(loss_db_mean, loss_db_sigma, (k, 4)), 0.0, None)
        out_loss = np.clip(rng.normal(loss_db_mean, loss_db_sigma, n), 0.0, None)
        arrays = (
            rng.uniform(0, 2 * np.pi, k),
            rng.uniform(0, 2 * np.pi, k),
            rng.uniform(0, 2 * np.pi, n),
            rng.normal(0.0, delta_sigma, (k, 2)),
            loss,
            out_loss,
            np.full(2 * k + n, tap_fraction),
            np.clip(rng.normal(loss_db_mean, loss_db_sigma, topology.n_idle), 0.0, None),  # drawn last: earlier draws keep their values
        )
        return cls(*(jnp.asarray(a, dtype=dtype) for a in arrays))

    # ------------------------------------------------------------- utilities
    @property
    def phases(self) -> jax.Array:
        """All phases in canonical shifter order (θ…, φ…, γ…), radians."""
        return jnp.concatenate([self.theta, self.phi, self.gamma])

    def with_phases(self, phases) -> "MeshParams":
        """A copy with the phases replaced by a vector in canonical shifter order."""
        phases = jnp.asarray(phases)
        k = self.theta.shape[0]
        return eqx.tree_at(
            lambda p: (p.theta, p.phi, p.gamma),
            self,
            (phases[:k], phases[k : 2 * k], phases[2 * k :]),
        )

    def astype(self, dtype) -> "MeshParams":
        """The same parameters cast to a real dtype (float32 for a complex64 engine)."""
        if all(getattr(a, "dtype", None) == dtype for a in jax.tree_util.tree_leaves(self)):
            return self
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=dtype), self)

    def expected_shapes(self, topology: MeshTopology) -> dict[str, tuple[int, ...]]:
        k, n = topology.n_mzis, topology.n
        return {
            "theta": (k,),
            "phi": (k,),
            "gamma": (n,),
            "delta": (k, 2),
            "loss_db": (k, 4),
            "output_loss_db": (n,),
            "tap_fraction": (2 * k + n,),
            "idle_loss_db": (topology.n_idle,),
        }

    def check_values(self) -> "MeshParams":
        """Raise :class:`NonFiniteError` naming the first field with NaN/inf, :class:`ParamsError` for a complex
        field or a tap fraction outside [0, 1). Concrete arrays only (skipped under tracing)."""
        for name in (f.name for f in dataclasses.fields(self)):
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue
            array = np.asarray(value)
            if np.iscomplexobj(array):
                raise ParamsError(f"MeshParams.{name} must be real, got dtype {array.dtype}")
            if not np.all(np.isfinite(array)):
                raise NonFiniteError(f"MeshParams.{name} contains NaN or infinity")
        if not isinstance(self.tap_fraction, jax.core.Tracer):
            taps = np.asarray(self.tap_fraction)
            if np.any((taps < 0) | (taps >= 1)):
                raise ParamsError("MeshParams.tap_fraction must lie in [0, 1)")
        return self

    def check(self, topology: MeshTopology, values: bool = True) -> "MeshParams":
        """Raise :class:`ParamsError` if a field does not fit ``topology``, :class:`NonFiniteError` on NaN/inf.

        Only concrete arrays are checked for values; under ``jit``/``grad`` tracing the shapes still are."""
        for name, shape in self.expected_shapes(topology).items():
            value = getattr(self, name)
            if tuple(jnp.shape(value)) != shape:
                raise ParamsError(
                    f"MeshParams.{name} has shape {tuple(jnp.shape(value))}, but a {topology.kind} mesh "
                    f"on {topology.n} modes ({topology.n_mzis} MZIs) needs {shape}"
                )
            if jnp.iscomplexobj(value):
                raise ParamsError(f"MeshParams.{name} must be real, got dtype {jnp.asarray(value).dtype}")
        return self.check_values() if values else self
