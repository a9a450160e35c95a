"""The compiled digital twin of a photonic network: its jitted pure functions, compiled once per network shape.

:func:`compile_network` builds the model's forward pass, loss, adjoints and local gradients as JAX
functions whose mesh parameters are arguments, so networks that differ only in their calibration share
the compiled code; :func:`device_array` moves host readings to the device without a convert op. The
adjoint convention is in docs/training.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tapmesh import circuits

COMPILED: dict = {}
"""Compiled functions by network shape (see :meth:`tapmesh.training.PhotonicNetwork`)."""


def device_array(a, dtype) -> jax.Array:
    """``a`` as a JAX array of ``dtype``: host arrays are cast by numpy first, so no per-call XLA convert op
    runs on the device (chip readings arrive as complex128 / float64 whatever the network's dtype)."""
    if isinstance(a, jax.Array):
        return a if a.dtype == dtype else a.astype(dtype)
    return jnp.asarray(np.asarray(a, dtype=dtype))


def compile_network(top, n_layers, act, loss_kind, group_matrix, n_classes, real_dtype, temperature) -> dict:
    """The jitted pure functions of a network shape (the twin's base MeshParams are arguments)."""

    def twin(base, phases_l):
        return base.with_phases(jnp.asarray(phases_l, dtype=real_dtype))

    def class_powers(z):
        return (jnp.real(z) ** 2 + jnp.imag(z) ** 2) @ group_matrix

    def loss_of_powers(p, y):
        p = jnp.maximum(p, 0.0)  # measured powers: noise can push a dark port below zero
        total = jnp.sum(p, axis=1, keepdims=True)
        q = p / jnp.maximum(total, 1e-30)
        onehot = jax.nn.one_hot(y, n_classes, dtype=q.dtype)
        if loss_kind == "ce":
            return -jnp.mean(jnp.log(jnp.sum(q * onehot, axis=1) + 1e-12))
        if loss_kind == "softmax_ce":
            return -jnp.mean(jnp.sum(jax.nn.log_softmax(temperature * q, axis=1) * onehot, axis=1))
        return jnp.mean(jnp.sum((q - onehot) ** 2, axis=1))

    def loss_of_field(z, y):
        return loss_of_powers(class_powers(z), y)

    def model_fields(bases, phases, x):
        zs = []
        for l in range(n_layers):
            z = circuits.propagate(top, twin(bases[l], phases[l]), x)
            zs.append(z)
            x = act(z)
        return zs

    def model_loss(bases, phases, x, y):
        return loss_of_field(model_fields(bases, phases, x)[-1], y)

    def output_adjoint(z, y):
        # JAX's gradient of a real function of complex z is ∂/∂Re z − i ∂/∂Im z: our adjoint convention
        return jax.value_and_grad(loss_of_field)(z, y)

    def activation_adjoint(z, a):
        return jax.grad(lambda zz: jnp.real(jnp.sum(a * act(zz))))(z)

    def local_gradient(base, phases_l, x, c):
        return jax.grad(lambda p: jnp.real(jnp.sum(c * circuits.propagate(top, twin(base, p), x))))(phases_l)

    return {
        "class_powers": jax.jit(class_powers),
        "loss_of_powers": jax.jit(loss_of_powers),
        "model_fields": jax.jit(model_fields),
        "model_loss": jax.jit(model_loss),
        "model_value_and_grad": jax.jit(jax.value_and_grad(model_loss, argnums=1)),
        "output_adjoint": jax.jit(output_adjoint),
        "activation_adjoint": jax.jit(activation_adjoint),
        "activation": jax.jit(act),
        "local_gradient": jax.jit(local_gradient),
    }
