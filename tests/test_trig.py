"""circuits.trig.cos_sin: the vectorized float64 cos/sin the component models use."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapmesh.circuits.trig import VECTORIZED_FROM, cos_sin

# two ulp of 1.0, the largest |cos|, |sin|: the bound holds for every x checked below
TOLERANCE = 2.3e-16


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_matches_libm_for_every_angle(x):
    cos_x, sin_x = (v[0] for v in cos_sin(np.full(VECTORIZED_FROM, x)))
    assert abs(float(cos_x) - np.cos(x)) <= TOLERANCE
    assert abs(float(sin_x) - np.sin(x)) <= TOLERANCE


def test_dense_sweep_and_quadrant_boundaries():
    """Half a million angles up to 1e6 rad, and every multiple of π/4 up to ±400π, where the range
    reduction changes quadrant."""
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-1e6, 1e6, 250_000), rng.uniform(-10, 10, 250_000),
                        np.arange(-1600, 1601) * (np.pi / 4), [0.0, -0.0, 5e-324, 1e-300]])
    cos_x, sin_x = jax.jit(cos_sin)(x)
    np.testing.assert_allclose(np.asarray(cos_x), np.cos(x), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(np.asarray(sin_x), np.sin(x), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(np.asarray(cos_x) ** 2 + np.asarray(sin_x) ** 2, 1.0, rtol=0, atol=4 * TOLERANCE)


def test_derivative_is_minus_sin_and_cos():
    x = jnp.linspace(-20.0, 20.0, 101)
    d_cos = jax.grad(lambda v: jnp.sum(cos_sin(v)[0]))(x)
    d_sin = jax.grad(lambda v: jnp.sum(cos_sin(v)[1]))(x)
    np.testing.assert_allclose(np.asarray(d_cos), -np.sin(np.asarray(x)), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(np.asarray(d_sin), np.cos(np.asarray(x)), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_angles_give_nan(value):
    assert all(np.isnan(np.asarray(v)).all() for v in cos_sin(np.full(VECTORIZED_FROM, value)))


def test_small_arrays_and_scalars_agree_with_large_ones():
    x = np.linspace(-7.0, 7.0, VECTORIZED_FROM)
    large = np.asarray(cos_sin(x))
    small = np.asarray(cos_sin(x[:-1]))
    scalar = np.asarray(cos_sin(x[0]))
    np.testing.assert_allclose(small, large[:, :-1], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(scalar, large[:, 0], rtol=0, atol=TOLERANCE)


def test_other_dtypes_keep_their_precision():
    cos32, sin32 = cos_sin(jnp.float32(1.0))
    assert cos32.dtype == sin32.dtype == jnp.float32
    assert float(cos32) == pytest.approx(np.cos(1.0), abs=1e-7)
    cos_int, _ = cos_sin(1)  # integers are taken as float
    assert jnp.issubdtype(cos_int.dtype, jnp.floating)
