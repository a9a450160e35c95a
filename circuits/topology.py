"""Mesh topologies: which MZIs sit where, the waveguide graph between them, and the phase shifters.

An MZI is named ``(column, top_mode)`` and acts on modes ``(top_mode, top_mode + 1)``; mode 0 is the
top waveguide. MZIs are indexed in ``(column, top_mode)`` order. Every topology has the same phase
shifters, in one canonical order used everywhere (heater voltages, tap readings, gradients):

* ``("theta", k)`` for every MZI k: heater on the MZI's internal top arm;
* ``("phi", k)`` for every MZI k: heater on the waveguide segment feeding the MZI's top input;
* ``("gamma", m)`` for every mode m: output phase shifter.

Each of these segments carries one bidirectional grating tap (the tap rule of ``DESIGN.md``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx
import numpy as np

from tapmesh.circuits.arguments import MAX_MODES
from tapmesh.circuits.errors import TopologyError

Kind = Literal["rectangular", "triangular", "generator", "analyzer"]
KINDS: tuple[str, ...] = ("rectangular", "triangular", "generator", "analyzer")


@dataclass(frozen=True)
class PhaseShifter:
    """One heated, tapped waveguide segment: ``kind`` is ``"theta"``, ``"phi"`` or ``"gamma"``;
    ``index`` is the MZI index (theta, phi) or the mode (gamma)."""

    kind: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.kind}{self.index}"


@dataclass(frozen=True, eq=False)
class MeshTopology:
    """A mesh of 2x2 MZIs on ``n`` modes.

    Attributes:
        n: number of modes.
        kind: ``"rectangular"`` (Clements), ``"triangular"`` (Reck), ``"generator"`` (unbalanced tree that
            prepares any vector from mode 0) or ``"analyzer"`` (its mirror, which folds any vector into mode 0).
        mzis: ``(column, top_mode)`` of every MZI, in index order.
        n_columns: number of MZI columns.
    """

    n: int
    kind: str
    mzis: tuple[tuple[int, int], ...] = field(repr=False)
    n_columns: int

    def __hash__(self) -> int:
        return hash((self.kind, self.n))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeshTopology) and (self.kind, self.n) == (other.kind, other.n)

    # ------------------------------------------------------------------ counts
    @property
    def n_mzis(self) -> int:
        return len(self.mzis)

    @property
    def n_shifters(self) -> int:
        """Number of phase shifters (= heaters = grating taps): 2 per MZI plus one per output mode."""
        return 2 * self.n_mzis + self.n

    @property
    def n_idle(self) -> int:
        """Number of idle segments: (column, mode) slots where a mode passes a column without an MZI
        (order: :attr:`EngineTables.idle_slots`). A balanced-tap layout draws dummy taps on them."""
        return len(self.tables.idle_slots)

    @functools.cached_property
    def phase_shifters(self) -> tuple[PhaseShifter, ...]:
        """Every heated, tapped segment in canonical order (theta…, phi…, gamma…)."""
        k = range(self.n_mzis)
        return (
            tuple(PhaseShifter("theta", i) for i in k)
            + tuple(PhaseShifter("phi", i) for i in k)
            + tuple(PhaseShifter("gamma", m) for m in range(self.n))
        )

    @functools.cached_property
    def columns(self) -> tuple[tuple[int, ...], ...]:
        """MZI indices of each column, the column schedule of the mesh."""
        cols: list[list[int]] = [[] for _ in range(self.n_columns)]
        for index, (column, _) in enumerate(self.mzis):
            cols[column].append(index)
        return tuple(tuple(c) for c in cols)

    def mzi_index(self, column: int, top_mode: int) -> int:
        """Index of the MZI at ``(column, top_mode)``; KeyError if there is none."""
        return self._index_of[(column, top_mode)]

    @functools.cached_property
    def _index_of(self) -> dict[tuple[int, int], int]:
        return {mzi: i for i, mzi in enumerate(self.mzis)}

    # ------------------------------------------------------------------ graph
    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """The waveguide graph: nodes are MZIs ``(column, top_mode)`` plus ``("in", m)`` and ``("out", m)``
        terminals; each edge is a waveguide segment carrying light in the forward direction, with
        attributes ``mode`` (the mode it lies on), ``port`` (``"top"``/``"bottom"`` input of its head MZI,
        or ``"out"``) and ``shifter`` (index into :attr:`phase_shifters` of the heater on it, or None).
        Each MZI node has ``index`` and ``theta_shifter`` (its internal-arm heater)."""
        g = nx.DiGraph(n=self.n, kind=self.kind)
        for m in range(self.n):
            g.add_node(("in", m), terminal="input", mode=m)
            g.add_node(("out", m), terminal="output", mode=m)
        k = self.n_mzis
        for i, (column, top) in enumerate(self.mzis):
            g.add_node((column, top), index=i, column=column, top_mode=top, theta_shifter=i)
        last: list[tuple] = [("in", m) for m in range(self.n)]
        for i, (column, top) in enumerate(self.mzis):
            for mode, port in ((top, "top"), (top + 1, "bottom")):
                g.add_edge(
                    last[mode],
                    (column, top),
                    mode=mode,
                    port=port,
                    shifter=k + i if port == "top" else None,
                )
                last[mode] = (column, top)
        for m in range(self.n):
            g.add_edge(last[m], ("out", m), mode=m, port="out", shifter=2 * k + m)
        return g

    @functools.cached_property
    def shifter_segments(self) -> tuple[tuple, ...]:
        """For every phase shifter, where it sits: ``(tail, head)`` of its graph edge (phi, gamma), or
        ``(mzi, mzi)`` for the internal theta arm."""
        segments: list = [None] * self.n_shifters
        for i, mzi in enumerate(self.mzis):
            segments[i] = (mzi, mzi)
        for tail, head, data in self.graph.edges(data=True):
            if data["shifter"] is not None:
                segments[data["shifter"]] = (tail, head)
        return tuple(segments)

    # ------------------------------------------------------------- engine tables
    @functools.cached_property
    def tables(self) -> "EngineTables":
        """Index tables the JAX engine uses (numpy arrays, built once per topology)."""
        return EngineTables.build(self)


@dataclass(frozen=True, eq=False)
class EngineTables:
    """Per-column index tables of a topology (``C`` columns, ``n`` modes, ``K`` MZIs).

    ``mode_mzi[c, m]``: the MZI touching mode m in column c (``n_mzis`` if none);
    ``mode_role[c, m]``: 0 untouched, 1 top mode of an MZI, 2 its bottom mode (always top + 1);
    ``tap_rows[i]``: where tap i (canonical order) sits in the engine's per-column records, one row per
    (column, mode): a θ tap on its MZI's top-mode row, a φ tap on the bottom-mode row, then the n output
    (γ) taps as rows ``C·n + m``;
    ``idle_slots[j] = (c, m)``: the j-th idle segment (mode m passing column c with no MZI), row-major.
    """

    mode_mzi: np.ndarray
    mode_role: np.ndarray
    tap_rows: np.ndarray
    idle_slots: np.ndarray

    @staticmethod
    def build(topology: MeshTopology) -> "EngineTables":
        n, k, columns = topology.n, topology.n_mzis, topology.n_columns
        mode_mzi = np.full((columns, n), k, dtype=np.int32)
        mode_role = np.zeros((columns, n), dtype=np.int8)
        column_of = np.zeros(k, dtype=np.int64)
        for c, members in enumerate(topology.columns):
            for i in members:
                top = topology.mzis[i][1]
                column_of[i] = c
                mode_mzi[c, top] = mode_mzi[c, top + 1] = i
                mode_role[c, top], mode_role[c, top + 1] = 1, 2
        top_row = column_of * n + np.array([top for _, top in topology.mzis], dtype=np.int64)
        tap_rows = np.concatenate([top_row, top_row + 1, columns * n + np.arange(n)])
        idle_slots = np.argwhere(mode_role == 0).astype(np.int32).reshape(-1, 2)
        return EngineTables(mode_mzi, mode_role, tap_rows.astype(np.int32), idle_slots)


def _check_n(n: int, minimum: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TopologyError(f"number of modes n must be an integer, got {n!r}")
    if n < minimum:
        raise TopologyError(f"a mesh needs at least {minimum} modes, got n={n}")
    if n > MAX_MODES:
        raise TopologyError(f"n={n} modes is above the size limit MAX_MODES={MAX_MODES} ({MAX_MODES * (MAX_MODES - 1) // 2:,} MZIs)")
    return int(n)


def _sized(build):
    """Check ``n`` (:func:`_check_n`) before the per-size cache of ``build``: any bad ``n`` (a float, a list,
    a size beyond the limit) is a :class:`TopologyError`, never an unhashable-key error of the cache."""
    cached = functools.cache(build)

    @functools.wraps(build)
    def topology_of(n: int) -> MeshTopology:
        return cached(_check_n(n))

    topology_of.cache_clear = cached.cache_clear
    return topology_of


def _build(n: int, kind: str, positions: list[tuple[int, int]], n_columns: int) -> MeshTopology:
    return MeshTopology(n=n, kind=kind, mzis=tuple(sorted(positions)), n_columns=n_columns)


@_sized
def rectangular(n: int) -> MeshTopology:
    """Clements rectangular mesh: n columns, MZI (c, m) for every m ≡ c (mod 2) with m + 1 < n."""
    n = _check_n(n)
    positions = [(c, m) for c in range(n) for m in range(c % 2, n - 1, 2)]
    return _build(n, "rectangular", positions, n)


@_sized
def triangular(n: int) -> MeshTopology:
    """Reck triangular mesh: 2n − 3 columns; MZI (c, m) where k = n − 2 − m has k ≡ c (mod 2) and
    k ≤ min(c, 2n − 4 − c). Its first column holds one MZI on the two bottom modes."""
    n = _check_n(n)
    columns = 2 * n - 3
    positions = [
        (c, n - 2 - k)
        for c in range(columns)
        for k in range(c % 2, min(c, 2 * n - 4 - c) + 1, 2)
    ]
    return _build(n, "triangular", positions, columns)


@_sized
def generator(n: int) -> MeshTopology:
    """Universal input generator: an unbalanced tree (a diagonal chain) of n − 1 MZIs, MZI c on modes
    (c, c+1), that prepares any complex n-vector from light in mode 0 (with the output phases γ)."""
    n = _check_n(n)
    return _build(n, "generator", [(c, c) for c in range(n - 1)], n - 1)


@_sized
def analyzer(n: int) -> MeshTopology:
    """Coherent analyzer: the generator's mirror, MZI c on modes (n−2−c, n−1−c); set to a vector v it
    folds all of v's power into mode 0, so nulling it measures v's amplitudes and phases."""
    n = _check_n(n)
    return _build(n, "analyzer", [(c, n - 2 - c) for c in range(n - 1)], n - 1)


_BUILDERS = {
    "rectangular": rectangular,
    "triangular": triangular,
    "generator": generator,
    "analyzer": analyzer,
}


def topology(n: int, kind: str = "rectangular") -> MeshTopology:
    """The topology of ``kind`` on ``n`` modes (one of :data:`KINDS`)."""
    if kind not in _BUILDERS:
        raise TopologyError(f"unknown mesh kind {kind!r}; expected one of {', '.join(KINDS)}")
    return _BUILDERS[kind](n)
