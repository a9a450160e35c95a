import networkx as nx
import pytest

from tapmesh import circuits
from tapmesh.circuits import TopologyError


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 17, 64, 256])
@pytest.mark.parametrize("kind", ["rectangular", "triangular"])
def test_counts_and_schedule(n, kind):
    top = circuits.topology(n, kind)
    assert top.n_mzis == n * (n - 1) // 2
    assert top.n_columns == (n if kind == "rectangular" else 2 * n - 3)
    assert top.n_shifters == 2 * top.n_mzis + n
    for members in top.columns:
        modes = [m for i in members for m in (top.mzis[i][1], top.mzis[i][1] + 1)]
        assert len(modes) == len(set(modes)), "MZIs of one column must act on disjoint pairs"
        assert all(0 <= m < n for m in modes)


@pytest.mark.parametrize("kind", ["rectangular", "triangular", "generator", "analyzer"])
def test_graph_is_a_dag_of_segments(kind):
    top = circuits.topology(6, kind)
    g = top.graph
    assert nx.is_directed_acyclic_graph(g)
    # every MZI has two inputs and two outputs; every mode runs from its input to its output terminal
    for mzi in top.mzis:
        assert g.in_degree(mzi) == 2 and g.out_degree(mzi) == 2
    shifters = [d["shifter"] for _, _, d in g.edges(data=True) if d["shifter"] is not None]
    assert sorted(shifters) == list(range(top.n_mzis, top.n_shifters)), "one phi/gamma heater per tapped edge"
    assert len(top.shifter_segments) == top.n_shifters == len(top.phase_shifters)


def test_generator_and_analyzer_are_chains():
    assert circuits.generator(5).mzis == ((0, 0), (1, 1), (2, 2), (3, 3))
    assert circuits.analyzer(5).mzis == ((0, 3), (1, 2), (2, 1), (3, 0))


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, "4", True])
def test_bad_n_is_named(bad):
    with pytest.raises(TopologyError):
        circuits.rectangular(bad)


def test_unknown_kind():
    with pytest.raises(TopologyError, match="unknown mesh kind"):
        circuits.topology(4, "hexagonal")


def test_topologies_hash_by_kind_and_size():
    assert circuits.rectangular(4) == circuits.topology(4, "rectangular")
    assert circuits.rectangular(4) != circuits.triangular(4)
    assert len({circuits.rectangular(4), circuits.rectangular(4)}) == 1
