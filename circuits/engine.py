"""The batched JAX mesh engine.

Fields are row-major batches ``x`` of shape ``(batch, n)``; for one vector, ``y = U @ x`` as in
``DESIGN.md``, for a batch ``y = x @ U.T``. The engine evaluates the same SAX component models as the
reference circuit (:mod:`tapmesh.circuits.models`) for every MZI at once, so the two share their physics.

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

import functools
from functools import partial
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tapmesh.circuits import models
from tapmesh.circuits.arguments import check_wavelength
from tapmesh.circuits.errors import DTypeError, NonFiniteError, ShapeError
from tapmesh.circuits.params import MeshParams
from tapmesh.circuits.topology import MeshTopology

Direction = Literal["forward", "backward"]
HIGHEST = jax.lax.Precision.HIGHEST


def _segment(wl, phase, loss_db):
    """Transmission of a lumped heated segment, from the shared SAX model."""
    return models.phase_shifter(wl=wl, phase=phase, loss_db=loss_db)[("o1", "o2")]


class _Placement(NamedTuple):
    """Where per-MZI values go in the engine's (C, n) per-column arrays (numpy index tables, static).

    A column acts on the mode-major field f (n, …) as ``a·f + b·f[partner]`` (:func:`_apply_column`)."""

    index: np.ndarray  # (C, n) into [top-mode values (K), bottom-mode values (K), idle values (P)]
    partner: np.ndarray  # (C, n): the other mode of the MZI on mode m (m itself if none)
    tap_rows: np.ndarray  # (2K + n,): rows of the canonical taps in the stacked per-column records
    n_idle: int  # P, idle segments (rows of no MZI)


@functools.cache
def _placement(topology: MeshTopology) -> _Placement:
    t, k = topology.tables, topology.n_mzis
    idle = np.zeros(t.mode_role.shape, dtype=np.int64)
    idle[tuple(t.idle_slots.T)] = 2 * k + np.arange(len(t.idle_slots))
    index = np.where(t.mode_role == 1, t.mode_mzi, np.where(t.mode_role == 2, k + t.mode_mzi, idle))
    partner = np.arange(topology.n) + (t.mode_role == 1) - (t.mode_role == 2)
    return _Placement(index.astype(np.int32), partner.astype(np.int32), t.tap_rows, len(t.idle_slots))


def _place(placement: _Placement, top_values=None, bottom_values=None, default=0.0):
    """(C, n) array holding ``top_values[i]`` on MZI i's top-mode rows, ``bottom_values[i]`` on its
    bottom-mode rows and ``default`` on the idle rows (a scalar, or one value per idle segment in
    ``idle_slots`` order); a missing side is zero."""
    values = top_values if top_values is not None else bottom_values
    zeros = jnp.zeros_like(values)
    table = [zeros if v is None else v for v in (top_values, bottom_values)]
    idle = jnp.broadcast_to(jnp.asarray(default, dtype=values.dtype), (placement.n_idle,))
    return jnp.concatenate([*table, idle])[placement.index]


def _partner_rows(field, partner):
    """``field[partner]``: each mode's row replaced by its MZI partner's (mode-major field (n, …)).

    A row gather is one contiguous copy per mode: on CPU 1.5–2x faster than gathering along the minor
    axis, and 10–20 % faster than the shift form ``up·f[m+1] + down·f[m−1]`` (measured, n = 32/64)."""
    return jnp.take(field, partner, axis=0, mode="clip")  # in bounds by construction: no fill mask


def _apply_column(coefficients, field, other):
    """One column, ``a·f + b·f[partner]``, on a mode-major field (n, …); ``coefficients = (a, b)``, (n,)
    each; ``other`` is ``f[partner]`` (:func:`_partner_rows`), gathered once by the caller."""
    a, b = coefficients
    return a[:, None] * field + b[:, None] * other


def _column_step(field, column):
    """``lax.scan`` step through one column, nothing recorded; ``column = ((a, b), partner)``."""
    coefficients, partner = column
    return _apply_column(coefficients, field, _partner_rows(field, partner)), None


class _Stages(NamedTuple):
    """Every stage of every MZI at one wavelength, as (K,) complex arrays (top arm ``_t``, bottom ``_b``).

    Couplers: ``tt``/``bb`` the bar transmissions, ``bt`` bottom→top and ``tb`` top→bottom cross ones;
    ``pre`` the φ segment before the first coupler, ``mid`` the θ segment between the couplers, ``tap_*``
    the √(1 − t) through-amplitude of their grating taps."""

    pre_t: jax.Array
    pre_b: jax.Array
    tap_pre: jax.Array
    in_tt: jax.Array
    in_bb: jax.Array
    in_bt: jax.Array
    in_tb: jax.Array
    mid_t: jax.Array
    mid_b: jax.Array
    tap_mid: jax.Array
    out_tt: jax.Array
    out_bb: jax.Array
    out_bt: jax.Array
    out_tb: jax.Array


def _stages(topology: MeshTopology, params: MeshParams, wl, cdtype) -> tuple[_Stages, jax.Array, jax.Array]:
    """Per-MZI stages from the shared SAX component models, and the output segment's transmission
    without (``post``) and with (``post_tapped``) its tap's through-amplitude."""
    k = topology.n_mzis

    def coupler(delta):
        s = models.coupler(wl=wl, delta=delta)
        return s[("o2", "o3")], s[("o1", "o4")], s[("o1", "o3")], s[("o2", "o4")]

    def cast(*arrays):
        return [jnp.asarray(a).astype(cdtype) * jnp.ones(k, cdtype) for a in arrays]

    in_tt, in_bb, in_bt, in_tb = coupler(params.delta[:, 0])
    out_tt, out_bb, out_bt, out_tb = coupler(params.delta[:, 1])
    loss = params.loss_db
    stages = _Stages(*cast(
        _segment(wl, params.phi, loss[:, 0]),
        _segment(wl, 0.0, loss[:, 1]),
        jnp.sqrt(1.0 - params.tap_fraction[k : 2 * k]),
        in_tt, in_bb, in_bt, in_tb,
        _segment(wl, params.theta, loss[:, 2]),
        _segment(wl, 0.0, loss[:, 3]),
        jnp.sqrt(1.0 - params.tap_fraction[:k]),
        out_tt, out_bb, out_bt, out_tb,
    ))
    post = _segment(wl, params.gamma, params.output_loss_db).astype(cdtype)
    return stages, post, post * jnp.sqrt(1.0 - params.tap_fraction[2 * k :]).astype(cdtype)


def _mzi_matrices(s: _Stages):
    """Entries (T00, T01, T10, T11) of every MZI's fused 2x2: out-coupler · arms · in-coupler · inputs."""
    pre_t, mid_t = s.pre_t * s.tap_pre, s.mid_t * s.tap_mid
    # after the input stage and the first coupler, for light entering the top (…_t) or bottom (…_b) port
    top_t, bottom_t = s.in_tt * pre_t * mid_t, s.in_tb * pre_t * s.mid_b
    top_b, bottom_b = s.in_bt * s.pre_b * mid_t, s.in_bb * s.pre_b * s.mid_b
    return (
        s.out_tt * top_t + s.out_bt * bottom_t,
        s.out_tt * top_b + s.out_bt * bottom_b,
        s.out_tb * top_t + s.out_bb * bottom_t,
        s.out_tb * top_b + s.out_bb * bottom_b,
    )


def _fused_columns(topology: MeshTopology, params: MeshParams, wl, cdtype, direction: str = "forward"):
    """Each column as one per-mode multiply-add ``(a, b)``, each (C, n) (:func:`_apply_column`), and the
    stages and output segment they were built from.

    Each MZI's stages are multiplied into one 2x2 first (O(K) work), then placed, so composing the mesh
    costs one fused elementwise pass per column. ``direction="backward"`` gives the transposed columns
    (reciprocity: light injected at the outputs sees ``Mᵀ``)."""
    stages, post, post_tapped = _stages(topology, params, wl, cdtype)
    placement = _placement(topology)
    t00, t01, t10, t11 = _mzi_matrices(stages)
    up, down = (t01, t10) if direction == "forward" else (t10, t01)
    idle = _segment(wl, 0.0, params.idle_loss_db).astype(cdtype)
    columns = (_place(placement, t00, t11, default=idle), _place(placement, up, down))
    return columns, stages, post, post_tapped


def _abs2(field):
    return jnp.real(field) ** 2 + jnp.imag(field) ** 2


def _tap_columns(placement: _Placement, s: _Stages, direction: str):
    """Per-column ``(a, b)`` giving every tap's field from the field entering its column (the same
    ``a·f + b·f[partner]`` as a column): a θ tap on its MZI's top-mode row, a φ tap on the bottom-mode
    row (zero elsewhere)."""
    if direction == "forward":
        theta_self = s.in_tt * s.pre_t * s.tap_pre * s.mid_t  # light entering the top port
        theta_other = s.in_bt * s.pre_b * s.mid_t  # ... and the bottom port
        # the φ tap, on the bottom row, sees the top input: its partner's row
        return _place(placement, top_values=theta_self), _place(placement, theta_other, s.pre_t)
    # backward: the θ tap sees the output coupler's transpose applied to the outputs; the φ tap the input
    # coupler's transpose applied to the arms after the θ heater/tap (top) and the bottom arm
    phi_top, phi_bottom = s.in_tt * s.tap_mid * s.mid_t, s.in_bt * s.mid_b
    return (
        _place(placement, s.out_tt, phi_top * s.out_bt + phi_bottom * s.out_bb),
        _place(placement, s.out_bt, phi_top * s.out_tt + phi_bottom * s.out_tb),
    )


def _scan_mesh(topology: MeshTopology, params: MeshParams, x, wl, direction: str, power: bool):
    """Scan the batch ``x`` (B, n) through the mesh, recording the field (or, with ``power``, the power)
    arriving at every tap.

    The batch is scanned mode-major, (n, B). The partner rows are gathered once per column; the column
    and its taps are then two fused multiply-adds on the field entering it (:func:`_apply_column`), the
    taps recorded as one (n, B) block."""
    columns, stages, post, post_tapped = _fused_columns(topology, params, wl, x.dtype, direction)
    placement = _placement(topology)
    taps = _tap_columns(placement, stages, direction)
    record = _abs2 if power else (lambda field: field)

    def step(field, col):
        column, tap, partner = col
        other = _partner_rows(field, partner)
        return _apply_column(column, field, other), record(_apply_column(tap, field, other))

    scanned = (columns, taps, jnp.asarray(placement.partner))
    if direction == "forward":
        field, column_taps = jax.lax.scan(step, x.T, scanned)
        tap_gamma, field = field * post[:, None], field * post_tapped[:, None]
    else:
        tap_gamma = x.T
        field, column_taps = jax.lax.scan(step, x.T * post_tapped[:, None], scanned, reverse=True)
    rows = jnp.concatenate([column_taps.reshape(-1, x.shape[0]), record(tap_gamma)])  # (C·n + n, B)
    return field.T, rows[jnp.asarray(placement.tap_rows)].T


def _compose(topology: MeshTopology, params: MeshParams, wl, cdtype):
    """Transfer matrix U (n, n) at one wavelength: y = U @ x.

    The identity is scanned mode-major: rows are modes, so after the last column it is U itself."""
    columns, _, _, post_tapped = _fused_columns(topology, params, wl, cdtype)
    identity = jnp.eye(topology.n, dtype=cdtype)
    field, _ = jax.lax.scan(_column_step, identity, (columns, jnp.asarray(_placement(topology).partner)))  # unrolling is slower on CPU
    return field * post_tapped[:, None]


def _over_wavelengths(fn, wl):
    wl = jnp.asarray(wl)
    if wl.ndim == 0:
        return fn(wl)
    return jax.vmap(fn)(wl)


@partial(jax.jit, static_argnames=("topology", "cdtype"))
def _unitary(topology, params, wl, cdtype):
    return _over_wavelengths(lambda w: _compose(topology, params, w, cdtype), wl)


def _fit(topology: MeshTopology, params: MeshParams, cdtype) -> MeshParams:
    """Shape-check ``params`` against the topology and cast them to the engine's real dtype. Runs while
    tracing, so a compiled call pays nothing for it (jit re-traces for any new shape or dtype)."""
    return params.check(topology, values=False).astype(_real_dtype(cdtype))


def _all_finite(params: MeshParams, x) -> jax.Array:
    """True when the field and every parameter are finite (fused into the compiled pass: no extra
    host-side sweep over the batch)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params)]
    return jnp.all(jnp.isfinite(x)) & jnp.all(jnp.stack(leaves))


@partial(jax.jit, static_argnames=("topology", "direction"))
def _apply_composed(topology, params, x, wl, direction):
    params = _fit(topology, params, x.dtype)

    def one(w):
        u = _compose(topology, params, w, x.dtype)
        matrix = u.T if direction == "forward" else u
        return jnp.matmul(x, matrix, precision=HIGHEST)

    return _over_wavelengths(one, wl), _all_finite(params, x)


@partial(jax.jit, static_argnames=("topology", "direction", "power"))
def _apply_scanned(topology, params, x, wl, direction, power):
    params = _fit(topology, params, x.dtype)
    scanned = _over_wavelengths(lambda w: _scan_mesh(topology, params, x, w, direction, power), wl)
    return scanned, _all_finite(params, x)


def _raise_non_finite(params: MeshParams, x) -> None:
    """Name what is not finite (only runs once the compiled pass has flagged it)."""
    params.check_values()
    raise NonFiniteError("field x contains NaN or infinity")


BUCKETED_BATCH = 1 << 14


def padded_batch(batch: int) -> int:
    """Rows a batch of ``batch`` is padded to: the next power of two (up to 2¹⁴ rows), so that callers with
    varying batch sizes (a calibration's sweeps, a last partial mini-batch) reuse a few compiled shapes;
    then, on several devices, the next multiple of the device count (:func:`shard_batch`)."""
    if batch < BUCKETED_BATCH and batch & (batch - 1):
        batch = 1 << batch.bit_length()
    devices = _batch_mesh()
    if devices is not None:
        size = devices.devices.size
        batch = -(-batch // size) * size
    return batch


def _pad_batch(x: jax.Array) -> jax.Array:
    """Pad a batch with zero rows to :func:`padded_batch` rows."""
    batch = x.shape[0]
    padded = padded_batch(batch)
    return x if padded == batch else jnp.pad(x, ((0, padded - batch), (0, 0)))


@functools.cache
def _batch_mesh() -> jax.sharding.Mesh | None:
    """A one-axis device mesh ``("batch",)`` over ``jax.devices()``, or None on a single device."""
    devices = jax.devices()
    return jax.sharding.Mesh(np.array(devices), ("batch",)) if len(devices) > 1 else None


def shard_batch(x):
    """Place the batch ``x`` (B, …) across ``jax.devices()`` along its first axis (B a multiple of the device
    count: :func:`padded_batch`), when there is more than one device; otherwise, or under tracing (the caller's
    jit decides), ``x`` unchanged. Compiled passes then run each device's rows on that device (GSPMD)."""
    mesh = _batch_mesh()
    if mesh is None or isinstance(x, jax.core.Tracer):
        return x
    spec = jax.sharding.PartitionSpec("batch", *([None] * (x.ndim - 1)))
    return jax.device_put(x, jax.sharding.NamedSharding(mesh, spec))


def replicate(tree):
    """Copy every array of ``tree`` to all devices (the parameters next to a :func:`shard_batch` batch);
    unchanged on one device or under tracing."""
    mesh = _batch_mesh()
    if mesh is None or any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree)):
        return tree
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


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
    if x.ndim == 2 and x.shape[0] == 0:
        raise ShapeError(f"field x is an empty batch, shape {tuple(x.shape)}: give at least one row")
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
    taps: bool | Literal["power"] = False,
    direction: Direction = "forward",
    wl=models.WL0,
    check: bool = True,
):
    """Propagate a batch of fields through the mesh.

    Args:
        topology: the mesh.
        params: its parameters (cast to the precision of ``x``: float32 for complex64).
        x: (batch, n) or (n,) complex fields (real arrays are taken as real amplitudes), in √mW.
        taps: ``True`` also returns the field arriving at every grating tap (√mW); ``"power"`` returns the
            power arriving there instead, ``|field|²`` in mW as a real array (half the bytes of the
            fields, computed in the same pass; the camera sees ``tap_fraction`` of it).
        direction: ``"forward"`` (inject at the inputs, read the outputs) or ``"backward"`` (inject at
            the outputs, read the inputs; transfer ``U.T``).
        wl: wavelength in µm, a scalar or a (W,) array; an array adds a leading W axis to every result.
        check: raise :class:`NonFiniteError` if ``x`` or ``params`` hold NaN/inf (tested inside the
            compiled pass; reading the flag back waits for the result). Shapes and dtypes are always
            checked. Pass False for asynchronous dispatch in hot loops on a GPU.

    Returns:
        ``y`` of shape (batch, n) (or (n,) for one vector), and with ``taps=True`` a tuple
        ``(y, tap_fields)`` with ``tap_fields`` (or tap powers) of shape (batch, 2K + n) in canonical shifter order
        (:attr:`MeshTopology.phase_shifters`). Jitted, differentiable, runs unchanged on GPU. With more than
        one device in ``jax.devices()`` the batch is split over them (:func:`shard_batch`; the results are
        sharded the same way and equal the single-device ones).
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if taps not in (False, True, "power"):
        raise ValueError(f"taps must be False, True or 'power', got {taps!r}")
    x, single = _check_field(topology, x)
    check_wavelength(wl)
    wl = np.asarray(wl, dtype=_real_dtype(x.dtype)) if not isinstance(wl, jax.Array) else wl.astype(_real_dtype(x.dtype))
    batch = x.shape[0]
    x = _pad_batch(x)
    padded = x.shape[0] != batch
    if not isinstance(x, jax.core.Tracer):  # on several devices: the batch split over them, the rest on all
        x, params, wl = shard_batch(x), replicate(params), replicate(wl)
    if taps:
        (y, tap_fields), finite = _apply_scanned(topology, params, x, wl, direction, taps == "power")
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
    wl = jnp.asarray(check_wavelength(wl), dtype=_real_dtype(dtype))
    return _unitary(topology, params, wl, jnp.dtype(dtype))
