"""Thermal crosstalk: which heaters are neighbours, and the crosstalk matrix as a sparse operator.

Thermal crosstalk couples only neighbouring heaters (:func:`neighbour_pairs`: about 2
per heater), so the (H, H) matrix X of the heater law ``φ_i = φ0_i + α_i (P_i + Σ_j X_ij P_j) + β_i V_i³``
is almost all zeros: at n = 64 (H = 4096) a dense X is 134 MB and a dense product costs milliseconds,
while its ~8 200 nonzeros take ~0.2 MB and a product microseconds.

:class:`Crosstalk` holds X as (rows, cols, values) in row-major order (the order of the on-disk format of
:meth:`tapmesh.calibration.Calibration.save`) with a CSR matrix for the products. It is immutable. It behaves like
the dense matrix where code needs one: ``X @ p``, ``X[i, j]``, ``np.asarray(X)`` (a dense copy: avoid at
large H), ``X.toarray()``, ``np.array_equal(X, Y)``. How the stages measure X: docs/calibration.md.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tapmesh import circuits


class Crosstalk:
    """Sparse (n, n) crosstalk matrix X acting on heater powers: ``leak = X @ power``.

    Build with :meth:`zeros`, :meth:`from_pairs`, :meth:`from_dense` or :meth:`coerce` (which also takes
    a dense array, a scipy sparse matrix or another :class:`Crosstalk`). Exact zeros are dropped and
    repeated (row, col) entries summed.
    """

    __slots__ = ("_n", "_rows", "_cols", "_values", "_csr")

    def __init__(self, n: int, rows=(), cols=(), values=()):
        n = int(n)
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        values = np.asarray(values, dtype=float).ravel()
        if not (rows.shape == cols.shape == values.shape):
            raise ValueError(f"rows, cols and values differ in length: {rows.shape}, {cols.shape}, {values.shape}")
        if len(rows) and (rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n):
            raise ValueError(f"crosstalk index out of range for {n} heaters")
        if not np.all(np.isfinite(values)):
            raise ValueError("crosstalk values contain NaN or infinity")
        coo = sp.coo_matrix((values, (rows, cols)), shape=(n, n))
        csr = coo.tocsr()  # sums duplicates, sorts by (row, col)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        self._n = n
        self._csr = csr
        counts = np.diff(csr.indptr)
        self._rows = np.repeat(np.arange(n, dtype=np.int64), counts)
        self._cols = csr.indices.astype(np.int64)
        self._values = csr.data.astype(float)
        for a in (self._rows, self._cols, self._values, csr.data, csr.indices, csr.indptr):
            a.flags.writeable = False

    # ------------------------------------------------------------------ constructors
    @classmethod
    def zeros(cls, n: int) -> "Crosstalk":
        """No crosstalk between any of ``n`` heaters."""
        return cls(n)

    @classmethod
    def from_pairs(cls, n: int, pairs, values) -> "Crosstalk":
        """X with ``X[i, j] = value`` for each ordered pair ``(i, j)`` of ``pairs`` ((P, 2) integers)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return cls(n, pairs[:, 0], pairs[:, 1], values)

    @classmethod
    def from_dense(cls, matrix) -> "Crosstalk":
        """From a dense (n, n) array (its nonzeros)."""
        a = np.asarray(matrix, dtype=float)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"crosstalk must be a square matrix, got shape {a.shape}")
        rows, cols = np.nonzero(a)
        return cls(a.shape[0], rows, cols, a[rows, cols])

    @classmethod
    def coerce(cls, value, n: int | None = None) -> "Crosstalk":
        """A :class:`Crosstalk` from ``value``: a Crosstalk, a scipy sparse matrix, a dense array, or None
        (no crosstalk; needs ``n``). Checks the size against ``n`` when given."""
        if value is None:
            if n is None:
                raise ValueError("Crosstalk.coerce(None) needs n")
            out = cls.zeros(n)
        elif isinstance(value, Crosstalk):
            out = value
        elif sp.issparse(value):
            coo = sp.coo_matrix(value)
            if coo.shape[0] != coo.shape[1]:
                raise ValueError(f"crosstalk must be a square matrix, got shape {coo.shape}")
            out = cls(coo.shape[0], coo.row, coo.col, coo.data)
        else:
            out = cls.from_dense(value)
        if n is not None and out.n != n:
            raise ValueError(f"crosstalk is {out.n}x{out.n}, the chip has {n} heaters")
        return out

    # ------------------------------------------------------------------ views
    @property
    def n(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n, self._n)

    @property
    def ndim(self) -> int:
        return 2

    @property
    def nnz(self) -> int:
        return len(self._values)

    @property
    def rows(self) -> np.ndarray:
        """Row index of every nonzero (the heater that receives heat), row-major order (read-only)."""
        return self._rows

    @property
    def cols(self) -> np.ndarray:
        """Column index of every nonzero (the heater that dissipates), read-only."""
        return self._cols

    @property
    def values(self) -> np.ndarray:
        """The nonzero values X[rows, cols], read-only."""
        return self._values

    @property
    def pairs(self) -> np.ndarray:
        """(nnz, 2) ordered pairs (row, col) of the nonzeros."""
        return np.column_stack([self._rows, self._cols])

    def tocsr(self) -> sp.csr_matrix:
        """A copy as a scipy CSR matrix."""
        return self._csr.copy()

    def toarray(self) -> np.ndarray:
        """A dense (n, n) copy (n² floats: 134 MB at 64 modes; for small meshes and tests)."""
        a = np.zeros((self._n, self._n))
        a[self._rows, self._cols] = self._values
        return a

    def __array__(self, dtype=None, copy=None):
        a = self.toarray()
        return a if dtype is None else a.astype(dtype)

    def values_at(self, pairs) -> np.ndarray:
        """X[i, j] for each (i, j) of ``pairs`` (zeros where X has no entry)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return np.asarray(self._csr[pairs[:, 0], pairs[:, 1]]).ravel().astype(float)

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, (int, np.integer)) for k in key):
            i, j = (int(k) + self._n if int(k) < 0 else int(k) for k in key)
            if not (0 <= i < self._n and 0 <= j < self._n):
                raise IndexError(f"index {key} out of range for a {self._n}x{self._n} crosstalk matrix")
            return float(self._csr[i, j])
        result = self._csr[key]
        return result.toarray() if sp.issparse(result) else np.asarray(result)

    # ------------------------------------------------------------------ algebra
    def __matmul__(self, other):
        """``X @ p`` for a vector (n,) or a matrix (n, B) of heater powers."""
        out = self._csr @ np.asarray(other, dtype=float)
        return np.asarray(out)

    def __rmatmul__(self, other):
        """``P @ X`` (rows of P are heater-power vectors), i.e. (Xᵀ Pᵀ)ᵀ."""
        return np.asarray((self._csr.T @ np.asarray(other, dtype=float).T).T)

    def dot(self, other):
        return self @ other

    @property
    def T(self) -> "Crosstalk":
        return Crosstalk(self._n, self._cols, self._rows, self._values)

    def __eq__(self, other):
        if not isinstance(other, Crosstalk):
            try:
                other = Crosstalk.coerce(other)
            except (ValueError, TypeError):
                return NotImplemented
        return (self._n == other._n and np.array_equal(self._rows, other._rows)
                and np.array_equal(self._cols, other._cols) and np.array_equal(self._values, other._values))

    __hash__ = None

    def __repr__(self) -> str:
        scale = f", |X| ≤ {np.max(np.abs(self._values)):.3g}" if self.nnz else ""
        return f"Crosstalk({self._n}x{self._n}, {self.nnz} nonzeros{scale})"


# ----------------------------------------------------------------------------- layout of heaters
def heater_positions(topology: circuits.MeshTopology) -> np.ndarray:
    """(n_heaters, 2) nominal (x, y) positions of the heaters on a grid: φ of MZI (c, m) at (2c, m),
    θ at (2c + 1, m + 0.5), γ_m at (2·n_columns, m). Used to decide which heaters are thermal neighbours."""
    k = topology.n_mzis
    pos = np.zeros((topology.n_shifters, 2))
    for i, (column, top) in enumerate(topology.mzis):
        pos[i] = (2 * column + 1, top + 0.5)
        pos[k + i] = (2 * column, top)
    for m in range(topology.n):
        pos[2 * k + m] = (2 * topology.n_columns, m)
    return pos


def neighbour_pairs(topology: circuits.MeshTopology) -> np.ndarray:
    """(P, 2) ordered pairs (i, j), i ≠ j, of heaters close enough for thermal crosstalk
    (|Δx| ≤ 1 and |Δy| ≤ 1 on the grid of :func:`heater_positions`)."""
    pos = heater_positions(topology)
    d = np.abs(pos[:, None, :] - pos[None, :, :])
    close = (d[..., 0] <= 1.0) & (d[..., 1] <= 1.0)
    np.fill_diagonal(close, False)
    return np.argwhere(close)
