import json

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tapmesh import circuits
from tapmesh.calibration import AsBuilt, CalibrationFileError, CalibrationVersionError, VoltageError
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.crosstalk import neighbour_pairs


def random_calibration(n=4, seed=201, crosstalk=0.02, beta=0.01):
    top = circuits.rectangular(n)
    truth = AsBuilt.random(top, seed=seed, crosstalk=crosstalk, beta_sigma=beta)
    cal = Calibration.nominal(top)
    cal.phase_offsets, cal.alpha, cal.beta = truth.phase_offsets, truth.alpha, truth.beta
    cal.crosstalk, cal.delta = truth.crosstalk, truth.delta
    return cal, truth


@given(seed=st.integers(0, 2**31), n=st.integers(2, 6), crosstalk=st.floats(0, 0.05), beta=st.floats(0, 0.02))
@example(seed=245487, n=4, crosstalk=0.03125, beta=0.015625)  # heater 13 peaks at 2.99 rad: out of reach
def test_voltages_for_phases_round_trips(seed, n, crosstalk, beta):
    """phases_for_voltages(voltages_for_phases(p)) ≡ p (mod 2π) for every target p, with crosstalk and β;
    a target out of reach (a β < 0 law that peaks below a full turn) is a named error, not a wrong voltage."""
    cal, _ = random_calibration(n, seed, crosstalk, beta)
    rng = np.random.default_rng(seed)
    target = rng.uniform(-10, 10, cal.n_heaters)
    try:
        v = cal.voltages_for_phases(target)
    except VoltageError as error:
        assert "cannot reach" in str(error)
        peaks = 4 * cal.alpha**3 / (27 * np.where(cal.beta < 0, cal.beta, np.inf) ** 2)
        assert np.any(peaks < 2 * np.pi)
        return
    assert np.all(v >= 0)
    error = np.angle(np.exp(1j * (cal.phases_for_voltages(v) - target)))
    assert np.max(np.abs(error)) < 1e-8


@given(seed=st.integers(0, 2**31), n=st.integers(2, 6))
def test_phase_law_matches_the_virtual_chip_truth(seed, n):
    cal, truth = random_calibration(n, seed)
    v = np.random.default_rng(seed).uniform(0, 4, cal.n_heaters)
    assert np.allclose(cal.phases_for_voltages(v), truth.phases(v))


def test_nominal_calibration_realizes_decompositions_exactly():
    top = circuits.rectangular(6)
    cal = Calibration.nominal(top, tap_fraction=0.0)
    u = circuits.haar_unitary(6, 202)
    v = cal.voltages_for(u, polish=False)
    assert circuits.fidelity(u, cal.unitary(cal.phases_for_voltages(v))) > 1 - 1e-10


def test_local_correction_undoes_known_splitting_errors():
    top = circuits.rectangular(8)
    cal = Calibration.nominal(top, tap_fraction=0.0)
    cal.delta = np.random.default_rng(203).normal(0, 0.03, (top.n_mzis, 2))
    u = circuits.haar_unitary(8, 204)
    result = cal.correct(u)
    assert result.fidelity_uncorrected < 0.995
    assert result.fidelity > 0.9999
    assert result.fidelity >= result.fidelity_local - 1e-9


def test_mesh_params_and_errors():
    cal, _ = random_calibration()
    params = cal.mesh_params(np.zeros(cal.n_heaters))
    assert np.allclose(params.delta, cal.delta)
    with pytest.raises(VoltageError):
        cal.voltages_for_phases(np.zeros(3))
    with pytest.raises(VoltageError):
        cal.phases_for_voltages(np.full(cal.n_heaters, np.nan))


@given(seed=st.integers(0, 2**31))
def test_save_load_round_trips(tmp_path_factory, seed):
    cal, _ = random_calibration(4, seed)
    cal.uncertainties = {"phase_offsets": np.full(cal.n_heaters, np.inf)}
    cal.residuals = {"refine": np.random.default_rng(seed).normal(size=7)}
    cal.dead_heaters, cal.dark_taps, cal.n_measurements = (3,), (5, 7), 1234
    path = tmp_path_factory.mktemp("cal") / "chip.json"
    cal.save(path)
    back = Calibration.load(path)
    for name in Calibration._ARRAYS + ("crosstalk",):
        assert np.array_equal(getattr(back, name), getattr(cal, name)), name
    assert back.topology == cal.topology
    assert np.isinf(back.uncertainties["phase_offsets"]).all()
    assert np.array_equal(back.residuals["refine"], cal.residuals["refine"])
    assert (back.dead_heaters, back.dark_taps, back.n_measurements) == ((3,), (5, 7), 1234)


def test_corrupt_and_newer_files_raise_named_errors(tmp_path):
    cal, _ = random_calibration()
    path = tmp_path / "chip.json"
    cal.save(path)
    good = path.read_text()
    document = json.loads(good)
    document["calibration"]["alpha"]["data"][0] += 1e-3
    path.write_text(json.dumps(document))
    with pytest.raises(CalibrationFileError, match="checksum"):
        Calibration.load(path)
    path.write_text(good[: len(good) // 2])
    with pytest.raises(CalibrationFileError):
        Calibration.load(path)
    document = json.loads(good)
    document["version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(CalibrationVersionError):
        Calibration.load(path)
    with pytest.raises(CalibrationFileError):
        Calibration.load(tmp_path / "missing.json")


def test_failed_save_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    cal, _ = random_calibration()
    path = tmp_path / "chip.json"
    cal.save(path)
    before = path.read_bytes()
    cal.alpha = cal.alpha * 2

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("tapmesh.circuits.io.os.replace", boom)  # the shared atomic writer
    with pytest.raises(OSError):
        cal.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["chip.json"]


def test_neighbours_are_local():
    top = circuits.rectangular(6)
    pairs = neighbour_pairs(top)
    assert len(pairs) > 0 and np.all(pairs[:, 0] != pairs[:, 1])
    k = top.n_mzis
    assert any((p[0] == 0 and p[1] == k) for p in pairs)  # θ and φ of one MZI are neighbours


# ----------------------------------------------------------------------------- sparse crosstalk
from pathlib import Path  # noqa: E402

from tapmesh.calibration import Crosstalk  # noqa: E402

DATA = Path(__file__).parent / "data"


def test_crosstalk_is_a_sparse_operator_matching_the_dense_matrix():
    top = circuits.rectangular(6)
    truth = AsBuilt.random(top, seed=205, crosstalk=0.02)
    cal = Calibration.nominal(top)
    assert isinstance(cal.crosstalk, Crosstalk) and cal.crosstalk.nnz == 0
    cal.crosstalk = truth.crosstalk  # a dense array is converted on assignment
    x = cal.crosstalk
    assert isinstance(x, Crosstalk) and x.shape == truth.crosstalk.shape
    assert x.nnz == np.count_nonzero(truth.crosstalk) == len(neighbour_pairs(top))
    p = np.random.default_rng(206).uniform(0, 9, cal.n_heaters)
    assert np.allclose(x @ p, truth.crosstalk @ p, rtol=1e-14, atol=0)
    batch = np.random.default_rng(207).uniform(0, 9, (3, cal.n_heaters))
    assert np.allclose(batch @ x, batch @ truth.crosstalk) and np.allclose(x @ batch.T, truth.crosstalk @ batch.T)
    assert np.array_equal(x.toarray(), truth.crosstalk) and np.array_equal(np.asarray(x), truth.crosstalk)
    i, j = neighbour_pairs(top)[3]
    assert x[i, j] == truth.crosstalk[i, j] and x[i, i] == 0.0
    assert np.array_equal(x.values_at(neighbour_pairs(top)), truth.crosstalk[tuple(neighbour_pairs(top).T)])
    assert x == Crosstalk.from_pairs(cal.n_heaters, x.pairs, x.values) == Crosstalk.coerce(x.tocsr())
    with pytest.raises(ValueError):
        x.values[0] = 1.0  # immutable: no silent edits of a shared operator
    with pytest.raises(ValueError):
        cal.crosstalk = np.zeros((3, 3))  # wrong size for this chip


def test_nominal_at_n64_allocates_no_dense_crosstalk():
    top = circuits.rectangular(64)
    cal = Calibration.nominal(top)
    x = cal.crosstalk
    assert cal.n_heaters == 4096 and x.nnz == 0
    footprint = sum(a.nbytes for a in (x.rows, x.cols, x.values)) + x.tocsr().indptr.nbytes
    assert footprint < 100_000  # the dense matrix was 4096² × 8 B = 134 MB
    v = cal.voltages_for_phases(np.full(cal.n_heaters, 1.0))
    assert np.allclose(cal.phases_for_voltages(v), 1.0)


def test_files_of_format_version_1_with_dense_crosstalk_still_load(tmp_path):
    """tests/data/calibration_v1_n4.json was written by the code that held X as a dense (H, H) array
    (format version 1, X on disk as row-major rows/cols/values). It loads unchanged, and saving it again
    writes the same payload (same checksum)."""
    path = DATA / "calibration_v1_n4.json"
    document = json.loads(path.read_text())
    assert document["version"] == 1
    cal = Calibration.load(path)
    stored = document["calibration"]["crosstalk"]
    dense = np.zeros((cal.n_heaters, cal.n_heaters))
    dense[stored["rows"], stored["cols"]] = stored["values"]["data"]
    assert cal.crosstalk.nnz == len(stored["rows"]) > 0
    assert np.array_equal(cal.crosstalk.toarray(), dense)
    assert cal.dead_heaters == (3,) and cal.n_measurements == 4321
    target = np.random.default_rng(208).uniform(0, 6, cal.n_heaters)
    v = cal.voltages_for_phases(target)
    alive = np.ones(cal.n_heaters, dtype=bool)
    alive[3] = False
    error = np.angle(np.exp(1j * (cal.phases_for_voltages(v) - target)))[alive]
    assert np.max(np.abs(error)) < 1e-8
    cal.save(tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["checksum"] == document["checksum"]
    assert again["calibration"] == document["calibration"]


def test_balanced_tap_model_agrees_with_the_engine_and_survives_a_save(tmp_path):
    """Calibration.nominal(balanced_taps=True): the per-MZI model the fits use (column_transfer,
    screening's tap_powers) is the engine's (dummy loss on the bottom input and arm, two dummies on each
    idle segment), the mesh it describes is a scaled unitary, and the idle loss survives save/load
    (a one-arm calibration writes no idle field, so its files read the same in every version)."""
    from tapmesh.calibration.screening import tap_powers
    from tapmesh.calibration.transfer import column_transfer

    top = circuits.rectangular(5)
    cal = Calibration.nominal(top, balanced_taps=True)
    rng = np.random.default_rng(3)
    cal.delta = rng.normal(0, 0.03, (top.n_mzis, 2))
    phases = rng.uniform(0, 2 * np.pi, cal.n_heaters)
    engine = cal.unitary(phases)
    assert np.allclose(column_transfer(cal, phases, range(top.n_columns), with_gamma=True), engine, atol=1e-12)
    x = rng.normal(size=(3, top.n)) + 1j * rng.normal(size=(3, top.n))
    _, power = circuits.propagate(top, cal.mesh_params(phases), x, taps="power")
    assert np.allclose(tap_powers(cal, phases, x)[0], np.asarray(power), rtol=1e-10)
    gram = engine.conj().T @ engine
    assert np.abs(gram / gram[0, 0] - np.eye(top.n)).max() < 1e-12
    assert np.all(cal.idle_loss_db > 0) and cal.idle_loss_db.shape == (top.n_idle,)
    cal.save(tmp_path / "balanced.json")
    assert np.array_equal(Calibration.load(tmp_path / "balanced.json").idle_loss_db, cal.idle_loss_db)
    Calibration.nominal(top).save(tmp_path / "one_arm.json")
    stored = json.loads((tmp_path / "one_arm.json").read_text())["calibration"]
    assert "idle_loss_db" not in stored
    assert np.array_equal(Calibration.load(tmp_path / "one_arm.json").idle_loss_db, np.zeros(top.n_idle))


def test_dark_pair_normal_matrix_does_not_break_the_batch():
    """A dark pair's nan normal matrix gives a nan covariance; the lit pairs' are inverted as before."""
    from tapmesh.calibration.stage_crosstalk import pinv_finite

    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6, 3))
    ata = np.einsum("bij,bik->bjk", a, a)
    ata[2, 1, 1] = np.nan
    inverse = pinv_finite(ata)
    assert np.all(np.isnan(inverse[2]))
    for b in (0, 1, 3):
        np.testing.assert_allclose(inverse[b], np.linalg.inv(ata[b]), rtol=1e-10)
    assert np.all(np.isnan(pinv_finite(np.full((2, 3, 3), np.nan))))
