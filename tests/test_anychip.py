"""Calibration on any chip (issue 13): heater-law discovery, capabilities, the verdict, neighbours, the driver kit.

The default run uses a bench written here from the documented conventions (tests/lab_chip.py) and small
meshes; the full matrix (α over two decades, ranges 5–12 V, with and without output-side source and coherent
readout, n = 6 and 8) is behind ``-m slow``.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.calibration import (
    AsBuilt,
    Bench,
    Calibration,
    CalibrationQualityError,
    Capabilities,
    LimitError,
    MissingCapabilityError,
    Noise,
    VirtualChip,
    calibrate,
)
from tapmesh.calibration.discovery import MIN_SPAN, resolve
from tapmesh.calibration.procedure import FaultWarning
from tapmesh.calibration.neighbours import crosstalk_pairs, pairs_within
from tapmesh.calibration.quality import fidelity_up_to_output_phases
from tapmesh.calibration.testing import check_driver

sys.path.insert(0, str(Path(__file__).parent))
from lab_chip import LabChip  # noqa: E402


def within_limits(chip) -> bool:
    v = np.asarray(chip.frames_voltages)
    low, high = chip.capabilities.limits(chip.n_heaters)
    return bool(np.all(v >= low) and np.all(v <= high))


class CountingChip:
    """Forwards a VirtualChip and records every setting it is given (for the limits check)."""

    def __init__(self, chip):
        self._chip = chip
        self.frames_voltages = []
        self.capabilities = chip.capabilities
        self.n_modes, self.n_heaters, self.topology = chip.n_modes, chip.n_heaters, chip.topology

    def set_voltages(self, v):
        self.frames_voltages.append(np.array(v, dtype=float))
        self._chip.set_voltages(v)

    def __getattr__(self, name):
        if name in ("inject", "read_taps", "read_outputs", "read_outputs_coherent"):
            return getattr(self._chip, name)
        raise AssertionError(f"calibration read {name!r}, which is not part of the Chip protocol")


def haar_scores(cal, unitary_of, n, up_to_phases, seed=8100, targets=5):
    score = fidelity_up_to_output_phases if up_to_phases else (lambda u, v: float(circuits.fidelity(u, v)))
    out = []
    for s in range(targets):
        u = circuits.haar_unitary(n, seed=seed + s)
        out.append(score(u, unitary_of(cal.voltages_for(u))))
    return np.array(out)


# ----------------------------------------------------------------------------- discovery (pure numpy)
@pytest.mark.parametrize("alpha,v_max", [(0.05, 12.0), (0.33, 5.0), (3.0, 8.0), (10.0, 12.0)])
def test_discovery_windows_find_alpha_over_two_decades(alpha, v_max):
    """The growing windows of drive² find α with no hint, from 0.05 to 10 rad/V², a V³ term included."""
    rng = np.random.default_rng(int(alpha * 100))
    full = v_max**2
    window = full * 4.0**-5
    beta = 0.004 * alpha
    while True:
        x = np.linspace(0, window, 12)
        phase = 1.1 + alpha * x + beta * x**1.5
        y = 0.05 + 0.04 * np.cos(phase)[:, None] + 2e-4 * rng.normal(size=(12, 1))
        found, a, _ = resolve(x, y, noise=2e-4)
        if found[0] or window >= full:
            break
        window = min(full, 4 * window)
    assert found[0], "no fringe found"
    effective = alpha + beta * np.sqrt(window) * 0.6  # the cubic term adds ~β·√x over the window
    assert abs(a[0] - effective) / alpha < 0.1
    assert a[0] * window >= MIN_SPAN * 0.95


# ----------------------------------------------------------------------------- the bench's limits
def test_bench_refuses_settings_outside_the_declared_limits_before_the_chip_sees_them():
    top = circuits.rectangular(3)
    chip = CountingChip(VirtualChip(top, seed=3, max_voltage=6.0, min_voltage=0.0, max_total_power_mw=300.0,
                                    heater_resistance_ohm=500.0))
    bench = Bench(chip, 3, top.n_shifters)
    h = top.n_shifters
    with pytest.raises(LimitError, match="heater 2"):
        bench.set(np.r_[0.0, 0.0, 6.5, np.zeros(h - 3)])
    with pytest.raises(LimitError, match="outside"):
        bench.set(np.r_[-0.1, np.zeros(h - 1)])
    with pytest.raises(LimitError, match="total heater power"):
        bench.set(np.full(h, 5.0))  # 9 heaters × 25 V² / 500 Ω = 450 mW > 300 mW
    assert chip.frames_voltages == []
    bench.set(np.full(h, 2.0))
    assert len(chip.frames_voltages) == 1


def test_virtual_chip_declares_and_refuses_what_it_cannot_do():
    top = circuits.rectangular(3)
    chip = VirtualChip(top, seed=4, output_side_source=False, coherent_readout=False, drive="current",
                       max_voltage=20.0, min_voltage=0.0)
    caps = chip.capabilities
    assert caps.drive == "current" and not caps.output_side_source and not caps.coherent_readout
    chip.inject(np.ones(3))
    with pytest.raises(NotImplementedError):
        chip.read_outputs_coherent()
    with pytest.raises(NotImplementedError):
        chip.inject(np.ones(3), side="output")
    with pytest.raises(Exception, match="outside"):
        chip.set_voltages(np.full(top.n_shifters, -1.0))
    bench = Bench(chip, 3, top.n_shifters)
    with pytest.raises(MissingCapabilityError, match="output_side_source"):
        bench.measure(np.zeros(top.n_shifters), np.ones((1, 3)), side="output", taps="backward")


def test_missing_capabilities_are_said_before_the_first_frame():
    top = circuits.rectangular(3)
    chip = CountingChip(VirtualChip(top, seed=5, output_side_source=False))
    with pytest.raises(MissingCapabilityError, match="output_side_source"):
        calibrate(chip, method="sweeps", progress=False)
    shifted = CountingChip(VirtualChip(top, seed=5, max_voltage=8.0, min_voltage=1.0))
    with pytest.raises(MissingCapabilityError, match="drive_min"):
        calibrate(shifted, progress=False)
    assert chip.frames_voltages == [] and shifted.frames_voltages == []


# ----------------------------------------------------------------------------- neighbours from geometry
def test_crosstalk_pairs_come_from_positions_or_explicit_pairs():
    top = circuits.rectangular(4)
    lab = LabChip(top, seed=1)
    pairs = crosstalk_pairs(top, chip_map=lab.positions, distance_um=150.0)
    d = np.linalg.norm(lab.positions[pairs[:, 0]] - lab.positions[pairs[:, 1]], axis=1)
    assert len(pairs) and np.all(d <= 150.0)
    assert {tuple(p) for p in pairs} == {tuple(p[::-1]) for p in pairs}  # both directions
    explicit = crosstalk_pairs(top, neighbours=np.array([[0, 5]]))
    assert explicit.tolist() == [[0, 5], [5, 0]]
    assert len(pairs_within(lab.positions)) > 0


# ----------------------------------------------------------------------------- the lab bench's own physics
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_lab_chip_agrees_with_the_engine_in_both_directions(direction):
    """The independent bench's numpy physics equals circuits.propagate: outputs and every tap, light from
    either side (backward: transfer Uᵀ, each tap reading the light arriving at it)."""
    top = circuits.rectangular(4)
    lab = LabChip(top, seed=5, output_side=True, coherent=True)
    k = top.n_mzis
    v = np.random.default_rng(1).uniform(0, 9, lab.h)
    ph = lab._phases(v)
    params = circuits.MeshParams(theta=ph[:k], phi=ph[k:2 * k], gamma=ph[2 * k:], delta=lab.kappa - np.pi / 4,
                                 loss_db=np.zeros((k, 4)), output_loss_db=np.zeros(lab.n), tap_fraction=lab.t, idle_loss_db=np.zeros(top.n_idle))
    x = np.random.default_rng(2).normal(size=(3, lab.n)) + 1j * np.random.default_rng(3).normal(size=(3, lab.n))
    y, power = circuits.propagate(top, params, x, taps="power", direction=direction)
    own = lab._propagate if direction == "forward" else lab._propagate_backward
    y_lab, taps_lab = own(v, x)
    assert np.allclose(y_lab, np.asarray(y), atol=1e-12)
    assert np.allclose(taps_lab, lab.t * np.asarray(power), atol=1e-12)


# ----------------------------------------------------------------------------- the driver kit
class SideBlind(LabChip):
    """A driver bug: light is always sent from the input side, whatever ``inject`` is told."""

    def inject(self, x, side="input"):
        super().inject(x, "input")


class DirectionBlind(LabChip):
    """A driver bug: the camera always reads the spots of the direction the light travels, whatever it is asked."""

    def read_taps(self, direction="forward"):
        return super().read_taps("forward" if self._side == "input" else "backward")


@pytest.mark.parametrize("bench, says", [(SideBlind, "backward readout sees no light"),
                                         (DirectionBlind, "ignore inject(side=...)")])
def test_check_driver_names_a_driver_that_loses_the_lights_direction(bench, says):
    top = circuits.rectangular(4)
    assert check_driver(LabChip(top, seed=2, output_side=True), topology=top).ok
    report = check_driver(bench(top, seed=2, output_side=True), topology=top)
    assert not report.ok and says in str(report)


@pytest.mark.parametrize("coherent", [True, False])
def test_a_bench_whose_backward_gratings_see_no_light_is_named_once_not_as_every_tap_dark(coherent):
    """The output-side source declared but its light never reaching the backward spots (here: a driver that
    ignores ``side``) is one bench fault: a warning, ``degraded: backward_taps``, planned as a bench without
    an output-side source (no refinement; without coherent readout γ only up to output phases, said)."""
    top = circuits.rectangular(4)
    chip = SideBlind(top, seed=7, output_side=True, coherent=coherent)
    with pytest.warns(FaultWarning, match="none of the backward gratings"):
        cal = calibrate(chip, topology=top, progress=False, seed=1)
    q = cal.quality
    assert cal.dark_taps == () and "backward_taps" in q.degraded and "refine" in q.skipped and q.passed
    assert q.up_to_output_phases == (not coherent)
    assert haar_scores(cal, chip.true_unitary, 4, up_to_phases=not coherent, targets=3).min() > 0.999
    with pytest.warns(FaultWarning), pytest.raises(MissingCapabilityError, match="output_side_source"):
        calibrate(SideBlind(top, seed=7, output_side=True, coherent=coherent), topology=top, progress=False,
                  method="sweeps")


def test_check_driver_passes_good_drivers_and_names_what_a_bad_one_does_wrong():
    top = circuits.rectangular(4)
    report = check_driver(LabChip(top, seed=2), topology=top)
    report.assert_ok()
    check_driver(VirtualChip(top, seed=2, noise=Noise.realistic())).assert_ok()

    class Sloppy(LabChip):
        def set_voltages(self, v):  # no checks at all: NaN and 100 V go to the DAC
            self.v = np.nan_to_num(np.asarray(v, dtype=float))[: self.h]

        def read_taps(self, direction="forward"):
            return super().read_taps(direction) * 1e4  # counts, not mW

    bad = check_driver(Sloppy(top, seed=2), topology=top)
    assert not bad.ok
    text = str(bad)
    assert "accepted NaN" in text and "above the declared range" in text and "not counts" in text
    with pytest.raises(AssertionError, match="FAIL"):
        bad.assert_ok()


# ----------------------------------------------------------------------------- a lab's own chip
@pytest.fixture(scope="module")
def lab_calibrated():
    top = circuits.rectangular(4)
    chip = LabChip(top, seed=31, alpha=1.7, v_max=9.0)
    cal = calibrate(chip, topology=top, chip_map=chip.positions, progress=False, seed=31)
    return chip, cal


def test_forward_only_lab_chip_calibrates_with_no_hints(lab_calibrated, tmp_path):
    """No output-side source, no coherent readout, α ≈ 1.7 rad/V², β ≠ 0, 0–9 V, crosstalk from its own
    geometry: the plan falls back (no refinement, γ up to output phases), says so, and the chip delivers."""
    chip, cal = lab_calibrated
    q = cal.quality
    assert q.passed, q.summary()
    assert "refine" in q.skipped and "output_phases" in q.degraded and q.up_to_output_phases
    assert within_limits(chip)
    scores = haar_scores(cal, chip.true_unitary, 4, up_to_phases=True)
    print("lab chip n=4 F (up to output phases):", scores.round(5), q.summary())
    assert scores.min() >= 0.99
    assert q.fidelity_low <= scores.mean() + 0.01  # the prediction does not promise more than it delivers
    alive = np.ones(chip.h, dtype=bool)
    alive[2 * chip.k:] = False  # γ: not measurable on this bench
    assert np.max(np.abs(cal.alpha[alive] / chip.alpha[alive] - 1)) < 0.05
    # the verdict is persisted; the file loads with it
    path = cal.save(tmp_path / "lab.json")
    back = Calibration.load(path)
    assert back.quality.passed and back.quality.degraded == q.degraded


def test_camera_far_noisier_than_declared_fails_the_verdict(tmp_path):
    top = circuits.rectangular(4)
    chip = LabChip(top, seed=32, read_mw=6e-3, declared_noise_mw=6e-5)  # 100× what the bench declares
    with pytest.raises(CalibrationQualityError, match="declares") as caught:
        calibrate(chip, topology=top, progress=False, seed=32)
    partial = caught.value.calibration
    assert not partial.quality.passed and partial.quality.reasons
    good = tmp_path / "chip.json"
    good.write_text("a good file")
    written = caught.value.save(good)
    assert written.name == "chip.failed.json" and good.read_text() == "a good file"
    assert not Calibration.load(written).quality.passed


# ----------------------------------------------------------------------------- the full matrix (slow)
def layout_crosstalk(top, strength=0.01, length_um=60.0, seed=0):
    """X from heater positions (a lab-like layout: θ between the MZI's couplers, φ before, γ after)."""
    lab = LabChip(top, seed=seed, xt_strength=strength, xt_length_um=length_um)
    return lab.xt, lab.positions


@pytest.mark.slow
@pytest.mark.parametrize("n", [6, 8])
@pytest.mark.parametrize("alpha,v_max,source,coherent", [
    (0.1, 12.0, True, True), (0.33, 5.0, False, False), (1.0, 8.0, True, False), (3.0, 6.0, False, True),
    (0.33, 10.0, True, True), (1.0, 5.0, False, False), (3.0, 12.0, True, False), (0.1, 10.0, False, True),
])
def test_virtual_chips_across_heater_laws_and_benches(n, alpha, v_max, source, coherent):
    top = circuits.rectangular(n)
    xt, positions = layout_crosstalk(top, seed=n)
    truth = replace(AsBuilt.random(top, seed=9000 + n, delta_sigma=0.03, alpha=alpha, alpha_spread=0.05,
                                   beta_sigma=0.003 * alpha, tap_spread=0.05), crosstalk=xt)
    chip = CountingChip(VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=9000 + n, max_voltage=v_max,
                                    min_voltage=0.0, output_side_source=source, coherent_readout=coherent))
    cal = calibrate(chip, chip_map=positions, progress=False, seed=n)
    assert within_limits(chip)
    up_to = cal.quality.up_to_output_phases
    scores = haar_scores(cal, chip._chip.unitary, n, up_to_phases=up_to)
    print(f"n={n} α={alpha} {v_max} V source={source} coherent={coherent}: F {scores.round(4)}; {cal.quality.summary()}")
    assert scores.min() >= 0.99


@pytest.mark.slow
def test_topology_mismatch_and_dark_taps_fail_the_verdict():
    tri = circuits.triangular(4)
    chip = VirtualChip(tri, errors=AsBuilt.random(tri, seed=77, alpha=0.8), noise=Noise.realistic(), seed=77,
                       max_voltage=8.0, min_voltage=0.0)
    with pytest.raises(CalibrationQualityError):
        calibrate(chip, topology=circuits.rectangular(4), progress=False)
    rect = circuits.rectangular(6)
    h = rect.n_shifters
    truth = AsBuilt.random(rect, seed=78, alpha=0.8).with_faults(dark_taps=range(0, h, 2))
    dark = VirtualChip(rect, errors=truth, noise=Noise.realistic(), seed=78, max_voltage=8.0, min_voltage=0.0)
    with pytest.raises(CalibrationQualityError):
        calibrate(dark, progress=False)


def test_bench_counts_the_tap_readings_at_the_camera_saturation():
    top = circuits.rectangular(4)
    noise = replace(Noise.realistic(), full_scale_mw=0.02)
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=41), noise=noise, seed=41)
    bench = Bench(chip, top.n, top.n_shifters)
    assert bench.caps.camera_saturation_mw == pytest.approx(0.02)
    x = np.eye(top.n, dtype=complex)
    taps = np.concatenate([bench.measure(np.full(top.n_shifters, v), x, taps="forward")["taps"] for v in (0.0, 3.0)])
    assert bench.tap_readings == taps.size
    assert bench.saturated_readings == np.count_nonzero(taps >= 0.02 * (1 - 1e-9)) > 0


def test_a_saturating_camera_is_named_in_the_verdict():
    """Clipped tap readings are counted and the verdict lists the camera as degraded, never silently."""
    top = circuits.rectangular(4)
    noise = replace(Noise.realistic(), full_scale_mw=0.05)
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=43, delta_sigma=0.03), noise=noise, seed=43)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(chip, progress=False, strict=False, seed=43)
    camera = cal.quality.steps["camera"]
    assert camera["saturated_fraction"] > 1e-3
    assert any("camera saturated" in d and "0.05 mW" in d for d in cal.quality.degraded)
    assert "camera saturated" in cal.quality.summary()
    assert Calibration.from_dict(cal.to_dict()).quality.degraded == cal.quality.degraded
