import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapmesh import circuits
from tapmesh.circuits import MeshParams, propagate, unitary

KINDS = ["rectangular", "triangular"]


def random_field(batch, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, n)) + 1j * rng.normal(size=(batch, n))


@given(n=st.sampled_from([2, 3, 6, 11]), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31), delta=st.floats(0, 0.2))
def test_lossless_mesh_is_unitary(n, kind, seed, delta):
    top = circuits.topology(n, kind)
    u = np.asarray(unitary(top, MeshParams.random(top, seed=seed, delta_sigma=delta)))
    assert np.allclose(u.conj().T @ u, np.eye(n), atol=1e-12)


@given(n=st.sampled_from([2, 5, 8]), seed=st.integers(0, 2**31), tap=st.floats(0.0, 0.1), loss=st.floats(0, 1))
def test_energy_is_conserved_with_taps_and_loss(n, seed, tap, loss):
    """Output power + power tapped out + power lost never exceeds the input, and equals it when lossless."""
    top = circuits.rectangular(n)
    params = MeshParams.random(top, seed=seed, tap_fraction=tap, loss_db_sigma=loss)
    x = random_field(3, n, seed)
    y, fields = propagate(top, params, x, taps=True)
    p_in = np.sum(np.abs(x) ** 2, axis=1)
    p_out = np.sum(np.abs(y) ** 2, axis=1)
    p_tapped = np.sum(tap * np.abs(fields) ** 2, axis=1)
    assert np.all(p_out + p_tapped <= p_in * (1 + 1e-12))
    if loss == 0:
        assert np.allclose(p_out + p_tapped, p_in, rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_forward_matches_unitary_and_scan(kind):
    top = circuits.topology(7, kind)
    params = MeshParams.random(top, seed=3, delta_sigma=0.05, loss_db_sigma=0.2, tap_fraction=0.03)
    x = random_field(5, 7)
    u = np.asarray(unitary(top, params))
    y = np.asarray(propagate(top, params, x))
    y_scan, _ = propagate(top, params, x, taps=True)
    assert np.allclose(y, x @ u.T, atol=1e-12)
    assert np.allclose(y_scan, y, atol=1e-12)
    assert np.allclose(propagate(top, params, x[0]), y[0])


@pytest.mark.parametrize("kind", KINDS)
def test_backward_is_transpose_reciprocity(kind):
    top = circuits.topology(6, kind)
    params = MeshParams.random(top, seed=4, delta_sigma=0.05, loss_db_sigma=0.3, tap_fraction=0.02)
    x = random_field(4, 6, 1)
    u = np.asarray(unitary(top, params))
    back = np.asarray(propagate(top, params, x, direction="backward"))
    back_scan, _ = propagate(top, params, x, direction="backward", taps=True)
    assert np.allclose(back, x @ u, atol=1e-12)
    assert np.allclose(back_scan, back, atol=1e-12)


def test_tap_fields_are_the_segment_fields():
    """A single MZI: the taps see the field on the φ input, in the θ arm and at the outputs."""
    top = circuits.rectangular(2)
    theta, phi, gamma = 0.7, 1.3, np.array([0.2, -0.4])
    params = MeshParams.from_phases(top, [theta], [phi], gamma)
    x = np.array([[0.6 + 0.1j, -0.3 + 0.5j]])
    _, taps = propagate(top, params, x, taps=True)
    b = circuits.mzi_matrix(np.pi, 0)  # not used: build by hand below
    coupler = np.array([[1, 1j], [1j, 1]]) / np.sqrt(2)
    after_phi = np.array([x[0, 0] * np.exp(1j * phi), x[0, 1]])
    arm = coupler @ after_phi
    out = np.exp(1j * gamma) * (coupler @ np.array([arm[0] * np.exp(1j * theta), arm[1]]))
    assert np.allclose(taps[0], [arm[0] * np.exp(1j * theta), after_phi[0], out[0], out[1]])
    del b


@pytest.mark.parametrize("kind", KINDS + ["generator"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_tap_powers_are_the_squared_tap_fields(kind, direction):
    """taps="power" is |field|² of taps=True (same outputs), as a real array, on lossy, tapped meshes."""
    top = circuits.topology(7, kind)
    params = MeshParams.random(top, seed=3, delta_sigma=0.05, tap_fraction=0.03, loss_db_sigma=0.2)
    x = random_field(5, 7, seed=4)
    y_fields, fields = propagate(top, params, x, taps=True, direction=direction)
    y_powers, powers = propagate(top, params, x, taps="power", direction=direction)
    assert not np.iscomplexobj(powers) and powers.shape == (5, top.n_shifters)
    assert np.allclose(powers, np.abs(fields) ** 2, rtol=1e-12, atol=1e-14)
    assert np.allclose(y_powers, y_fields, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="taps must be"):
        propagate(top, params, x, taps="fields")


@pytest.mark.parametrize("kind", KINDS)
def test_forward_backward_tap_product_gives_the_gradient(kind):
    """The tap rule: for L = Re(c·y), dL/dφ_i = −Im(x_i a_i) with a the backward field of c at tap i."""
    top = circuits.topology(5, kind)
    params = MeshParams.random(top, seed=7, delta_sigma=0.04)
    x = random_field(1, 5, 2)[0]
    c = random_field(1, 5, 3)[0]

    def loss(phases):
        return jnp.real(jnp.dot(c, propagate(top, params.with_phases(phases), x)))

    grad = np.asarray(jax.grad(loss)(params.phases))
    _, fwd = propagate(top, params, x, taps=True)
    _, bwd = propagate(top, params, c, taps=True, direction="backward")
    assert np.allclose(grad, -np.imag(fwd * bwd), atol=1e-10)


def test_gradients_match_finite_differences():
    top = circuits.triangular(4)
    params = MeshParams.random(top, seed=1, delta_sigma=0.03, loss_db_sigma=0.1)
    x = random_field(3, 4)
    target = np.abs(random_field(3, 4, 9)) ** 2

    def loss(p):
        return jnp.sum((jnp.abs(propagate(top, p, x)) ** 2 - target) ** 2)

    grads = jax.grad(loss)(params)
    eps = 1e-6
    for name in ("theta", "phi", "gamma", "delta", "loss_db", "idle_loss_db"):
        value = np.asarray(getattr(params, name), dtype=float)
        flat = value.reshape(-1)
        for j in range(0, flat.size, max(1, flat.size // 4)):
            bump = np.zeros_like(flat)
            bump[j] = eps
            plus = params.__class__(**{**params.__dict__, name: jnp.asarray((flat + bump).reshape(value.shape))})
            minus = params.__class__(**{**params.__dict__, name: jnp.asarray((flat - bump).reshape(value.shape))})
            fd = (loss(plus) - loss(minus)) / (2 * eps)
            assert np.isclose(np.asarray(getattr(grads, name)).reshape(-1)[j], fd, rtol=1e-5, atol=1e-7), name


def test_complex64_agrees_with_complex128():
    top = circuits.rectangular(16)
    params = MeshParams.random(top, seed=2, delta_sigma=0.02)
    x = random_field(8, 16)
    y64 = propagate(top, params, x.astype(np.complex64))
    y128 = propagate(top, params, x)
    assert y64.dtype == jnp.complex64 and y128.dtype == jnp.complex128
    assert np.allclose(y64, y128, atol=2e-5)
    _, taps64 = propagate(top, params, x.astype(np.complex64), taps=True)
    assert taps64.dtype == jnp.complex64


def test_wavelength_sweep_is_one_batched_call():
    top = circuits.rectangular(4)
    params = MeshParams.random(top, seed=5)
    wl = np.linspace(1.50, 1.60, 11)
    x = random_field(2, 4)
    ys = np.asarray(propagate(top, params, x, wl=wl))
    assert ys.shape == (11, 2, 4)
    for i, w in enumerate(wl):
        assert np.allclose(ys[i], propagate(top, params, x, wl=w), atol=1e-12)
    us = np.asarray(unitary(top, params, wl=wl))
    # dispersion moves the couplers off 50:50 away from 1.55 µm, but lossless stays unitary
    assert np.allclose(np.einsum("wij,wik->wjk", us.conj(), us), np.eye(4), atol=1e-12)
    assert not np.allclose(us[0], us[5])


def test_jit_and_grad_run_through_the_public_api():
    top = circuits.rectangular(4)
    params = MeshParams.random(top, seed=5)
    x = random_field(2, 4)
    f = jax.jit(lambda p: jnp.sum(jnp.abs(propagate(top, p, x)) ** 2))
    assert np.isclose(f(params), np.sum(np.abs(x) ** 2))


class TestBadInput:
    top = circuits.rectangular(4)
    params = MeshParams.random(top)

    def test_wrong_field_shape(self):
        with pytest.raises(circuits.ShapeError, match=r"\(batch, 4\)"):
            propagate(self.top, self.params, np.ones((2, 5), complex))
        with pytest.raises(circuits.ShapeError):
            propagate(self.top, self.params, np.ones((2, 2, 4), complex))

    def test_wrong_field_dtype(self):
        with pytest.raises(circuits.DTypeError):
            propagate(self.top, self.params, np.ones((2, 4), dtype=int))

    def test_nan_in_field(self):
        x = np.ones((2, 4), complex)
        x[1, 2] = np.nan
        with pytest.raises(circuits.NonFiniteError):
            propagate(self.top, self.params, x)

    def test_params_that_do_not_fit(self):
        other = MeshParams.random(circuits.rectangular(5))
        with pytest.raises(circuits.ParamsError, match="needs"):
            propagate(self.top, other, np.ones(4))

    def test_nan_in_params(self):
        bad = self.params.with_phases(self.params.phases.at[3].set(jnp.nan))
        with pytest.raises(circuits.NonFiniteError, match="phi|theta"):
            unitary(self.top, bad)

    def test_bad_direction(self):
        with pytest.raises(ValueError, match="direction"):
            propagate(self.top, self.params, np.ones(4), direction="sideways")


def test_assemble_splits_phases_in_canonical_order():
    top = circuits.triangular(4)
    phases = np.arange(top.n_shifters, dtype=float)
    params = MeshParams.assemble(top, phases, delta=0.01, tap_fraction=0.02)
    assert np.array_equal(params.phases, phases)
    assert np.all(np.asarray(params.delta) == 0.01) and np.all(np.asarray(params.tap_fraction) == 0.02)
    with pytest.raises(circuits.ParamsError):
        MeshParams.assemble(top, phases[:-1])


@pytest.mark.parametrize("kind", ["rectangular", "triangular"])
def test_balanced_taps_make_the_mesh_a_scaled_unitary(kind):
    """Every tap matched by a dummy of the same fraction on the other arm, and two on every idle segment,
    makes each column lose the same power on every mode: U = (1 − t)^(C) · unitary. One-arm taps do not."""
    top = circuits.topology(6, kind)
    t = 0.02
    k = top.n_mzis
    phases = MeshParams.random(top, seed=7).phases
    dummy_db = -10 * np.log10(1 - t)
    balanced_loss = np.zeros((k, 4))
    balanced_loss[:, 1] = balanced_loss[:, 3] = dummy_db
    one_arm = MeshParams.assemble(top, phases, tap_fraction=t)
    balanced = MeshParams.assemble(top, phases, tap_fraction=t, loss_db=balanced_loss, idle_loss_db=2 * dummy_db)
    for params, is_balanced in ((balanced, True), (one_arm, False)):
        u = np.asarray(unitary(top, params))
        gram = u.conj().T @ u
        scale = np.real(np.trace(gram)) / top.n
        spread = np.abs(gram / scale - np.eye(top.n)).max()
        assert (spread < 1e-12) if is_balanced else (spread > 1e-3)
        if is_balanced:  # two taps' worth of power per column on every path, then the output tap
            assert np.isclose(scale, (1 - t) ** (2 * top.n_columns + 1), rtol=1e-12)
