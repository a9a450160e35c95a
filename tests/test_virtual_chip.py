import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapmesh import circuits
from tapmesh.calibration import AsBuilt, Chip, ChipStateError, FieldError, Noise, VirtualChip, VoltageError


def test_virtual_chip_is_a_chip():
    chip = VirtualChip(circuits.rectangular(4), seed=11)
    assert isinstance(chip, Chip)
    assert chip.n_modes == 4 and chip.n_heaters == 2 * 6 + 4


def test_ideal_chip_at_zero_volts_matches_the_engine():
    top = circuits.rectangular(5)
    chip = VirtualChip(top, errors=AsBuilt.ideal(top, tap_fraction=0.0))
    chip.set_voltages(np.zeros(chip.n_heaters))
    u = circuits.unitary(top, circuits.MeshParams.zeros(top))
    assert np.allclose(chip.unitary(), u)


def test_taps_and_outputs_follow_the_true_params():
    top = circuits.rectangular(4)
    truth = AsBuilt.random(top, seed=101, crosstalk=0.02, beta_sigma=0.01, tap_spread=0.1)
    chip = VirtualChip(top, errors=truth)
    rng = np.random.default_rng(102)
    v = rng.uniform(0, 3, chip.n_heaters)
    chip.set_voltages(v)
    x = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    chip.inject(x)
    params = truth.mesh_params(top, v)
    y, fields = circuits.propagate(top, params, x, taps=True)
    assert np.allclose(chip.read_outputs(), np.abs(y) ** 2)
    assert np.allclose(chip.read_taps("forward"), truth.tap_fraction * np.abs(fields) ** 2)
    assert np.allclose(chip.read_taps("backward"), 0.0)
    assert np.allclose(chip.read_outputs_coherent(), y)
    assert chip.measurements == 12
    chip.inject(x[0], side="output")
    yb, fb = circuits.propagate(top, params, x[0], taps=True, direction="backward")
    assert np.allclose(chip.read_taps("backward"), truth.tap_fraction * np.abs(fb) ** 2)
    assert chip.read_outputs().shape == (4,)


def test_heater_law_with_crosstalk_and_dead_heater():
    top = circuits.rectangular(4)
    truth = AsBuilt.random(top, seed=103, crosstalk=0.05, dead_heaters=(2,))
    v = np.linspace(0, 2, top.n_shifters)
    p = v**2
    p[2] = 0
    expected = truth.phase_offsets + truth.alpha * (p + truth.crosstalk @ p)
    assert np.allclose(truth.phases(v), expected)
    assert truth.crosstalk[np.diag_indices(top.n_shifters)].sum() == 0
    assert np.count_nonzero(truth.crosstalk) > 0


def test_dark_tap_reads_only_offset():
    top = circuits.rectangular(4)
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=104, dark_taps=(5,)))
    chip.inject(np.ones(4) / 2)
    taps = chip.read_taps()
    assert taps[5] == 0 and np.all(np.delete(taps, 5) >= 0)


def test_noise_is_seeded_and_quantized():
    top = circuits.rectangular(4)
    readings = []
    for _ in range(2):
        chip = VirtualChip(top, noise=Noise.realistic(), seed=105)
        chip.inject(np.ones(4) / 2)
        readings.append(chip.read_taps())
    assert np.array_equal(readings[0], readings[1])
    fs = Noise.realistic().full_scale_mw
    levels = readings[0] / fs * (2**12 - 1)
    assert np.allclose(levels, np.round(levels))
    other = VirtualChip(top, noise=Noise.realistic(), seed=106)
    other.inject(np.ones(4) / 2)
    assert not np.array_equal(other.read_taps(), readings[0])


def test_named_errors():
    chip = VirtualChip(circuits.rectangular(3), seed=107)
    with pytest.raises(ChipStateError):
        chip.read_taps()
    with pytest.raises(VoltageError):
        chip.set_voltages(np.zeros(3))
    with pytest.raises(VoltageError):
        chip.set_voltages(np.full(chip.n_heaters, np.nan))
    with pytest.raises(VoltageError):
        chip.set_voltages(np.full(chip.n_heaters, 6.0))
    with pytest.raises(FieldError):
        chip.inject(np.ones(4))
    with pytest.raises(FieldError):
        chip.inject(np.array([1, np.nan, 0]))
    with pytest.raises(FieldError):
        chip.inject(np.ones(3), side="left")


@given(seed=st.integers(0, 2**31), n=st.integers(2, 6))
def test_lossless_chip_conserves_power(seed, n):
    """Without loss, output power plus tapped power equals input power, for any voltages."""
    top = circuits.rectangular(n)
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=seed), seed=seed)
    rng = np.random.default_rng(seed)
    chip.set_voltages(rng.uniform(-4, 4, chip.n_heaters))
    x = rng.normal(size=n) + 1j * rng.normal(size=n)
    chip.inject(x)
    total = chip.read_outputs().sum() + chip.read_taps().sum()
    assert np.isclose(total, np.sum(np.abs(x) ** 2))


def _exercise(chip, rng_seed=7):
    """A measurement session touching every read path: readings in order, and the frame count."""
    rng = np.random.default_rng(rng_seed)
    h, n = chip.n_heaters, chip.n_modes
    x = rng.normal(size=(5, n)) + 1j * rng.normal(size=(5, n))
    readings = []
    chip.set_voltages(rng.uniform(0, 3, h))
    chip.inject(x)
    readings += [chip.read_outputs_coherent(), chip.read_taps("forward"), chip.read_taps("backward"), chip.read_outputs()]
    chip.inject(x[:3], side="output")  # an odd batch (padded inside)
    readings += [chip.read_taps("backward"), chip.read_outputs_coherent(), chip.read_taps("forward")]
    chip.set_voltages(rng.uniform(0, 3, h))  # new voltages, same injected field: the chip re-simulates
    readings += [chip.read_taps("backward"), chip.read_outputs()]
    chip.inject(x[0])
    readings += [chip.read_taps("forward"), chip.read_outputs()]
    return readings, chip.measurements


def test_lazy_chip_reads_what_the_eager_chip_reads():
    """Lazy evaluation (simulate only what is read, outputs through the cached transfer matrix) gives the
    eager chip's readings, with the same noise draws, and counts the same frames."""
    top = circuits.rectangular(5)
    truth = AsBuilt.random(top, seed=21, crosstalk=0.03, beta_sigma=0.01, loss_db=0.2, loss_db_sigma=0.05, tap_spread=0.1)
    noise = Noise(shot=0.01, read_mw=1e-4, gain_sigma=0.05, offset_mw=1e-3)
    lazy, frames_lazy = _exercise(VirtualChip(top, truth, noise, seed=3))
    eager, frames_eager = _exercise(VirtualChip(top, truth, noise, seed=3, lazy=False))
    assert frames_lazy == frames_eager == 5 * 4 + 3 * 3 + 3 * 2 + 2
    for a, b in zip(lazy, eager):
        assert a.shape == b.shape
        assert np.allclose(a, b, rtol=1e-10, atol=1e-13)
    # the unlit gratings read only noise and offsets, never light
    assert np.all(np.abs(eager[2]) < 0.1 * np.max(eager[1]))


def test_lazy_chip_matches_the_engine_with_dead_heaters():
    top = circuits.rectangular(4)
    truth = AsBuilt.random(top, seed=22, crosstalk=0.05, beta_sigma=0.02, dead_heaters=(1, 9))
    chip = VirtualChip(top, truth)
    rng = np.random.default_rng(23)
    v = rng.uniform(0, 3, chip.n_heaters)
    chip.set_voltages(v)
    x = rng.normal(size=(6, 4)) + 1j * rng.normal(size=(6, 4))
    y, fields = circuits.propagate(top, truth.mesh_params(top, v), x, taps=True)
    chip.inject(x)
    assert np.allclose(chip.read_outputs_coherent(), y, rtol=1e-12, atol=1e-14)
    assert np.allclose(chip.read_taps(), truth.tap_fraction * np.abs(fields) ** 2, rtol=1e-12, atol=1e-16)
    # a frame can be read again (the chip hands out its arrays, then simulates again)
    assert np.allclose(chip.read_taps(), truth.tap_fraction * np.abs(fields) ** 2, rtol=1e-12, atol=1e-16)
    assert chip.measurements == 18


def test_complex64_chip_agrees_with_complex128():
    top = circuits.rectangular(8)
    truth = AsBuilt.random(top, seed=24, loss_db=0.1, loss_db_sigma=0.02)
    readings = {}
    for precision in ("complex128", "complex64"):
        chip = VirtualChip(top, truth, precision=precision)
        readings[precision], _ = _exercise(chip, rng_seed=25)
    for a, b in zip(readings["complex128"], readings["complex64"]):
        assert a.dtype == b.dtype  # readings are float64 / complex128 whatever the simulation precision
        scale = np.max(np.abs(a))
        if scale == 0:  # unlit gratings of a noiseless camera
            assert not np.any(b)
            continue
        err = np.max(np.abs(a - b)) / scale
        assert 0 < err < 1e-5, err  # > 0: the simulation really ran in single precision
    with pytest.raises(ValueError):
        VirtualChip(top, truth, precision="float32")


def test_balanced_tap_chip_loses_the_same_power_on_every_path():
    """AsBuilt.random(balanced_taps=True) with no tap spread: the true transfer matrix is a scaled
    unitary (dummies match every tap); the same chip without them is not. Other draws are unchanged."""
    from tapmesh import circuits as c

    top = c.rectangular(6)
    grams = {}
    for balanced in (False, True):
        truth = AsBuilt.random(top, seed=11, delta_sigma=0.03, tap_spread=0.0, balanced_taps=balanced)
        chip = VirtualChip(top, errors=truth, seed=1)
        u = np.asarray(chip.unitary(np.full(top.n_shifters, 0.7)))
        gram = u.conj().T @ u
        grams[balanced] = np.abs(gram / (np.trace(gram).real / top.n) - np.eye(top.n)).max()
    assert grams[True] < 1e-9 < 1e-3 < grams[False]
    plain = AsBuilt.random(top, seed=11, balanced_taps=False)
    balanced = AsBuilt.random(top, seed=11, balanced_taps=True)
    np.testing.assert_array_equal(plain.delta, balanced.delta)
    assert balanced.idle_loss_db.shape == (top.n_idle,) and np.all(balanced.loss_db[:, [1, 3]] > 0)
