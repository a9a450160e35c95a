"""Decompositions of unitaries into mesh phases (ideal 50:50 couplers), in complex128 numpy.

With the MZI of ``DESIGN.md``, ``T(θ, φ) = i e^{iθ/2} [[e^{iφ} sin(θ/2), cos(θ/2)], [e^{iφ} cos(θ/2), −sin(θ/2)]]``.

* :func:`clements` — Clements et al., Optica 3, 1460 (2016): null the lower triangle alternately from
  the right (T⁻¹ on columns) and from the left (T on rows), then commute the left factors through the
  diagonal: ``T(θ, φ)⁻¹ D = D' T(θ, φ')``.
* :func:`reck` — Reck et al., PRL 73, 58 (1994): null column after column from the left only.
* :func:`generator_settings` / :func:`analyzer_settings` — the input generator and coherent analyzer.

Each decomposition yields a sequence of MZIs in the order light meets them; :func:`place` assigns it to
the MZIs of a topology, so the same code serves every layout whose dependency order matches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tapmesh.circuits.errors import NonFiniteError, NotRealizableError, NotUnitaryError, ShapeError
from tapmesh.circuits.params import MeshParams
from tapmesh.circuits.topology import MeshTopology, analyzer, generator, rectangular, triangular

UNITARITY_TOLERANCE = 1e-8


def mzi_matrix(theta: float, phi: float) -> np.ndarray:
    """The ideal MZI T(θ, φ) as a 2x2 complex128 matrix."""
    s, c = np.sin(theta / 2), np.cos(theta / 2)
    return 1j * np.exp(1j * theta / 2) * np.array(
        [[np.exp(1j * phi) * s, c], [np.exp(1j * phi) * c, -s]]
    )


def check_unitary(u, tolerance: float = UNITARITY_TOLERANCE) -> np.ndarray:
    """``u`` as a complex128 square array; :class:`NotUnitaryError` if ‖U†U − I‖_max > tolerance."""
    u = np.asarray(u, dtype=np.complex128)
    if u.ndim != 2 or u.shape[0] != u.shape[1]:
        raise ShapeError(f"target must be a square matrix, got shape {u.shape}")
    if u.shape[0] < 2:
        raise ShapeError(f"target must be at least 2x2, got {u.shape}")
    if not np.all(np.isfinite(u)):
        raise NotUnitaryError("target contains NaN or infinity")
    error = np.abs(u.conj().T @ u - np.eye(u.shape[0])).max()
    if error > tolerance:
        raise NotUnitaryError(f"target is not unitary: max |U†U − I| = {error:.3g} > {tolerance:g}")
    return u


def _null_from_right(u, row, col, zero_first: bool):
    """θ, φ of a T⁻¹ applied on columns (col, col+1) that zeros u[row, col] (or u[row, col+1])."""
    a, b = u[row, col], u[row, col + 1]
    if zero_first:  # a s e^{-iφ} + b c = 0
        return 2 * np.arctan2(abs(b), abs(a)), np.angle(-a / b) if b != 0 else 0.0
    return 2 * np.arctan2(abs(a), abs(b)), np.angle(a / b) if b != 0 else 0.0


def _null_from_left(u, row, col, zero_first: bool):
    """θ, φ of a T applied on rows (row, row+1) that zeros u[row, col] (or u[row+1, col])."""
    a, b = u[row, col], u[row + 1, col]
    if zero_first:  # s e^{iφ} a + c b = 0
        return 2 * np.arctan2(abs(b), abs(a)), np.angle(-b / a) if a != 0 else 0.0
    return 2 * np.arctan2(abs(a), abs(b)), np.angle(b / a) if a != 0 else 0.0


def _apply_right_inverse(u, mode, theta, phi):
    u[:, mode : mode + 2] = u[:, mode : mode + 2] @ mzi_matrix(theta, phi).conj().T


def _apply_left(u, mode, theta, phi):
    u[mode : mode + 2, :] = mzi_matrix(theta, phi) @ u[mode : mode + 2, :]


def _commute_through_diagonal(diagonal, mode, theta, phi):
    """T(θ, φ)⁻¹ · D = D' · T(θ, φ'): updates ``diagonal`` in place and returns φ'."""
    d1, d2 = diagonal[mode], diagonal[mode + 1]
    factor = -np.exp(-1j * theta)
    diagonal[mode] = factor * np.exp(-1j * phi) * d2
    diagonal[mode + 1] = factor * d2
    return np.angle(d1 / d2)


def place(topology: MeshTopology, sequence, gamma) -> MeshParams:
    """Assign MZI settings given in light order ``[(top_mode, θ, φ), ...]`` to the MZIs of ``topology``.

    Each MZI goes to the earliest free position on its mode pair after everything it depends on;
    :class:`NotRealizableError` if the topology has no such position.
    """
    free: dict[int, list[int]] = {}
    for index, (column, top) in enumerate(topology.mzis):
        free.setdefault(top, []).append(index)
    last_column = np.full(topology.n, -1)
    theta = np.zeros(topology.n_mzis)
    phi = np.zeros(topology.n_mzis)
    used = np.zeros(topology.n_mzis, dtype=bool)
    for top, t, p in sequence:
        after = max(last_column[top], last_column[top + 1])
        candidates = [i for i in free.get(top, []) if not used[i] and topology.mzis[i][0] > after]
        if not candidates:
            raise NotRealizableError(
                f"no free MZI on modes ({top}, {top + 1}) after column {after} in {topology.kind} n={topology.n}"
            )
        index = candidates[0]
        used[index] = True
        theta[index], phi[index] = t, p
        last_column[top] = last_column[top + 1] = topology.mzis[index][0]
    if not used.all():
        raise NotRealizableError(f"{(~used).sum()} MZIs of the topology were not assigned")
    return MeshParams.from_phases(topology, np.mod(theta, 2 * np.pi), np.mod(phi, 2 * np.pi), np.mod(gamma, 2 * np.pi))


def clements(u) -> MeshParams:
    """Phases of the rectangular mesh :func:`tapmesh.circuits.rectangular` (n) that realize the unitary ``u``."""
    u = check_unitary(u).copy()
    n = u.shape[0]
    right: list[tuple[int, float, float]] = []
    left: list[tuple[int, float, float]] = []
    for i in range(n - 1):
        if i % 2 == 0:
            for j in range(i + 1):
                row, col = n - 1 - j, i - j
                theta, phi = _null_from_right(u, row, col, zero_first=True)
                _apply_right_inverse(u, col, theta, phi)
                right.append((col, theta, phi))
        else:
            for j in range(i + 1):
                row, col = n - 2 - i + j, j
                theta, phi = _null_from_left(u, row, col, zero_first=False)
                _apply_left(u, row, theta, phi)
                left.append((row, theta, phi))
    diagonal = np.diag(u).copy()
    commuted = []
    for mode, theta, phi in reversed(left):
        commuted.append((mode, theta, _commute_through_diagonal(diagonal, mode, theta, phi)))
    sequence = right + commuted
    return place(rectangular(n), sequence, np.angle(diagonal))


def reck(u) -> MeshParams:
    """Phases of the triangular mesh :func:`tapmesh.circuits.triangular` (n) that realize the unitary ``u``."""
    u = check_unitary(u).copy()
    n = u.shape[0]
    left: list[tuple[int, float, float]] = []
    for col in range(n - 1):
        for row in range(n - 2, col - 1, -1):
            theta, phi = _null_from_left(u, row, col, zero_first=False)
            _apply_left(u, row, theta, phi)
            left.append((row, theta, phi))
    diagonal = np.diag(u).copy()
    sequence = [
        (mode, theta, _commute_through_diagonal(diagonal, mode, theta, phi))
        for mode, theta, phi in reversed(left)
    ]
    return place(triangular(n), sequence, np.angle(diagonal))


def decompose(topology: MeshTopology, u) -> MeshParams:
    """Phases of ``topology`` realizing ``u``: Clements for rectangular, Reck for triangular meshes."""
    if topology.kind == "rectangular":
        params = clements(u)
    elif topology.kind == "triangular":
        params = reck(u)
    else:
        raise NotRealizableError(f"a {topology.kind} mesh is not universal; use generator_settings/analyzer_settings")
    if params.gamma.shape[0] != topology.n:
        raise ShapeError(f"target is {params.gamma.shape[0]}x{params.gamma.shape[0]}, mesh has {topology.n} modes")
    return params


def _check_vector(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.complex128)
    if v.ndim != 1 or v.shape[0] < 2:
        raise ShapeError(f"target vector must have shape (n,) with n >= 2, got {v.shape}")
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm == 0:
        raise ShapeError("target vector must be finite and non-zero")
    return v / norm


def analyzer_settings(v) -> MeshParams:
    """Phases of :func:`tapmesh.circuits.analyzer` (n) that send all of the (normalized) vector ``v`` to mode 0.

    Reading the analyzer's settings back gives v's amplitudes and relative phases: the coherent readout.
    """
    v = _check_vector(v)
    n = v.shape[0]
    column = v[:, None].copy()
    sequence = []
    for row in range(n - 2, -1, -1):
        theta, phi = _null_from_left(column, row, 0, zero_first=False)
        _apply_left(column, row, theta, phi)
        sequence.append((row, theta, phi))
    gamma = np.zeros(n)
    gamma[0] = -np.angle(column[0, 0])
    return place(analyzer(n), sequence, gamma)


def generator_settings(v) -> MeshParams:
    """Phases of :func:`tapmesh.circuits.generator` (n) that turn unit power in mode 0 into the normalized ``v``."""
    v = _check_vector(v)
    n = v.shape[0]
    field = np.zeros(n, dtype=np.complex128)
    field[0] = 1.0
    sequence = []
    remaining = 1.0
    for mode in range(n - 1):
        # with light only on the top input, the top output carries sin(θ/2) of the amplitude
        theta = 2 * np.arcsin(np.clip(abs(v[mode]) / np.sqrt(remaining), 0.0, 1.0)) if remaining > 0 else 0.0
        remaining = max(remaining - abs(v[mode]) ** 2, 0.0)
        field[mode : mode + 2] = mzi_matrix(theta, 0.0) @ field[mode : mode + 2]
        sequence.append((mode, theta, 0.0))
    gamma = np.angle(v) - np.angle(field)
    return place(generator(n), sequence, gamma)


def haar_unitary(n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A Haar-random n×n unitary (QR of a complex Gaussian matrix with the phase fix of Mezzadri)."""
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / np.sqrt(2)
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


def fidelity(u, v):
    """Fidelity |Tr(U†V)|² / (Tr(U†U)·Tr(V†V)) of two transfer matrices (1 when equal up to a global phase).

    A JAX scalar, so it can be jitted and differentiated (``float(fidelity(u, v))`` for a number). Both must
    be (n, n) matrices of the same shape, neither all zero (:class:`ShapeError` / :class:`NonFiniteError` otherwise; values are checked when concrete)."""
    for name, m in (("u", u), ("v", v)):
        if not isinstance(m, jax.core.Tracer):  # concrete: its values can be checked without a trace
            values = np.asarray(m)
            if values.ndim == 2 and values.size:
                norm = float(np.sum(np.abs(values) ** 2))
                if not np.isfinite(norm) or norm == 0.0:
                    raise NonFiniteError(f"fidelity: {name} is all zero or holds NaN/inf (norm² {norm})")
    u, v = jnp.asarray(u), jnp.asarray(v)
    if u.ndim != 2 or u.shape[0] != u.shape[1] or v.shape != u.shape or u.shape[0] == 0:
        raise ShapeError(f"fidelity needs two square matrices of one shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    overlap = jnp.abs(jnp.trace(u.conj().T @ v)) ** 2
    return overlap / (jnp.real(jnp.trace(u.conj().T @ u)) * jnp.real(jnp.trace(v.conj().T @ v)))
