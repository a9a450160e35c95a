"""The batched JAX mesh engine.

Fields are row-major batches ``x`` of shape ``(batch, n)``; for one vector, ``y = U @ x`` as in
``DESIGN.md``, for a batch ``y = x @ U.T``. The engine evaluates the same SAX component models as the
reference circuit (:mod:`circuits.models`) for every MZI at once, so the two share their physics.

Two evaluation paths:

* without taps, the mesh is composed once per parameter set (a ``lax.scan`` over columns acting on the
  identity, O(n³)), then applied to the batch as one matrix product;
* with taps, the batch itself is scanned column by column and the field incident on every grating tap
  is recorded.

A tap's recorded field is the field *arriving at the tap* in the direction of propagation; the camera
sees ``tap_fraction · |field|²``. The product of forward and backward tap fields of one segment differs
from the product on the heater by the known factor ``√(1 − t)``, since each wave has crossed the tap
once less.

Backward propagation injects light at the output ports and returns what leaves the input ports. By
reciprocity its transfer matrix is ``U.T``.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from circuits import models
from circuits.errors import DTypeError, NonFiniteError, ShapeError
from circuits.params import MeshParams
from circuits.topology import MeshTopology

Direction = Literal["forward", "backward"]
HIGHEST = jax.lax.Precision.HIGHEST


def _pad(a: jax.Array, value: float) -> jax.Array:
    """Append one padding entry along axis 0 (the index ``n_mzis`` used by empty slots)."""
    return jnp.concatenate([a, jnp.full((1,) + a.shape[1:], value, dtype=a.dtype)])


def _segment(wl, phase, loss_db):
    """Transmission of a lumped heated segment, from the shared SAX model."""
    return models.phase_shifter(wl=wl, phase=phase, loss_db=loss_db)[("o1", "o2")]


def _coupler_entries(wl, delta):
    """(top→top, bottom→bottom, bottom→top, top→bottom) transmissions of couplers with errors ``delta``."""
    s = models.coupler(wl=wl, delta=delta)
    return s[("o2", "o3")], s[("o1", "o4")], s[("o1", "o3")], s[("o2", "o4")]


def _column_coefficients(topology: MeshTopology, params: MeshParams, wl, cdtype):
    """Per-column, per-mode coefficients of every stage of the mesh at one wavelength ``wl``.

    Returns a dict of (C, n) complex arrays and the (n,) output-stage arrays.
    """
    t = topology.tables
    k = topology.n_mzis
    role = jnp.asarray(t.mode_role)
    mzi = jnp.asarray(t.mode_mzi)
    top, bottom = role == 1, role == 2

    theta, phi = _pad(params.theta, 0.0), _pad(params.phi, 0.0)
    delta, loss = _pad(params.delta, 0.0), _pad(params.loss_db, 0.0)
    tap_theta = _pad(params.tap_fraction[:k], 0.0)
    tap_phi = _pad(params.tap_fraction[k : 2 * k], 0.0)

    def mix(top_value, bottom_value, default):
        return jnp.where(top, top_value[mzi], jnp.where(bottom, bottom_value[mzi], default)).astype(cdtype)

    def couplers(which):
        tt, bb, bt, tb = _coupler_entries(wl, delta[:, which])
        return mix(tt, bb, 1.0), mix(bt, tb, 0.0)

    d_in, o_in = couplers(0)
    d_out, o_out = couplers(1)
    one = jnp.ones(k + 1)
    coefficients = {
        "pre": mix(_segment(wl, phi, loss[:, 0]), _segment(wl, 0.0, loss[:, 1]), 1.0),
        "tap_pre": mix(jnp.sqrt(1.0 - tap_phi), one, 1.0),
        "d_in": d_in,
        "o_in": o_in,
        "mid": mix(_segment(wl, theta, loss[:, 2]), _segment(wl, 0.0, loss[:, 3]), 1.0),
        "tap_mid": mix(jnp.sqrt(1.0 - tap_theta), one, 1.0),
        "d_out": d_out,
        "o_out": o_out,
    }
    output = {
        "post": _segment(wl, params.gamma, params.output_loss_db).astype(cdtype),
        "tap_post": jnp.sqrt(1.0 - params.tap_fraction[2 * k :]).astype(cdtype),
    }
    return coefficients, output


def _scan_mesh(topology: MeshTopology, params: MeshParams, x, wl, direction: str, record: bool):
    """Scan the batch ``x`` (B, n) through the mesh; returns the output and, if ``record``, tap fields."""
    t = topology.tables
    coefficients, output = _column_coefficients(topology, params, wl, x.dtype)
    partner = jnp.asarray(t.partner)
    slot_top = jnp.asarray(t.slot_top)
    xs = dict(coefficients, partner=partner, slot_top=slot_top)

    def forward_step(field, col):
        field = field * col["pre"]
        tap_phi = field[:, col["slot_top"]] if record else None
        field = field * col["tap_pre"]
        field = col["d_in"] * field + col["o_in"] * field[:, col["partner"]]
        field = field * col["mid"]
        tap_theta = field[:, col["slot_top"]] if record else None
        field = field * col["tap_mid"]
        field = col["d_out"] * field + col["o_out"] * field[:, col["partner"]]
        return field, (tap_theta, tap_phi)

    def backward_step(field, col):
        field = col["d_out"] * field + col["o_out"] * field[:, col["partner"]]
        tap_theta = field[:, col["slot_top"]] if record else None
        field = field * col["tap_mid"] * col["mid"]
        field = col["d_in"] * field + col["o_in"] * field[:, col["partner"]]
        tap_phi = field[:, col["slot_top"]] if record else None
        field = field * col["tap_pre"] * col["pre"]
        return field, (tap_theta, tap_phi)

    if direction == "forward":
        field, (tap_theta, tap_phi) = jax.lax.scan(forward_step, x, xs)
        field = field * output["post"]
        tap_gamma = field
        field = field * output["tap_post"]
    else:
        tap_gamma = x
        field = x * output["tap_post"] * output["post"]
        field, (tap_theta, tap_phi) = jax.lax.scan(backward_step, field, xs, reverse=True)
    if not record:
        return field, None
    batch = x.shape[0]

    def by_mzi(stacked):  # (C, B, S) -> (B, K)
        flat = jnp.moveaxis(stacked, 1, 0).reshape(batch, -1)
        return flat[:, jnp.asarray(t.mzi_slot)]

    taps = jnp.concatenate([by_mzi(tap_theta), by_mzi(tap_phi), tap_gamma], axis=1)
    return field, taps


def _compose(topology: MeshTopology, params: MeshParams, wl, cdtype):
    """Transfer matrix U (n, n) at one wavelength: y = U @ x."""
    identity = jnp.eye(topology.n, dtype=cdtype)
    rows, _ = _scan_mesh(topology, params, identity, wl, "forward", record=False)
    return rows.T  # row j is the output for input e_j, i.e. column j of U


def _over_wavelengths(fn, wl):
    wl = jnp.asarray(wl)
    if wl.ndim == 0:
        return fn(wl)
    return jax.vmap(fn)(wl)


@partial(jax.jit, static_argnames=("topology", "cdtype"))
def _unitary(topology, params, wl, cdtype):
    return _over_wavelengths(lambda w: _compose(topology, params, w, cdtype), wl)


@partial(jax.jit, static_argnames=("topology", "direction"))
def _apply_composed(topology, params, x, wl, direction):
    def one(w):
        u = _compose(topology, params, w, x.dtype)
        matrix = u.T if direction == "forward" else u
        return jnp.matmul(x, matrix, precision=HIGHEST)

    return _over_wavelengths(one, wl)


@partial(jax.jit, static_argnames=("topology", "direction"))
def _apply_scanned(topology, params, x, wl, direction):
    return _over_wavelengths(lambda w: _scan_mesh(topology, params, x, w, direction, True), wl)


def _real_dtype(cdtype) -> jnp.dtype:
    return jnp.float32 if jnp.dtype(cdtype) == jnp.complex64 else jnp.float64


def _check_field(topology: MeshTopology, x) -> tuple[jax.Array, bool]:
    """Validate a field batch; returns it as a (B, n) complex array and whether it was one vector."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    dtype = jnp.dtype(x.dtype)
    if dtype in (jnp.complex64, jnp.complex128):
        cdtype = dtype
    elif dtype in (jnp.float32, jnp.float16, jnp.bfloat16):
        cdtype = jnp.complex64
    elif dtype == jnp.float64:
        cdtype = jnp.complex128
    else:
        raise DTypeError(f"field x must be complex or real floating point, got dtype {dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] != topology.n:
        raise ShapeError(
            f"field x must have shape (batch, {topology.n}) or ({topology.n},) for a mesh on "
            f"{topology.n} modes, got {tuple(x.shape)}"
        )
    single = x.ndim == 1
    x = jnp.asarray(x, dtype=cdtype)
    if single:
        x = x[None, :]
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
        raise NonFiniteError("field x contains NaN or infinity")
    return x, single


def propagate(
    topology: MeshTopology,
    params: MeshParams,
    x,
    taps: bool = False,
    direction: Direction = "forward",
    wl=models.WL0,
):
    """Propagate a batch of fields through the mesh.

    Args:
        topology: the mesh.
        params: its parameters (cast to the precision of ``x``: float32 for complex64).
        x: (batch, n) or (n,) complex fields (real arrays are taken as real amplitudes), in √mW.
        taps: also return the field arriving at every grating tap.
        direction: ``"forward"`` (inject at the inputs, read the outputs) or ``"backward"`` (inject at
            the outputs, read the inputs; transfer ``U.T``).
        wl: wavelength in µm, a scalar or a (W,) array; an array adds a leading W axis to every result.

    Returns:
        ``y`` of shape (batch, n) (or (n,) for one vector), and with ``taps=True`` a tuple
        ``(y, tap_fields)`` with ``tap_fields`` of shape (batch, 2K + n) in canonical shifter order
        (:attr:`MeshTopology.phase_shifters`). Jitted, differentiable, runs unchanged on GPU.
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    x, single = _check_field(topology, x)
    params = params.check(topology).astype(_real_dtype(x.dtype))
    wl = jnp.asarray(wl, dtype=_real_dtype(x.dtype))
    if taps:
        y, tap_fields = _apply_scanned(topology, params, x, wl, direction)
        if single:
            return y[..., 0, :], tap_fields[..., 0, :]
        return y, tap_fields
    y = _apply_composed(topology, params, x, wl, direction)
    return y[..., 0, :] if single else y


def unitary(
    topology: MeshTopology,
    params: MeshParams,
    wl=models.WL0,
    dtype=jnp.complex128,
) -> jax.Array:
    """The mesh's transfer matrix U, shape (n, n) (or (W, n, n) for an array of wavelengths in µm).

    ``U`` is unitary when the mesh is lossless, has no taps and ``wl`` is the design wavelength or the
    couplers are ideal there; with errors, loss and taps it is the full (sub-unitary) transfer matrix.
    """
    params = params.check(topology).astype(_real_dtype(dtype))
    wl = jnp.asarray(wl, dtype=_real_dtype(dtype))
    return _unitary(topology, params, wl, jnp.dtype(dtype))
