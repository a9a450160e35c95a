"""cos and sin of the same real angles, vectorized in float64.

XLA on CPU evaluates float64 ``sin`` and ``cos`` with one scalar libm call per element (~5 ns each on
the benchmark machine, against ~0.5 ns for the vectorized float64 ``exp``), and the mesh models need
four angles per MZI (θ, φ and two coupling angles). :func:`cos_sin` computes both from one range
reduction and two short polynomials in plain arithmetic, which XLA vectorizes.

Accuracy (float64): within 2 ulp of the correctly rounded values for ``|x| < 1e6`` rad, i.e. far beyond
any phase a heater sets (tested against NumPy over that range). float32 and other dtypes go to
``jnp.cos``/``jnp.sin``, which XLA already vectorizes, and so do arrays of fewer than
:data:`VECTORIZED_FROM` elements.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

VECTORIZED_FROM = 64
"""Arrays with fewer elements use libm: too few lanes to gain, and a larger program to compile (SAX
evaluates every instance's model on scalars: its n = 16 gradient took 7x longer to compile with the
polynomial; the engine at n = 8, 28 MZIs, ran 8 µs → 24 µs per call)."""

# π/2 as hi + mid + lo (Cody–Waite): hi and mid carry 33 significant bits, so q·hi and q·mid are exact
# for |q| < 2²⁰ quadrants (|x| < 1.6e6 rad); the residual π/2 − hi − mid − lo is 1e-37.
_HALF_PI_HI = 1.5707963267341256
_HALF_PI_MID = 6.077100506303966e-11
_HALF_PI_LO = 2.0222662487959506e-21

# Taylor coefficients on |r| ≤ π/4: the first omitted terms are below 5e-17 (sin) and 2e-18 (cos).
_SIN_COEFFICIENTS = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(1, 8))  # r³ … r¹⁵
_COS_COEFFICIENTS = tuple((-1) ** k / math.factorial(2 * k) for k in range(1, 9))  # r² … r¹⁶


def _horner(r2, coefficients):
    """Σ_k coefficients[k] · r2^k."""
    total = jnp.full_like(r2, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        total = total * r2 + c
    return total


def _cos_sin_reduced(x):
    quadrant = jnp.round(x * (2 / math.pi))
    r = ((x - quadrant * _HALF_PI_HI) - quadrant * _HALF_PI_MID) - quadrant * _HALF_PI_LO  # |r| ≤ π/4
    r2 = r * r
    sin_r = r + r * r2 * _horner(r2, _SIN_COEFFICIENTS)
    cos_r = 1.0 + r2 * _horner(r2, _COS_COEFFICIENTS)
    q = quadrant - 4.0 * jnp.floor(quadrant / 4.0)  # quadrant mod 4, as 0., 1., 2. or 3.
    odd = (q == 1.0) | (q == 3.0)
    cos_x = jnp.where(odd, sin_r, cos_r) * jnp.where((q == 1.0) | (q == 2.0), -1.0, 1.0)
    sin_x = jnp.where(odd, cos_r, sin_r) * jnp.where(q >= 2.0, -1.0, 1.0)
    return cos_x, sin_x


def cos_sin(x) -> tuple[jax.Array, jax.Array]:
    """``(cos x, sin x)`` of a real array ``x`` (radians), elementwise; differentiable (the polynomial
    path's derivative is taken from the same values, not from the polynomials)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.dtype != jnp.float64 or x.size < VECTORIZED_FROM:
        return jnp.cos(x), jnp.sin(x)  # exactly what the models computed before: same trace, same compile
    return _cos_sin_float64(x)


@jax.custom_jvp
def _cos_sin_float64(x):
    return _cos_sin_reduced(x)


@_cos_sin_float64.defjvp
def _cos_sin_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    cos_x, sin_x = _cos_sin_float64(x)
    return (cos_x, sin_x), (-sin_x * dx, cos_x * dx)
