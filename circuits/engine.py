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


def _scan_mesh(topology: MeshTopology, params: MeshParams, x, wl, direction: str):
    """Scan the batch ``x`` (B, n) through the mesh, recording the field arriving at every tap.

    Each column is one fused multiply-add (:func:`_fused_columns`); the tap fields of a column are
    linear in the field entering it, with per-slot coefficients taken from the stage coefficients."""
    t = topology.tables
    c, out = _column_coefficients(topology, params, wl, x.dtype)
    a, b, partner, post = _fused_columns(topology, c, out)
    top = jnp.asarray(t.slot_top)
    bottom = jnp.minimum(top + 1, topology.n - 1)  # empty slots read a harmless mode; dropped later

    def at(name, rows):
        return jnp.take_along_axis(c[name], rows, axis=1)  # (C, S)

    output_segment = out["post"]  # heater and loss of the output segment, without its tap

    def columns(slot, a, b):
        """Scanned inputs in the mode-major (n, B) layout: coefficients broadcast over the batch."""
        per_slot = {k: v[..., None] for k, v in slot.items() if k not in ("top", "bottom")}
        return dict(per_slot, top=slot["top"], bottom=slot["bottom"], a=a[..., None], b=b[..., None], partner=partner)

    if direction == "forward":
        slot = {
            "top": top,
            "bottom": bottom,
            "phi_t": at("pre", top),
            "theta_t": at("d_in", top) * at("pre", top) * at("tap_pre", top) * at("mid", top),
            "theta_b": at("o_in", top) * at("pre", bottom) * at("mid", top),
        }

        def step(field, col):
            f_top, f_bottom = field[col["top"]], field[col["bottom"]]
            taps = jnp.concatenate([col["theta_t"] * f_top + col["theta_b"] * f_bottom, col["phi_t"] * f_top])
            return col["a"] * field + col["b"] * field[col["partner"]], taps

        field, column_taps = jax.lax.scan(step, x.T, columns(slot, a, b))
        tap_gamma = field * output_segment[:, None]
        field = field * post[:, None]
    else:
        arm_t = {"d": at("d_out", top), "o": at("o_out", top)}
        arm_b = {"d": at("d_out", bottom), "o": at("o_out", bottom)}
        slot = {
            "top": top,
            "bottom": bottom,
            "arm_t_d": arm_t["d"],
            "arm_t_o": arm_t["o"],
            # φ tap: B_inᵀ applied to the arms after the θ heater/tap (top) and the bottom arm
            "phi_t": at("d_in", top) * at("tap_mid", top) * at("mid", top),
            "phi_b": at("o_in", top) * at("mid", bottom),
            "arm_b_d": arm_b["d"],
            "arm_b_o": arm_b["o"],
        }
        b_transposed = jnp.take_along_axis(b, partner, axis=1)  # (Mᵀ)[m, p] = M[p, m]

        def step(field, col):
            f_top, f_bottom = field[col["top"]], field[col["bottom"]]
            arm_top = col["arm_t_d"] * f_top + col["arm_t_o"] * f_bottom
            arm_bottom = col["arm_b_d"] * f_bottom + col["arm_b_o"] * f_top
            taps = jnp.concatenate([arm_top, col["phi_t"] * arm_top + col["phi_b"] * arm_bottom])
            return col["a"] * field + col["b"] * field[col["partner"]], taps

        tap_gamma = x.T
        field = x.T * post[:, None]
        field, column_taps = jax.lax.scan(step, field, columns(slot, a, b_transposed), reverse=True)
    # column_taps: (C, 2S, B) = per column [θ taps of its slots; φ taps of its slots]
    rows = jnp.concatenate([column_taps.reshape(-1, x.shape[0]), tap_gamma])
    return field.T, rows[jnp.asarray(t.tap_rows)].T


def _fused_columns(topology: MeshTopology, c: dict, out: dict):
    """Each column as one per-mode multiply-add: ``y = a * x + b * x[:, partner]`` (a, b: (C, n)).

    Each MZI's stages (heaters, loss, taps, couplers) are multiplied into one 2x2 outside the scan, so
    composing the mesh costs one gather and one multiply-add per column."""
    partner = jnp.asarray(topology.tables.partner)

    def coupler(d, o, field_self, field_partner):
        return d * field_self + o * field_partner

    # Propagate the two basis vectors of every pair through the stages, per mode: "self" is this mode's
    # amplitude when light enters this mode, "cross" when light enters the partner mode.
    pre = c["pre"] * c["tap_pre"]
    mid = c["mid"] * c["tap_mid"]
    pre_partner = jnp.take_along_axis(pre, partner, axis=1)
    # after the input stage and the first coupler
    self_1 = c["d_in"] * pre
    cross_1 = c["o_in"] * pre_partner
    # after the arms and the second coupler
    mid_partner = jnp.take_along_axis(mid, partner, axis=1)
    d_out, o_out = c["d_out"], c["o_out"]
    self_1_p = jnp.take_along_axis(self_1, partner, axis=1)
    cross_1_p = jnp.take_along_axis(cross_1, partner, axis=1)
    a = coupler(d_out, o_out, mid * self_1, mid_partner * cross_1_p)
    b = coupler(d_out, o_out, mid * cross_1, mid_partner * self_1_p)
    return a, b, partner, out["post"] * out["tap_post"]


def _compose(topology: MeshTopology, params: MeshParams, wl, cdtype):
    """Transfer matrix U (n, n) at one wavelength: y = U @ x."""
    a, b, partner, post = _fused_columns(topology, *_column_coefficients(topology, params, wl, cdtype))

    def step(rows, col):
        a_c, b_c, partner_c = col
        return a_c * rows + b_c * rows[:, partner_c], None

    identity = jnp.eye(topology.n, dtype=cdtype)
    rows, _ = jax.lax.scan(step, identity, (a, b, partner))  # unrolling is slower on CPU
    return (rows * post).T  # row j is the output for input e_j, i.e. column j of U


def _over_wavelengths(fn, wl):
    wl = jnp.asarray(wl)
    if wl.ndim == 0:
        return fn(wl)
    return jax.vmap(fn)(wl)


@partial(jax.jit, static_argnames=("topology", "cdtype"))
def _unitary(topology, params, wl, cdtype):
    return _over_wavelengths(lambda w: _compose(topology, params, w, cdtype), wl)


def _all_finite(params: MeshParams, x) -> jax.Array:
    """True when the field and every parameter are finite (fused into the compiled pass: no extra
    host-side sweep over the batch)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params)]
    return jnp.all(jnp.isfinite(x)) & jnp.all(jnp.stack(leaves))


@partial(jax.jit, static_argnames=("topology", "direction"))
def _apply_composed(topology, params, x, wl, direction):
    def one(w):
        u = _compose(topology, params, w, x.dtype)
        matrix = u.T if direction == "forward" else u
        return jnp.matmul(x, matrix, precision=HIGHEST)

    return _over_wavelengths(one, wl), _all_finite(params, x)


@partial(jax.jit, static_argnames=("topology", "direction"))
def _apply_scanned(topology, params, x, wl, direction):
    return _over_wavelengths(lambda w: _scan_mesh(topology, params, x, w, direction), wl), _all_finite(params, x)


def _raise_non_finite(params: MeshParams, x) -> None:
    """Name what is not finite (only runs once the compiled pass has flagged it)."""
    params.check_values()
    raise NonFiniteError("field x contains NaN or infinity")


BUCKETED_BATCH = 1 << 14


def _pad_batch(x: jax.Array) -> jax.Array:
    """Pad a batch with zero rows to the next power of two (up to 2¹⁴ rows), so that callers with
    varying batch sizes (a calibration's sweeps, a last partial mini-batch) reuse a few compiled shapes."""
    batch = x.shape[0]
    if batch >= BUCKETED_BATCH or batch & (batch - 1) == 0:
        return x
    return jnp.pad(x, ((0, (1 << batch.bit_length()) - batch), (0, 0)))


def _real_dtype(cdtype) -> jnp.dtype:
    return jnp.float32 if jnp.dtype(cdtype) == jnp.complex64 else jnp.float64


def _check_field(topology: MeshTopology, x) -> tuple[jax.Array, bool]:
    """Validate a field batch's dtype and shape; returns it as a (B, n) complex array and whether it was
    one vector. Its values are checked inside the compiled computation (:func:`_all_finite`)."""
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
    if not (isinstance(x, jax.Array) and x.dtype == cdtype):
        x = jnp.asarray(x, dtype=cdtype)
    if single:
        x = x[None, :]
    return x, single


def propagate(
    topology: MeshTopology,
    params: MeshParams,
    x,
    taps: bool = False,
    direction: Direction = "forward",
    wl=models.WL0,
    check: bool = True,
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
        check: raise :class:`NonFiniteError` if ``x`` or ``params`` hold NaN/inf (tested inside the
            compiled pass; reading the flag back waits for the result). Shapes and dtypes are always
            checked. Pass False for asynchronous dispatch in hot loops on a GPU.

    Returns:
        ``y`` of shape (batch, n) (or (n,) for one vector), and with ``taps=True`` a tuple
        ``(y, tap_fields)`` with ``tap_fields`` of shape (batch, 2K + n) in canonical shifter order
        (:attr:`MeshTopology.phase_shifters`). Jitted, differentiable, runs unchanged on GPU.
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    x, single = _check_field(topology, x)
    params = params.check(topology, values=False).astype(_real_dtype(x.dtype))
    wl = np.asarray(wl, dtype=_real_dtype(x.dtype)) if not isinstance(wl, jax.Array) else wl.astype(_real_dtype(x.dtype))
    batch = x.shape[0]
    x = _pad_batch(x)
    padded = x.shape[0] != batch
    if taps:
        (y, tap_fields), finite = _apply_scanned(topology, params, x, wl, direction)
    else:
        y, finite = _apply_composed(topology, params, x, wl, direction)
    if check and not isinstance(finite, jax.core.Tracer) and not bool(finite):
        _raise_non_finite(params, x)
    if single:
        return (y[..., 0, :], tap_fields[..., 0, :]) if taps else y[..., 0, :]
    if padded:
        y = y[..., :batch, :]
        tap_fields = tap_fields[..., :batch, :] if taps else None
    return (y, tap_fields) if taps else y


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
