"""The mesh schedule: which MZIs a rectangular or triangular mesh has, and the canonical phase-shifter order.

This module is the single place where ``pcells`` writes the rule down; it imports nothing from gdsfactory, so
``circuits`` can check it against its own topology cheaply.

* An MZI is ``(column, top_mode)`` and acts on modes (m, m+1); mode 0 is the top waveguide.
* rectangular(n): columns c = 0..n−1, MZI (c, m) iff m ≡ c (mod 2) and m + 1 < n.
* triangular(n): columns c = 0..2n−4, MZI (c, m) iff k = n−2−m has k ≡ c (mod 2) and k ≤ min(c, 2n−4−c).
* MZIs are indexed in (column, top_mode) order.
* Phase shifters: ``("theta", k)`` for every MZI k, then ``("phi", k)`` for every MZI k, then ``("gamma", m)``
  for every mode m.
"""

from __future__ import annotations

from .errors import MeshKindError, MeshSizeError

KINDS = ("rectangular", "triangular")
N_MIN, N_MAX = 2, 64


def check_size(n: int, kind: str) -> None:
    """Raise :class:`MeshSizeError` / :class:`MeshKindError` for an unsupported ``n`` or ``kind``."""
    if kind not in KINDS:
        raise MeshKindError(f"unknown mesh kind {kind!r}; expected one of {KINDS}")
    if not isinstance(n, int) or isinstance(n, bool) or not N_MIN <= n <= N_MAX:
        raise MeshSizeError(f"mesh size n={n!r} out of range: need an int with {N_MIN} <= n <= {N_MAX}")


def n_columns(n: int, kind: str) -> int:
    """Number of MZI columns: n (rectangular) or 2n−3 (triangular)."""
    check_size(n, kind)
    return n if kind == "rectangular" else 2 * n - 3


def mzis(n: int, kind: str) -> list[tuple[int, int]]:
    """All MZIs ``(column, top_mode)`` of the mesh, sorted by (column, top_mode)."""
    check_size(n, kind)
    out = []
    for c in range(n_columns(n, kind)):
        for m in range(n - 1):
            if kind == "rectangular":
                ok = m % 2 == c % 2
            else:
                k = n - 2 - m
                ok = k % 2 == c % 2 and k <= min(c, 2 * n - 4 - c)
            if ok:
                out.append((c, m))
    return out


def shifters(n: int, kind: str) -> list[tuple[str, int]]:
    """Phase shifters in canonical order: ("theta", k)…, ("phi", k)…, ("gamma", m)…."""
    k = len(mzis(n, kind))
    return [("theta", i) for i in range(k)] + [("phi", i) for i in range(k)] + [("gamma", m) for m in range(n)]


def heaters_per_column(n: int, kind: str) -> list[int]:
    """Heaters of every column, the output phases (γ, one a mode) as a last column of their own."""
    per_col = [0] * n_columns(n, kind)
    for col, _ in mzis(n, kind):
        per_col[col] += 2
    return per_col + [n]


def zone_slots(n: int, kind: str, shared_return: bool) -> int:
    """Track slots a column's zone needs (:func:`tapmesh.pcells.mesh`): half its heaters per die edge plus the
    shared return track, or (no shared return) one slot per lane and edge, i.e. one per heater."""
    per_col = heaters_per_column(n, kind)
    return max(-(-h // 2) for h in per_col) + 1 if shared_return else max(per_col)
