"""Bad input to the public API: each case the first-user report found, then hypothesis over the boundaries.

Every call either succeeds with a finite, well-shaped answer or raises a named error (a ValueError /
TypeError subclass of the package) whose message names the argument, before any work is done."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapmesh import circuits, training
from tapmesh.calibration import (
    AsBuilt,
    Calibration,
    CalibrationError,
    CalibrationFileError,
    ChipInterfaceError,
    Noise,
    calibrate,
)
from tapmesh.circuits.arguments import MAX_MODES, WL_RANGE_UM, ArgumentError, check_float, check_int
from tapmesh.circuits.errors import CircuitsError, NonFiniteError, ShapeError, TopologyError
from tapmesh.training import TrainingArgumentError

TOP = circuits.rectangular(4)
PARAMS = circuits.MeshParams.zeros(TOP)
MOONS = training.data.moons(n_samples=60)
NET = training.PhotonicNetwork(TOP, 1, 2)
FAST = settings(max_examples=20, deadline=None)


# ------------------------------------------------------------------------------ the reported cases
def test_calibration_load_of_a_binary_file(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CalibrationFileError, match="not text"):
        Calibration.load(path)


def test_calibration_file_arrays_are_checked_against_its_topology(tmp_path):
    from tapmesh.calibration.persistence import _checksum

    Calibration.nominal(TOP).save(tmp_path / "ok.json")
    document = json.loads((tmp_path / "ok.json").read_text())
    document["calibration"]["delta"] = {"shape": [2, 2], "data": [0.0] * 4}  # 6 MZIs need (6, 2)
    document["checksum"] = _checksum(document["calibration"])
    (tmp_path / "bad.json").write_text(json.dumps(document))
    with pytest.raises(CalibrationFileError, match=r"delta has shape \(2, 2\).*needs \(6, 2\)"):
        Calibration.load(tmp_path / "bad.json")


def test_propagate_of_an_empty_batch_with_tap_powers():
    with pytest.raises(ShapeError, match="empty batch"):
        circuits.propagate(TOP, PARAMS, np.zeros((0, 4), complex), taps="power")


@pytest.mark.parametrize("wl", [0.0, float("nan"), -1.55, float("inf"), [1.55, float("nan")], []])
def test_wavelength_is_validated(wl):
    with pytest.raises(ArgumentError, match="wl"):
        circuits.unitary(TOP, PARAMS, wl=np.asarray(wl))
    with pytest.raises(ArgumentError, match="wl"):
        circuits.propagate(TOP, PARAMS, np.ones((2, 4), complex), wl=np.asarray(wl))


def test_asbuilt_tap_fraction_out_of_range_is_refused_not_clipped():
    with pytest.raises(CalibrationError, match="tap_fraction"):
        AsBuilt.random(TOP, tap_fraction=1.5)
    with pytest.raises(CalibrationError, match="dead_heaters"):
        AsBuilt.random(TOP, dead_heaters=[TOP.n_shifters])


@pytest.mark.parametrize("full_scale", [0.0, -1.0, float("nan")])
def test_noise_full_scale_must_be_positive(full_scale):
    with pytest.raises(CalibrationError, match="full_scale_mw"):
        Noise(full_scale_mw=full_scale)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"epochs": -1}, "epochs"), ({"learning_rate": float("nan")}, "learning_rate"), ({"batch_size": 0}, "batch_size"),
     ({"learning_rate": -0.1}, "learning_rate"), ({"monitor": "accuracy"}, "monitor"), ({"patience": 0}, "patience"),
     ({"evaluate_on": "chip"}, "evaluate_on"), ({"seed": -3}, "seed"), ({"epochs": 2.5}, "epochs")],
)
def test_train_arguments(kwargs, name):
    with pytest.raises(TrainingArgumentError, match=name):
        training.train(NET, MOONS, "autodiff", progress=False, **kwargs)


def test_fidelity_of_a_scalar_or_a_zero_matrix():
    u = circuits.haar_unitary(3, seed=0)
    with pytest.raises(ShapeError):
        circuits.fidelity(u, 0)
    with pytest.raises(NonFiniteError, match="v is all zero"):
        circuits.fidelity(u, np.zeros((3, 3)))
    assert float(circuits.fidelity(u, u)) == pytest.approx(1.0)


def test_a_huge_mesh_fails_fast_with_the_size_limit():
    start = time.process_time()
    with pytest.raises(TopologyError, match="MAX_MODES"):
        circuits.rectangular(10**6)
    assert time.process_time() - start < 1.0  # CPU time, not wall clock: the check comes before any allocation


def test_calibrate_refuses_what_is_not_a_chip():
    with pytest.raises(ChipInterfaceError, match="lacks n_modes"):
        calibrate("not_a_chip")
    chip = training_chip()
    with pytest.raises(CalibrationError, match="power_mw"):
        calibrate(chip, power_mw=-1.0, progress=False)
    with pytest.raises(CalibrationError, match="screen_crosstalk"):
        calibrate(chip, screen_crosstalk="yes", progress=False)
    assert chip.measurements == 0, "the check comes before the first camera frame"


def training_chip():
    from tapmesh.calibration import VirtualChip

    return VirtualChip(TOP, errors=AsBuilt.ideal(TOP))


def test_the_cli_and_the_engine_agree_on_the_size_limit():
    from tapmesh import cli

    assert cli.MAX_MODES == MAX_MODES


# ------------------------------------------------------------------------------------- hypothesis
anything = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10**7, max_value=10**7), st.lists(st.integers(), max_size=3),
)


@FAST
@given(value=anything)
def test_topology_size_is_an_integer_in_range_or_a_topology_error(value):
    try:
        top = circuits.rectangular(value)
    except TopologyError as error:
        assert "n" in str(error)
        return
    assert isinstance(value, int) and 2 <= value <= MAX_MODES and top.n == value


@FAST
@given(wl=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.lists(st.floats(0.1, 30.0), min_size=1, max_size=4)))
def test_any_wavelength_gives_a_finite_unitary_or_an_argument_error(wl):
    low, high = WL_RANGE_UM
    values = np.atleast_1d(np.asarray(wl, dtype=float))
    try:
        u = np.asarray(circuits.unitary(TOP, PARAMS, wl=np.asarray(wl)))
    except ArgumentError as error:
        assert "wl" in str(error)
        assert not (np.all(np.isfinite(values)) and values.min() >= low and values.max() <= high)
        return
    assert np.all(np.isfinite(u)) and values.min() >= low and values.max() <= high


@FAST
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=3), kind=st.sampled_from(["complex", "float", "int"]),
       taps=st.sampled_from([False, True, "power"]))
def test_any_field_shape_propagates_or_raises_a_shape_or_dtype_error(shape, kind, taps):
    x = np.ones(shape, dtype={"complex": complex, "float": float, "int": int}[kind])
    try:
        out = circuits.propagate(TOP, PARAMS, x, taps=taps)
    except CircuitsError as error:
        assert "x" in str(error) or "field" in str(error)
        return
    y = out[0] if taps else out
    assert kind != "int" and y.shape == x.shape and np.all(np.isfinite(np.asarray(y)))


@FAST
@given(a=st.lists(st.integers(0, 4), min_size=0, max_size=3), b=st.lists(st.integers(0, 4), min_size=0, max_size=3),
       scale=st.sampled_from([0.0, 1.0, float("nan")]))
def test_fidelity_is_in_0_1_or_a_named_error(a, b, scale):
    u, v = np.ones(a) * scale, np.ones(b)
    try:
        f = float(circuits.fidelity(u, v))
    except (ShapeError, NonFiniteError):
        return
    assert 0.0 <= f <= 1.0 + 1e-12


@FAST
@given(epochs=st.one_of(st.integers(-5, 0), st.floats(allow_nan=True)), batch=st.integers(-5, 40),
       lr=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0)))
def test_invalid_training_settings_are_refused_before_training(epochs, batch, lr):
    with pytest.raises(TrainingArgumentError) as caught:
        training.train(NET, MOONS, "autodiff", epochs=epochs, batch_size=batch, learning_rate=lr, progress=False)
    assert any(name in str(caught.value) for name in ("epochs", "batch_size", "learning_rate"))


@FAST
@given(tap=st.one_of(st.floats(-1, 2), st.just(float("nan"))), spread=st.floats(-0.5, 0.5), sigma=st.floats(-0.1, 0.1))
def test_asbuilt_random_refuses_or_draws_within_its_ranges(tap, spread, sigma):
    try:
        built = AsBuilt.random(TOP, seed=1, tap_fraction=tap, tap_spread=spread, delta_sigma=sigma)
    except CalibrationError as error:
        assert any(name in str(error) for name in ("tap_fraction", "tap_spread", "delta_sigma"))
        assert not (0 < tap <= 0.5 and spread >= 0 and sigma >= 0)
        return
    assert 0 < tap <= 0.5 and np.all((built.tap_fraction > 0) & (built.tap_fraction <= 0.5))


@FAST
@given(field=st.sampled_from(["shot", "read_mw", "full_scale_mw", "gain_sigma", "offset_mw"]),
       value=st.floats(allow_nan=True, allow_infinity=True))
def test_noise_fields_are_finite_and_in_range(field, value):
    try:
        Noise(**{field: value})
    except CalibrationError as error:
        assert field in str(error)
        assert not (math.isfinite(value) and (value > 0 or (value == 0 and field != "full_scale_mw")))
        return
    assert math.isfinite(value) and value >= 0


@FAST
@given(value=anything, low=st.integers(-3, 3))
def test_check_int_and_check_float_accept_exactly_their_ranges(value, low):
    try:
        got = check_int(value, "count", minimum=low)
        assert isinstance(value, int) and not isinstance(value, bool) and got == value >= low
    except ArgumentError as error:
        assert "count" in str(error)
    try:
        got = check_float(value, "power_mw", minimum=low, strict_minimum=True)
        assert math.isfinite(got) and got > low
    except ArgumentError as error:
        assert "power_mw" in str(error)
