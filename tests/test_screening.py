"""Crosstalk screening (issue 13): the heater pairs that couple, measured on a chip given no map.

The lab bench of tests/lab_chip.py places its heaters by its own layout: pairs side by side that the mesh
grid does not list. The screening must find them from the chip alone, find none on a chip without
crosstalk, and the calibrated model must then predict what the chip delivers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip, calibrate
from tapmesh.calibration.crosstalk import neighbour_pairs
from tapmesh.calibration.quality import fidelity_up_to_output_phases
from tapmesh.calibration.screening import tap_powers

sys.path.insert(0, str(Path(__file__).parent))
from lab_chip import LabChip  # noqa: E402


def haar_mean(cal, chip, n, seed=5150, targets=5):
    scores = [fidelity_up_to_output_phases(u, chip.true_unitary(cal.voltages_for(u)))
              for u in (circuits.haar_unitary(n, seed=seed + s) for s in range(targets))]
    return np.array(scores)


def test_screening_model_matches_an_independent_bench():
    """tap_powers (the calibrated model the screening fits with) against the lab bench's own numpy physics."""
    top = circuits.rectangular(4)
    chip = LabChip(top, seed=3)
    cal = Calibration.nominal(top)
    cal.delta = chip.kappa - np.pi / 4
    cal.tap_fraction = chip.t
    rng = np.random.default_rng(4)
    v = rng.uniform(0, 3, chip.h)
    x = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    ours = tap_powers(cal, chip._phases(v), x)[0] * chip.t
    _, theirs = chip._propagate(v, x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)


def grid_set(top):
    return {tuple(p) for p in neighbour_pairs(top)}


@pytest.fixture(scope="module")
def lab_screened():
    top = circuits.rectangular(4)
    chip = LabChip(top, seed=41, alpha=1.2, v_max=9.0, xt_strength=0.03)
    cal = calibrate(chip, topology=top, progress=False, seed=41)
    return top, chip, cal


def test_screening_finds_the_pairs_the_grid_does_not_list(lab_screened, tmp_path):
    top, chip, cal = lab_screened
    info = cal.info["screening"]
    found = {tuple(p) for p in info["pairs"]}
    k2 = 2 * top.n_mzis
    # the truth's strongest couplings among θ/φ receivers that the grid leaves out (the test may read truth)
    unlisted = [(i, j) for i, j in zip(*np.nonzero(chip.xt)) if i < k2 and (i, j) not in grid_set(top)
                and chip.xt[i, j] > 0.2 * chip.xt.max()]
    assert unlisted, "the bench has no unlisted pairs: the test would prove nothing"
    missed = [p for p in unlisted if p not in found]
    print(f"screening: {len(found)} pairs found, {len(unlisted)} strong unlisted, missed {missed}; "
          f"{info['settings']} settings, {info['frames']} frames, z = {info['z']:.2f}")
    assert len(missed) <= len(unlisted) // 5
    # every pair it reports couples in truth (nothing flagged beyond the bench's thermal reach)
    assert all(chip.xt[i, j] > 0 for i, j in found)
    # the values it measured are the bench's (X beyond what the stages fitted, summed into the model)
    got = cal.crosstalk.values_at(unlisted)
    truth = np.array([chip.xt[p] for p in unlisted])
    assert np.median(np.abs(got / truth - 1)) < 0.3
    assert cal.info["frames"]["screening"] == info["frames"] > 0
    assert cal.info["bench_seconds"]["screening"] > 0
    assert "screening" in cal.quality.steps
    back = Calibration.load(cal.save(tmp_path / "screened.json"))  # the finding is persisted with the file
    assert back.info["screening"]["new_pairs"] == info["new_pairs"] and "screening" in back.quality.steps
    v = np.asarray(chip.frames_voltages)  # every setting, the screening's hard drives included
    assert np.all(v >= 0) and np.all(v <= chip.capabilities.drive_max)


def test_screening_drives_hard_within_a_total_power_limit():
    """A bench with a total heater power limit: the Bench refuses any setting beyond it (LimitError), so a
    calibration that completes never asked for one; the screening still runs and reports its drives."""
    top = circuits.rectangular(3)
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=44, alpha=0.6), noise=Noise.realistic(), seed=44,
                       max_voltage=8.0, min_voltage=0.0, max_total_power_mw=400.0, heater_resistance_ohm=500.0)
    cal = calibrate(chip, progress=False, seed=44, strict=False, steps=("phase_voltage", "couplers", "crosstalk"))
    assert cal.info["screening"]["settings"] > 0


def test_after_screening_the_chip_delivers_what_the_model_predicts(lab_screened):
    top, chip, cal = lab_screened
    scores = haar_mean(cal, chip, 4)
    q = cal.quality
    print(f"with screening: F on chip {scores.round(5)}; {q.summary()}")
    assert scores.min() >= 0.99
    assert abs(scores.mean() - q.predicted_fidelity) <= max(3 * q.fidelity_sigma, 0.003)


def test_a_chip_without_crosstalk_screens_no_pairs():
    top = circuits.rectangular(4)
    chip = LabChip(top, seed=42, alpha=0.8, v_max=10.0, xt_strength=0.0)
    cal = calibrate(chip, topology=top, progress=False, seed=42)
    info = cal.info["screening"]
    print(f"no crosstalk: {info['pairs']}, chi2 median {info['chi2_median']:.2f}")
    assert info["new_pairs"] == []  # no coupling found that the model did not hold
    # the pairs it corrected are the stages' small spurious values, brought back towards 0
    for (i, j), value in zip(info["pairs"], info["values"]):
        assert abs(cal.crosstalk[i, j]) < abs(cal.crosstalk[i, j] - value) + 1e-4


def test_screening_is_skipped_with_a_map_or_when_asked():
    top = circuits.rectangular(3)
    chip = LabChip(top, seed=43, alpha=1.0, v_max=9.0)
    off = calibrate(chip, topology=top, progress=False, seed=43, screen_crosstalk=False)
    mapped = calibrate(LabChip(top, seed=43, alpha=1.0, v_max=9.0), topology=top, progress=False, seed=43,
                       chip_map=chip.positions)
    for cal in (off, mapped):
        assert "screening" not in cal.info and "screening" not in cal.info["frames"]


@pytest.mark.slow
@pytest.mark.parametrize("n", [6, 8])
def test_screening_at_depth_closes_the_gap_between_prediction_and_chip(n):
    """n = 6 and 8, forward-only: without screening the model misses the unlisted pairs; with it the chip
    delivers its prediction."""
    top = circuits.rectangular(n)
    results = {}
    for screen in (False, True):
        chip = LabChip(top, seed=50 + n, alpha=1.5, v_max=9.0, xt_strength=0.02)
        cal = calibrate(chip, topology=top, progress=False, seed=n, screen_crosstalk=screen, strict=False)
        results[screen] = (haar_mean(cal, chip, n), cal)
        print(f"n={n} screening={screen}: F {results[screen][0].round(4)} frames {cal.n_measurements}; "
              f"{cal.quality.summary()}")
    scores, cal = results[True]
    assert scores.min() >= 0.99
    assert abs(scores.mean() - cal.quality.predicted_fidelity) <= max(3 * cal.quality.fidelity_sigma, 0.005)
    assert scores.mean() >= results[False][0].mean()


@pytest.mark.slow
def test_group_testing_finds_the_pairs_with_heaters_driven_together(monkeypatch):
    """The group-testing path (random groups in 3 partitions, used past n = 32), forced at n = 8."""
    from tapmesh.calibration import screening

    monkeypatch.setattr(screening, "SINGLE_MAX", 0)
    top = circuits.rectangular(8)
    chip = LabChip(top, seed=58, alpha=1.5, v_max=9.0, xt_strength=0.02)
    cal = calibrate(chip, topology=top, progress=False, seed=3, strict=False)
    info = cal.info["screening"]
    assert info["designs"] == 3 and info["settings"] < 2 * chip.h
    found = {tuple(p) for p in info["pairs"]}
    k2 = 2 * top.n_mzis
    unlisted = {(int(i), int(j)) for i, j in zip(*np.nonzero(chip.xt)) if i < k2 and (i, j) not in grid_set(top)
                and chip.xt[i, j] > 0.2 * chip.xt.max()}
    print(f"groups: {info['settings']} settings, {len(unlisted & found)} of {len(unlisted)} unlisted found")
    assert len(unlisted & found) >= 0.9 * len(unlisted)
    assert all(chip.xt[p] > 0 for p in found)
    assert haar_mean(cal, chip, 8).min() >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("n,alpha,v_max,source,coherent", [(6, 1.0, 8.0, True, False), (8, 3.0, 6.0, False, True)])
def test_virtual_chips_with_layout_crosstalk_and_no_map(n, alpha, v_max, source, coherent):
    """Issue 13's matrix with truly no hints: crosstalk from layout positions, no chip_map: the screening finds
    the pairs, F ≥ 0.99 within the declared limits, and the prediction does not promise more than it gives."""
    from dataclasses import replace

    from test_anychip import CountingChip, haar_scores, layout_crosstalk, within_limits

    top = circuits.rectangular(n)
    xt, _ = layout_crosstalk(top, seed=n)
    truth = replace(AsBuilt.random(top, seed=9100 + n, delta_sigma=0.03, alpha=alpha, alpha_spread=0.05,
                                   beta_sigma=0.003 * alpha, tap_spread=0.05), crosstalk=xt)
    chip = CountingChip(VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=9100 + n, max_voltage=v_max,
                                    min_voltage=0.0, output_side_source=source, coherent_readout=coherent))
    cal = calibrate(chip, progress=False, seed=n)
    assert within_limits(chip)
    found = cal.info["screening"]["new_pairs"]
    assert found and all(xt[i, j] > 0 for i, j in found)
    scores = haar_scores(cal, chip._chip.unitary, n, up_to_phases=cal.quality.up_to_output_phases)
    print(f"n={n} α={alpha} no map: {len(found)} pairs found, F {scores.round(4)}; {cal.quality.summary()}")
    assert scores.min() >= 0.99
    assert cal.quality.fidelity_low <= scores.mean() + 0.002


def test_automatic_screening_skips_meshes_past_its_size_limit_and_says_so():
    from tapmesh.calibration import screening

    notes = []
    assert screening.automatic(screening.AUTO_MAX_HEATERS, mapped=False, progressive=True, notes=notes) and not notes
    assert not screening.automatic(4096, mapped=False, progressive=True, notes=notes)  # n = 64
    assert len(notes) == 1 and "screen_crosstalk=True" in notes[0] and "chip_map" in notes[0]
    assert not screening.automatic(64, mapped=True, progressive=True, notes=notes)
    assert not screening.automatic(64, mapped=False, progressive=False, notes=notes) and len(notes) == 1
