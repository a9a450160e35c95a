import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapmesh import circuits
from tapmesh.circuits import NotUnitaryError, ShapeError, clements, haar_unitary, reck, unitary


# a few sizes: each new size compiles the engine once
SIZES = st.sampled_from([2, 3, 4, 7, 12])


@given(n=SIZES, seed=st.integers(0, 2**31))
def test_clements_round_trip(n, seed):
    u = haar_unitary(n, seed)
    assert np.abs(np.asarray(unitary(circuits.rectangular(n), clements(u))) - u).max() < 1e-12


@given(n=SIZES, seed=st.integers(0, 2**31))
def test_reck_round_trip(n, seed):
    u = haar_unitary(n, seed)
    assert np.abs(np.asarray(unitary(circuits.triangular(n), reck(u))) - u).max() < 1e-12


@pytest.mark.parametrize("decomposition,kind", [(clements, "rectangular"), (reck, "triangular")])
def test_n64_to_1e10(decomposition, kind):
    u = haar_unitary(64, 11)
    params = decomposition(u)
    assert np.abs(np.asarray(unitary(circuits.topology(64, kind), params)) - u).max() < 1e-10


def test_phases_are_wrapped():
    params = clements(haar_unitary(6, 1))
    for a in (params.theta, params.phi, params.gamma):
        assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < 2 * np.pi))


def test_identity_and_permutations_decompose():
    for u in (np.eye(5), np.eye(5)[::-1], np.roll(np.eye(5), 1, axis=0)):
        for decomposition, kind in ((clements, "rectangular"), (reck, "triangular")):
            v = np.asarray(unitary(circuits.topology(5, kind), decomposition(u)))
            assert np.abs(v - u).max() < 1e-12


@given(n=st.sampled_from([2, 3, 5, 9]), seed=st.integers(0, 2**31))
def test_generator_and_analyzer(n, seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n) + 1j * rng.normal(size=n)
    v /= np.linalg.norm(v)
    gen = np.asarray(unitary(circuits.generator(n), circuits.generator_settings(v)))
    assert np.allclose(gen[:, 0], v, atol=1e-12)
    ana = np.asarray(unitary(circuits.analyzer(n), circuits.analyzer_settings(v)))
    assert np.allclose(ana @ v, np.eye(n)[0], atol=1e-12)


def test_non_unitary_target_is_named():
    with pytest.raises(NotUnitaryError, match="not unitary"):
        clements(np.ones((4, 4)))
    with pytest.raises(NotUnitaryError):
        reck(np.full((3, 3), np.nan))
    with pytest.raises(ShapeError):
        clements(np.eye(3)[:2])


def test_decompose_dispatch_and_fidelity():
    u = haar_unitary(5, 2)
    for kind in ("rectangular", "triangular"):
        top = circuits.topology(5, kind)
        assert circuits.fidelity(u, unitary(top, circuits.decompose(top, u))) > 1 - 1e-12
    assert float(circuits.fidelity(u, np.exp(0.3j) * u)) == pytest.approx(1.0)
    with pytest.raises(circuits.NotRealizableError):
        circuits.decompose(circuits.generator(5), u)
