"""The engine against the SAX reference circuit built from the same component models."""

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.circuits import MeshParams, models, propagate, unitary
from tapmesh.circuits.reference import mesh_netlist, reference_taps, reference_unitary

CASES = [(n, kind) for n in (2, 3, 4, 5) for kind in ("rectangular", "triangular")] + [
    pytest.param(8, kind, marks=pytest.mark.slow) for kind in ("rectangular", "triangular")]  # n = 8: SAX compiles 10 s


def as_built(top, seed):
    return MeshParams.random(top, seed=seed, delta_sigma=0.05, loss_db_sigma=0.3, tap_fraction=0.03)


@pytest.mark.parametrize("n,kind", CASES)
def test_engine_equals_sax_with_errors_loss_and_taps(n, kind):
    top = circuits.topology(n, kind)
    params = as_built(top, seed=100 + n)
    wl = np.array([1.53, 1.55, 1.57])
    assert np.abs(np.asarray(reference_unitary(top, params, wl=wl)) - np.asarray(unitary(top, params, wl=wl))).max() < 1e-6


@pytest.mark.parametrize("n,kind", [(3, "rectangular"), (6, "triangular")])
def test_flat_analytic_reference_equals_engine(n, kind):
    top = circuits.topology(n, kind)
    params = MeshParams.random(top, seed=5, delta_sigma=0.05, loss_db_sigma=0.3)  # no taps in the flat netlist
    assert np.abs(np.asarray(reference_unitary(top, params, taps=False)) - np.asarray(unitary(top, params))).max() < 1e-6


@pytest.mark.parametrize("n,kind", [(4, "rectangular"), (5, "triangular")])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_engine_taps_equal_sax_tap_ports(n, kind, direction):
    top = circuits.topology(n, kind)
    params = as_built(top, seed=7)
    x = np.random.default_rng(3).normal(size=n) + 1j * np.random.default_rng(4).normal(size=n)
    _, fields = propagate(top, params, x, taps=True, direction=direction)
    drop = 1j * np.sqrt(np.asarray(params.tap_fraction))
    assert np.abs(np.asarray(reference_taps(top, params, x, direction)) - drop * np.asarray(fields)).max() < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rectangular", "triangular"])
def test_engine_equals_sax_n16(kind):
    top = circuits.topology(16, kind)
    params = as_built(top, seed=16)
    assert np.abs(np.asarray(reference_unitary(top, params)) - np.asarray(unitary(top, params))).max() < 1e-6


def test_netlist_covers_every_instance_once():
    top = circuits.rectangular(4)
    netlist = mesh_netlist(top)["top_level"]
    assert len([i for i in netlist["instances"] if i.startswith("mzi")]) == top.n_mzis
    assert {f"in{m}" for m in range(4)} | {f"out{m}" for m in range(4)} <= set(netlist["ports"])
    assert len([p for p in netlist["ports"] if p.endswith("_fwd")]) == top.n_shifters


class TestModels:
    @pytest.mark.parametrize(
        "model,kwargs",
        [
            (models.coupler, {"delta": 0.07}),
            (models.mmi2x2, {"delta": -0.03, "loss_db": 0.2}),
            (models.waveguide, {"length": 37.0}),
            (models.phase_shifter, {"phase": 1.2, "loss_db": 0.1}),
            (models.thermo_optic_phase_shifter, {"voltage": 1.5, "phase_offset": 0.3}),
            (models.grating_tap, {"tap_fraction": 0.04}),
            (models.grating_coupler, {"peak_loss_db": 2.0}),
        ],
    )
    def test_reciprocal(self, model, kwargs):
        s = model(wl=np.array([1.5, 1.55, 1.6]), **kwargs)
        for (a, b), value in s.items():
            assert np.allclose(value, s[(b, a)])

    def test_lossless_coupler_and_tap_conserve_energy(self):
        for s, ports in ((models.coupler(wl=1.57, delta=0.1), ("o1", "o2")), (models.grating_tap(tap_fraction=0.05), ("o1",))):
            for p in ports:
                assert np.isclose(sum(abs(v) ** 2 for (a, _), v in s.items() if a == p), 1.0)

    def test_conventions(self):
        s = models.coupler(delta=0.0)
        assert np.isclose(s[("o2", "o3")], np.cos(np.pi / 4)) and np.isclose(s[("o1", "o3")], 1j * np.sin(np.pi / 4))
        assert np.isclose(models.phase_from_voltage(2.0, 0.1, 0.5, 0.01), 0.1 + 2.0 + 0.08)
        assert np.isclose(models.heater_power(2.0, 1000.0), 4.0)  # mW
        assert np.isclose(abs(models.grating_coupler(wl=1.55 + 0.0175)[("o1", "o2")]) ** 2, 10 ** (-(3 + 1) / 10))
        assert np.isclose(abs(models.waveguide(length=1e4, loss_db_cm=2.0)[("o1", "o2")]) ** 2, 10 ** (-0.2))

    def test_composed_mzi_is_the_design_convention(self):
        def matrix(s):
            return np.array([[s[("o2", "o3")], s[("o1", "o3")]], [s[("o2", "o4")], s[("o1", "o4")]]])

        assert np.allclose(matrix(models.mzi(theta=0.4, phi=2.1)), circuits.mzi_matrix(0.4, 2.1))
        # the analytic MZI and SAX's solution of its netlist agree, errors and dispersion included
        settings = dict(coupler_in={"delta": 0.05}, coupler_out={"delta": -0.03}, theta={"phase": 1.0}, phi={"phase": 0.2})
        solved = models.mzi_circuit()(wl=1.57, **settings)
        analytic = models.mzi(wl=1.57, theta=1.0, phi=0.2, delta_in=0.05, delta_out=-0.03)
        assert np.allclose(matrix(solved), matrix(analytic))
