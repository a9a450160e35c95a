"""The bench-time model: every Chip operation charged at the bench's declared costs, per step."""

import json
import warnings

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.calibration import (
    AsBuilt,
    BenchCosts,
    Calibration,
    Capabilities,
    Noise,
    VirtualChip,
    calibrate,
)
from tapmesh.calibration.bench_time import BenchClock, ClockedChip

COSTS = BenchCosts(settle_s=0.01, frame_s=0.02, output_read_s=0.005, coherent_read_s=0.04,
                   direction_switch_s=0.5, inject_s=0.001)


class DeclaringChip:
    """A VirtualChip that declares its bench's capabilities (as a lab driver would)."""

    def __init__(self, chip, capabilities):
        self._chip, self.capabilities = chip, capabilities

    def __getattr__(self, name):
        return getattr(self._chip, name)


def test_each_operation_is_charged_once_at_its_cost():
    top = circuits.rectangular(4)
    clock = BenchClock(COSTS, step="a")
    chip = ClockedChip(VirtualChip(top, seed=4801), clock)
    v = np.full(top.n_shifters, 1.0)
    chip.set_voltages(v)
    chip.set_voltages(v)            # same setting: the bench does not wait again
    chip.inject(np.eye(4, dtype=complex)[:3], "input")
    chip.read_taps("forward")       # 3 fields: 3 frames
    clock.step = "b"
    chip.inject(np.eye(4, dtype=complex)[0], "output")  # one field, from the other side
    chip.read_outputs_coherent()
    chip.read_outputs()
    assert clock.counts["a"] == {"settle": 1, "inject": 3, "frames": 3}
    assert clock.step_seconds()["a"] == pytest.approx(0.01 + 3 * 0.001 + 3 * 0.02)
    assert clock.step_seconds()["b"] == pytest.approx(0.5 + 0.001 + 0.04 + 0.005)
    assert clock.total_seconds == pytest.approx(sum(clock.step_seconds().values()))
    with pytest.raises(TypeError, match="costs"):
        BenchClock(costs={"frame_s": 0.02})


def test_calibrate_reports_bench_seconds_per_step_at_the_declared_costs(tmp_path):
    top = circuits.rectangular(4)
    chip = VirtualChip(top, errors=AsBuilt.random(top, seed=4811, delta_sigma=0.03), noise=Noise.realistic(), seed=4812)
    slow = Capabilities(costs=BenchCosts(frame_s=0.1, settle_s=0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(DeclaringChip(chip, slow), steps=("phase_voltage", "couplers"), seed=4813, progress=False)
    bench = cal.info["bench_seconds"]
    assert set(bench) == {"camera", "discovery", "phase_voltage", "total"}
    assert bench["total"] == pytest.approx(bench["camera"] + bench["discovery"] + bench["phase_voltage"]) == cal.bench_seconds
    counts = cal.info["bench_time"]["counts"]
    frames = sum(c.get("frames", 0) for c in counts.values())
    settles = sum(c.get("settle", 0) for c in counts.values())
    coherent = sum(c.get("coherent_reads", 0) for c in counts.values())
    assert frames + coherent == cal.n_measurements  # every counted frame is charged
    assert settles < frames  # settings share one settle over their batch of frames
    switches = sum(c.get("direction_switch", 0) for c in counts.values())
    expected = 0.1 * frames + 0.05 * settles + 0.04 * coherent + 0.5 * switches
    assert cal.bench_seconds == pytest.approx(expected)
    assert cal.summary()["bench_seconds"] == pytest.approx(expected)
    loaded = Calibration.load(cal.save(tmp_path / "c.json"))
    assert loaded.bench_seconds == pytest.approx(expected)
    assert json.loads((tmp_path / "c.json").read_text())["calibration"]["info"]["bench_seconds"]["total"] == pytest.approx(expected)
