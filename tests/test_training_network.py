"""PhotonicNetwork: encodings, activations, readout and the chip/twin agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.training import Activation, Encoding, PhotonicNetwork, data, port_groups
from test_training_support import ideal_chip


def test_encodings_place_features_bias_and_phases():
    u = np.array([[0.25, 0.5]])
    amp = Encoding("amplitude", bias=0.7)(u, 4)
    assert np.allclose(amp, [[0.25, 0.5, 0.7, 0.7]])
    ap = Encoding("amplitude_phase", bias=1.0)(u, 4)
    assert np.allclose(ap[0, :2], [0.25, 0.5]) and np.allclose(ap[0, 2:], np.exp(1j * np.pi * u[0]))
    with pytest.raises(ValueError, match="needs 4 ports"):
        Encoding("amplitude_phase")(u, 3)


@pytest.mark.parametrize("kind", ["abs", "abs2", "eo", "linear"])
def test_activations_are_finite_and_powers_agree(kind):
    z = jnp.asarray([0.3 + 0.4j, -1.0j, 0.0])
    f = np.asarray(Activation(kind)(z))
    assert np.all(np.isfinite(f))
    if Activation(kind).from_powers:
        assert np.allclose(f, Activation(kind).of_powers(np.abs(np.asarray(z)) ** 2), atol=1e-12)


def test_port_groups_split_ports_among_classes():
    assert port_groups(4, 2) == ((0, 1), (2, 3))
    assert port_groups(64, 10)[-1] == tuple(range(54, 60))


def test_model_only_network_evaluates_and_rejects_chip_use():
    net = PhotonicNetwork(circuits.rectangular(4), 2, 2)
    phases = net.init(0)
    ds = data.moons(n_samples=100)
    loss, acc = net.evaluate(phases, ds.x_test, ds.y_test, on="model")
    assert np.isfinite(loss) and 0 <= acc <= 1
    with pytest.raises(RuntimeError, match="no chip"):
        net.chip(0)


@pytest.mark.parametrize("time_multiplexed", [True, False])
def test_chip_forward_matches_the_twin_on_an_ideal_chip(time_multiplexed):
    top = circuits.triangular(4)
    pairs = [ideal_chip(top) for _ in range(1 if time_multiplexed else 3)]
    net = PhotonicNetwork(top, 3, 2, chips=[c for c, _ in pairs], calibrations=[k for _, k in pairs], activation="eo",
                          encoding="amplitude_phase")
    assert net.time_multiplexed == time_multiplexed
    phases = net.init(2)
    x = net.encode(data.moons(n_samples=40).x_test)
    out = net.chip_forward(phases, x)
    twin = net.model_fields(phases, x)
    for z_chip, z_model in zip(out["zs"], twin):
        assert np.allclose(z_chip, z_model, atol=1e-9)
    assert out["passes"] == 3 * x.shape[0]
