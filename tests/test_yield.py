"""Fabrication yield: the wafer variation model's physics, the fast mode's error model, and the study on Dask
(resume, a worker killed midway, reproducibility across worker counts, bad input)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.calibration.surrogate import ErrorModel, load_error_models, save_error_models
from tapmesh.calibration.wafer import IndependentModel, Variation, WaferModel, WaferModelError
from tapmesh.circuits.variation import Sensitivities

ROOT = Path(__file__).resolve().parents[1]
ERROR_MODEL = ErrorModel(n=4, chips=3, theta_rad=0.003, phi_rad=0.003, gamma_rad=0.003, alpha_rel=5e-4,
                         delta_rad=1e-3)


# ----------------------------------------------------------------------------- physics of the mapping
def test_sensitivities_follow_the_coupler_and_index_physics():
    s = Sensitivities()
    # C ∝ exp(−γ g): a gap 1 nm wider lowers κ by the fraction γ·1 nm; γ from neff and the cladding index
    assert s.decay_per_um == pytest.approx(2 * np.pi / 1.55 * np.sqrt(2.34**2 - 1.444**2))
    h = 1e-3
    slope = (s.splitting_error(s.coupling_log_change(0, 0, h)) - s.splitting_error(s.coupling_log_change(0, 0, -h))) / (2 * h)
    assert slope == pytest.approx(s.delta_per_nm["gap"], rel=1e-6)
    assert s.delta_per_nm["gap"] < 0 < s.delta_per_nm["width_bias"]  # wider gap: less coupling; edge bias: more
    assert s.delta_per_nm["thickness"] < 0  # thicker: better confined, less coupling
    # δ is κ − π/4 of the coupler model: its cross power is sin²(π/4 + δ)
    delta = float(s.splitting_error(s.coupling_log_change(5.0, 0.0, -5.0)))
    cross = abs(complex(circuits.models.coupler(delta=delta)[("o1", "o3")])) ** 2
    assert cross == pytest.approx(np.sin(np.pi / 4 * np.exp(float(s.coupling_log_change(5.0, 0.0, -5.0)))) ** 2)
    # a weak tap moves with the same coupling change, to first order by 2·ΔlnC
    assert s.tap_fraction(0.02, 0.01) / 0.02 - 1 == pytest.approx(0.02, rel=0.02)
    # phase of 1 nm of width over a 100 µm segment: k0·L·dneff/dw
    assert s.phase_error(1.0, 0.0, 0.0) == pytest.approx(2 * np.pi / 1.55 * 100 * 2.7e-3)
    assert s.segment_loss_db(-10.0) > s.segment_loss_db(0.0) == pytest.approx(2.0 * 100e-4)


def test_wafer_model_reaches_the_requested_sigma_delta_over_many_wafers():
    model = replace(WaferModel(), die_mm=(40.0, 40.0)).for_sigma_delta(0.02)  # 12 dies a wafer: many wafers
    assert model.sigma_delta == pytest.approx(0.02)
    top = circuits.rectangular(4)
    deltas = np.array([model.chip(top, i, seed=5)[0].delta for i in range(480)])
    assert np.std(deltas) == pytest.approx(0.02, rel=0.15)
    assert abs(np.mean(deltas)) < 0.01


def test_nearby_dies_correlate_and_far_ones_do_not():
    model = WaferModel().for_sigma_delta(0.03)
    top = circuits.rectangular(4)
    chips = [model.chip(top, i, seed=0) for i in range(300)]
    means = np.array([truth.delta.mean() for truth, _ in chips])
    xy = np.array([(site["x_mm"], site["y_mm"]) for _, site in chips])
    assert {site["wafer"] for _, site in chips} == {0}
    z = (means - means.mean()) / means.std()
    distance = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    product = z[:, None] * z[None, :]
    near, far = product[(distance > 0) & (distance <= 12)].mean(), product[distance > 60].mean()
    assert near > 0.4 and far < 0.15
    # within a die the couplers still differ (local mismatch), less than across the wafer
    assert np.mean([truth.delta.std() for truth, _ in chips]) < means.std()


def test_chips_are_the_same_in_any_order_and_scale_with_sigma():
    top = circuits.rectangular(4)
    model = WaferModel()
    late = model.for_sigma_delta(0.01).chip(top, 7, seed=3)
    for i in range(7):
        model.for_sigma_delta(0.01).chip(top, i, seed=3)
    again = model.for_sigma_delta(0.01).chip(top, 7, seed=3)
    np.testing.assert_array_equal(late[0].delta, again[0].delta)
    assert late[1] == again[1]
    doubled = model.for_sigma_delta(0.02).chip(top, 7, seed=3)[0].delta  # common random numbers across σ
    np.testing.assert_allclose(doubled, 2 * late[0].delta, rtol=0.05, atol=1e-5)
    zero = model.for_sigma_delta(0.0).chip(top, 7, seed=3)[0]
    assert np.all(zero.delta == 0) and np.allclose(zero.tap_fraction, 0.02)


def test_independent_model_is_the_simple_case():
    top = circuits.rectangular(8)
    deltas = np.concatenate([IndependentModel(sigma_delta=0.02).chip(top, i, seed=1)[0].delta.ravel() for i in range(40)])
    assert np.std(deltas) == pytest.approx(0.02, rel=0.1)


def test_bad_variation_parameters_are_named():
    with pytest.raises(WaferModelError, match="sigma_delta"):
        WaferModel().for_sigma_delta(-0.01)
    with pytest.raises(WaferModelError, match="local_sigma"):
        Variation(local_sigma=-1.0)
    with pytest.raises(WaferModelError, match="die"):
        WaferModel(die_mm=(300.0, 300.0))


# ----------------------------------------------------------------------------- fast mode's error model
def test_error_model_measure_recovers_the_errors_of_a_perturbed_calibration():
    top = circuits.rectangular(8)
    truth, _ = WaferModel().for_sigma_delta(0.02).chip(top, 0, seed=0)
    known = ErrorModel(n=8, chips=1, theta_rad=0.004, phi_rad=0.01, gamma_rad=0.002, alpha_rel=0.003, delta_rad=0.002)
    pairs = [(known.calibration(top, truth, seed=s), truth) for s in range(6)]
    measured = ErrorModel.measure(pairs)
    for name in ("theta_rad", "phi_rad", "gamma_rad", "alpha_rel", "delta_rad"):
        assert getattr(measured, name) == pytest.approx(getattr(known, name), rel=0.15), name
    pooled = ErrorModel.pool([ErrorModel.measure(pairs[:3]), ErrorModel.measure(pairs[3:])])
    assert pooled.chips == 6 and pooled.phi_rad == pytest.approx(measured.phi_rad, rel=1e-9)
    assert pooled.theta_alpha_corr == pytest.approx(measured.theta_alpha_corr, abs=1e-9)
    assert load_error_models(save_error_models({8: measured})) == {8: measured}
    with pytest.raises(ValueError, match="error-model"):
        load_error_models("[1, 2]")


def test_error_model_draws_keep_the_heater_law_correlation_and_the_depth_growth():
    """A heater-law fit trades offset against slope (φ0 and α errors anticorrelated), and errors grow with
    column depth: draws of a model with both are measured back with both."""
    top = circuits.rectangular(8)
    truth, _ = WaferModel().for_sigma_delta(0.02).chip(top, 0, seed=0)
    known = ErrorModel(n=8, chips=1, theta_rad=0.004, phi_rad=0.008, gamma_rad=0.003, alpha_rel=0.003, delta_rad=0.001,
                       alpha_theta_rel=0.002, alpha_phi_rel=0.004, alpha_gamma_rel=0.003,
                       theta_alpha_corr=-0.7, phi_alpha_corr=-0.4, gamma_alpha_corr=0.0,
                       theta_depth_gain=0.0, phi_depth_gain=1.5)
    measured = ErrorModel.pool(ErrorModel.measure([(known.calibration(top, truth, seed=s), truth)]) for s in range(30))
    for name in ("theta_alpha_corr", "phi_alpha_corr", "gamma_alpha_corr"):
        assert getattr(measured, name) == pytest.approx(getattr(known, name), abs=0.1), name
    for name in ("alpha_theta_rel", "alpha_phi_rel", "phi_rad"):
        assert getattr(measured, name) == pytest.approx(getattr(known, name), rel=0.1), name
    assert measured.phi_depth_gain == pytest.approx(1.5, abs=0.4)
    assert measured.theta_depth_gain == pytest.approx(0.0, abs=0.4)
    with pytest.raises(ValueError, match="correlation"):
        replace(known, theta_alpha_corr=1.5)
    with pytest.raises(ValueError, match="depth_gain"):
        replace(known, phi_depth_gain=3.0)


def test_effective_scale_matches_the_infidelity_real_errors_add():
    """The draws are scaled by sqrt(excess_full / excess_draw); scale 0 is the truth itself; a model saved
    before the fidelity measurement existed draws at scale 1, as it did."""
    top = circuits.rectangular(4)
    truth, _ = WaferModel().for_sigma_delta(0.02).chip(top, 0, seed=0)
    assert ERROR_MODEL.effective_scale == 1.0
    scaled = ERROR_MODEL.with_excess(1e-5, 4e-4)
    assert scaled.effective_scale == pytest.approx(np.sqrt(1 / 40))
    assert ERROR_MODEL.with_excess(-1e-6, 4e-4).effective_scale == 0.0  # the real errors helped: the truth
    a, b = scaled.calibration(top, truth, seed=3), ERROR_MODEL.calibration(top, truth, seed=3)
    np.testing.assert_allclose(np.angle(np.exp(1j * (a.phase_offsets - truth.phase_offsets))),
                               scaled.effective_scale * np.angle(np.exp(1j * (b.phase_offsets - truth.phase_offsets))),
                               atol=1e-12)
    exact = scaled.calibration(top, truth, seed=3, scale=0.0)
    np.testing.assert_allclose(np.exp(1j * exact.phase_offsets), np.exp(1j * truth.phase_offsets), atol=1e-12)
    np.testing.assert_array_equal(exact.alpha, truth.alpha)
    np.testing.assert_array_equal(exact.delta, truth.delta)
    pooled = ErrorModel.pool([scaled, replace(scaled, excess_full=3e-5)])
    assert pooled.excess_full == pytest.approx(2e-5) and pooled.excess_draw == pytest.approx(4e-4)
    assert ErrorModel.pool([scaled, ERROR_MODEL]).excess_full is None  # one unmeasured: no scale
    legacy = {k: v for k, v in ERROR_MODEL.to_dict().items() if k in ("n", "chips", "theta_rad", "phi_rad",
              "gamma_rad", "alpha_rel", "delta_rad", "crosstalk", "tap_guess")}
    assert ErrorModel.from_dict(legacy) == ERROR_MODEL
    assert load_error_models(save_error_models({4: scaled})) == {4: scaled}
    with pytest.raises(ValueError, match="scale"):
        scaled.calibration(top, truth, seed=3, scale=-1.0)
    with pytest.raises(ValueError, match="n = 8"):
        scaled.calibration(circuits.rectangular(8), truth, seed=3)


@pytest.mark.slow
def test_fast_mode_stands_in_for_full_calibration_on_chips_it_did_not_see():
    """Measured on 3 error chips, the fast mode's infidelity on 4 other chips is the full calibration's (the
    draws at the raw RMS would be 1.45× at n = 8), and the real errors add less than random ones."""
    from tapmesh.yield_study import Study, error_model_chip, pool_error_models, run_chunk

    study = Study(ns=(8,), sigmas=(0.02,), chips=4, seed=0, mode="fast", k_targets=2, polish=False)
    model, _ = pool_error_models(8, (error_model_chip(study, 8, i) for i in range(3)))
    assert 0 < model.effective_scale < 0.8
    assert model.theta_alpha_corr < -0.1 and model.phi_alpha_corr < -0.1
    fast = run_chunk(study, study.keys(), {8: model})
    full = run_chunk(replace(study, mode="full"), study.keys())
    assert {r["verdict"] for r in fast} == {"stand-in"} and {r["verdict"] for r in full} == {"passed"}
    ratio = np.mean([1 - r["f_mean"] for r in fast]) / np.mean([1 - r["f_mean"] for r in full])
    assert 0.8 < ratio < 1.25


def test_a_failed_verdict_is_scored_not_raised_and_kept_out_of_the_error_model(monkeypatch):
    """A chip whose calibration fails its verdict is part of the yield (scored, verdict "failed"), but its
    errors are not what a working calibration leaves: the error model pools only the passed ones, and says
    when none passed."""
    import functools

    import tapmesh.calibration
    from tapmesh.yield_study import YieldStudyError, calibrate_full, error_model_chip, fabricate, pool_error_models

    study = _study(chips=1)
    vchip, _ = fabricate(study, 4, 0.02, 0)
    impossible = functools.partial(tapmesh.calibration.calibrate, min_fidelity=1.5)  # no fit can pass
    monkeypatch.setattr(tapmesh.calibration, "calibrate", impossible)
    cal = calibrate_full(vchip, study.seed, 0)
    assert cal.quality is not None and not cal.quality.passed
    assert any("min_fidelity" in reason for reason in cal.quality.reasons)
    assert error_model_chip(study, 4, 0) is None
    with pytest.raises(YieldStudyError, match="all 2 error-model calibrations at n = 4 failed"):
        pool_error_models(4, [None, None])
    pooled, left_out = pool_error_models(4, [ERROR_MODEL, None, ERROR_MODEL])
    assert left_out == 1 and pooled.theta_rad == pytest.approx(ERROR_MODEL.theta_rad)


# ----------------------------------------------------------------------------- the study
def _study(**kwargs):
    from tapmesh.yield_study import Study

    settings = dict(ns=(4,), sigmas=(0.02,), chips=6, seed=11, mode="fast", k_targets=2, polish=False)
    settings.update(kwargs)
    return Study(**settings)


def test_study_rejects_bad_settings():
    from tapmesh.yield_study import YieldStudyError

    with pytest.raises(YieldStudyError, match="chips"):
        _study(chips=0)
    with pytest.raises(YieldStudyError, match="sigma_delta"):
        _study(sigmas=(0.01, -0.02))
    with pytest.raises(YieldStudyError, match="mode"):
        _study(mode="quick")


@pytest.fixture(scope="module")
def threads_client():
    """One in-process Dask worker (threads): a real distributed scheduler without process start-up."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_study_resumes_and_writes_table_plots_and_summary(tmp_path, threads_client):
    from tapmesh import yield_dask

    lines = []
    first = yield_dask.run(_study(chips=3), tmp_path, client=threads_client, error_models={4: ERROR_MODEL},
                           echo=lines.append, plots=False)
    assert first["chips_scored"] == first["chips_this_run"] == 3
    assert any("dashboard" in line for line in lines)
    summary = yield_dask.run(_study(chips=5), tmp_path, client=threads_client, echo=lines.append)
    assert summary["chips_this_run"] == 2 and summary["chips_scored"] == 5  # the first 3 were skipped
    table = yield_dask.read_table(tmp_path)
    assert list(table["chip"]) == [0, 1, 2, 3, 4] and (table["mode"] == "fast").all()
    assert (table["verdict"] == "stand-in").all()
    assert ((table["f_mean"] > 0.99) & (table["f_mean"] <= 1)).all()
    assert (table["f_mean"] >= table["f_uncorrected"] - 1e-4).all()
    group = summary["groups"][0]
    assert group["chips"] == 5 and group["yield"] == np.mean(table["f_mean"] >= 0.99)
    saved = json.loads((tmp_path / "yield_summary.json").read_text())
    assert saved["chips_scored"] == 5
    for name in ("yield.parquet", "yield_vs_spec.png", "fidelity_distributions.png", "wafer_map.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    from tapmesh.yield_study import YieldStudyError

    with pytest.raises(YieldStudyError, match="other settings"):
        yield_dask.run(_study(seed=12), tmp_path, client=threads_client)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1",
                XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def test_bad_input_is_one_line_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from tapmesh.cli import app

    def one_line_error(*args, words=()):
        result = CliRunner().invoke(app, ["yield", *args])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("tapmesh yield: error:"), result.stderr
        for word in words:
            assert word in lines[0]

    out = tmp_path / "never"
    one_line_error("--chips", "0", "--out", str(out), words=("YieldStudyError", "chips"))
    one_line_error("--sigma-delta", "0.01,-0.02", "--out", str(out), words=("sigma_delta",))
    one_line_error("--sigma-delta", "0.01,abc", "--out", str(out), words=("--sigma-delta",))
    port = _free_port()  # nothing listens there
    one_line_error("--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1", "--out", str(out),
                   words=("SchedulerError", f"127.0.0.1:{port}"))
    assert not out.exists()


@pytest.mark.slow  # four processes that each import JAX: ~30 s of CPU
def test_scheduler_and_two_workers_one_killed_midway_every_chip_once(tmp_path):
    """`dask scheduler` + two `dask worker` processes; one worker is killed once the first chips are in."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for name in ("a", "b"):
            procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                           "--name", name], env=_env(), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        error_model = tmp_path / "error_model.json"
        error_model.write_text(save_error_models({4: ERROR_MODEL}))
        out = tmp_path / "study"
        chips = 12
        study = subprocess.Popen(
            [sys.executable, "-m", "tapmesh", "yield", "--scheduler", address, "--n", "4", "--chips", str(chips),
             "--sigma-delta", "0.02", "--mode", "fast", "--no-polish", "--k-targets", "2", "--chunk", "1",
             "--error-model", str(error_model), "--no-png", "--seed", "11", "--out", str(out), "--json"],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not list((out / "chips").glob("part-*.parquet")) if (out / "chips").is_dir() else True:
            assert study.poll() is None, study.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        parts_at_kill = len(list((out / "chips").glob("part-*.parquet")))
        procs[1].send_signal(signal.SIGKILL)
        stdout, stderr = study.communicate(timeout=300)
        assert study.returncode == 0, stderr
        assert parts_at_kill < chips  # the kill came midway
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["chips_scored"] == chips and "yield" in summary and summary["spec"] == 0.99
        assert "dashboard" in stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    import pandas as pd

    table = pd.read_parquet(out / "yield.parquet")
    parts = pd.concat([pd.read_parquet(p) for p in (out / "chips").glob("part-*.parquet")])
    assert sorted(table["chip"]) == list(range(chips)) == sorted(parts["chip"])  # every chip exactly once
    # reproducible chip for chip: the same chips scored here, in one process with no Dask at all
    from tapmesh.yield_study import run_chunk

    again = run_chunk(_study(chips=chips), [(4, 0.02, i) for i in (0, 5, 11)], {4: ERROR_MODEL})
    expected = table.set_index("chip").loc[[0, 5, 11]]
    np.testing.assert_allclose([r["f_mean"] for r in again], expected["f_mean"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal([r["x_mm"] for r in again], expected["x_mm"].to_numpy())


@pytest.mark.slow
def test_same_table_with_one_and_two_local_workers(tmp_path):
    from tapmesh import yield_dask

    tables = []
    for workers in (1, 2):
        yield_dask.run(_study(chips=6), tmp_path / str(workers), workers=workers, error_models={4: ERROR_MODEL},
                       plots=False, echo=lambda line: None)
        tables.append(yield_dask.read_table(tmp_path / str(workers)).drop(columns=["seconds"]))
    assert tables[0].equals(tables[1])
