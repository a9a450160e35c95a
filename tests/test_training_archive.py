"""The training archive: every chip call of ``train`` recorded per physical chip, a resume after an
interruption at a random chip call equal to the uninterrupted run (with frame-keyed chip noise), named
errors for a resume that cannot be one, and ``tapmesh train --archive``. The SIGKILL variant is slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip
from tapmesh.calibration.archive import Archive, ArchiveError
from tapmesh.training import PhotonicNetwork, TrainingArchive, TrainingArgumentError, data, load_training_archive, train

MESH = circuits.rectangular(4)
DATA = data.moons(n_samples=40)  # 30 training samples, 10 test
CAL = Calibration.nominal(MESH, tap_fraction=0.02)
OPTIONS = dict(method="insitu", epochs=2, batch_size=10, seed=3, progress=False)


def chip(seed: int, keyed: bool = True) -> VirtualChip:
    return VirtualChip(MESH, AsBuilt.ideal(MESH, tap_fraction=0.02), Noise.realistic(), seed=seed, keyed_noise=keyed)


def network(a, b) -> PhotonicNetwork:
    """Three layers on two chips: ``a`` realizes layers 0 and 2 (a shared chip is one archive group)."""
    return PhotonicNetwork(MESH, 3, 2, chips=(a, b, a), calibrations=(CAL,) * 3, activation="abs2",
                           encoding="amplitude_phase")


class Interrupted(Exception):
    pass


class Dying:
    """A chip that raises at its ``at``-th call of any kind (the process dies there)."""

    def __init__(self, inner, at: int):
        self.inner, self.at, self.calls = inner, at, 0

    n_modes = property(lambda self: self.inner.n_modes)
    n_heaters = property(lambda self: self.inner.n_heaters)

    def __getattr__(self, name):
        value = getattr(self.inner, name)
        if name in ("set_voltages", "inject", "read_taps", "read_outputs", "read_outputs_coherent"):
            def call(*args, **kwargs):
                self.calls += 1
                if self.calls == self.at:
                    raise Interrupted(f"call {self.at}")
                return value(*args, **kwargs)
            return call
        return value


def same_run(a, b) -> None:
    for pa, pb in zip(a.phases, b.phases):
        np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), rtol=0, atol=1e-12)
    ha, hb = a.history.as_dict(), b.history.as_dict()
    ha.pop("wall_time"), hb.pop("wall_time")
    assert ha == hb


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted archived run: (result, archive path, its chips)."""
    path = tmp_path_factory.mktemp("train") / "whole.h5"
    a, b = chip(1), chip(2)
    return train(network(a, b), DATA, archive=path, **OPTIONS), path, (a, b)


def test_keyed_noise_depends_only_on_the_frame_tag():
    first, fresh = chip(5), chip(5)
    x = np.full((3, 4), 0.5 + 0.1j)
    for c in (first, fresh):
        c.inject(x)
    first.read_taps(), first.read_outputs()  # frames 0..5 taken: the fresh chip jumps there
    fresh.frame_index = first.frame_index
    np.testing.assert_array_equal(first.read_taps(), fresh.read_taps())
    np.testing.assert_array_equal(first.read_outputs_coherent(), fresh.read_outputs_coherent())
    assert first.frame_index == fresh.frame_index == 12
    assert not hasattr(chip(5, keyed=False), "frame_index")  # the default: one stream, as before


def test_every_chip_call_is_recorded_per_physical_chip(whole):
    result, path, (a, b) = whole
    assert result.archive["path"] == str(path)
    with TrainingArchive.open(path) as archive:
        assert archive.meta["layer_chips"] == [0, 1, 0] and len(archive.chips) == 2
        assert archive.meta["options"]["epochs"] == 2 and archive.meta["options"]["method"] == "insitu"
        assert archive.n_readings == [a.measurements, b.measurements] == result.archive["readings"]
        assert archive.n_calls == result.archive["calls"]
        settings = [len(g.table("settings")) for g in archive.chips]
    loaded = load_training_archive(path)
    ds = loaded["chips"]["chip0"]
    assert json.loads(ds.attrs["layers"]) == [0, 2] and ds.sizes["heater"] == MESH.n_shifters
    assert ds.sizes["setting"] == settings[0] and ds.sizes["frame"] > 0
    with pytest.raises(ArchiveError, match="training archive"):
        Archive.open(path)  # calibrate's reader refuses it by name


def test_resume_after_an_interruption_at_a_random_call_equals_the_uninterrupted_run(whole, tmp_path):
    reference, whole_path, _ = whole
    at = int(np.random.default_rng().integers(1, reference.archive["calls"][0] + 1))  # a call of chip a
    part = tmp_path / "part.h5"
    with pytest.raises(Interrupted):
        train(network(Dying(chip(1), at), chip(2)), DATA, archive=part, **OPTIONS)
    resumed = train(network(chip(1), chip(2)), DATA, archive=part, resume=True, **OPTIONS)
    same_run(resumed, reference)
    assert resumed.archive["resumed_at_calls"][0] == at - 1, f"interrupted at call {at}"
    with TrainingArchive.open(part) as p, TrainingArchive.open(whole_path) as w:
        assert p.n_calls == w.n_calls  # nothing lost, nothing taken twice
        for gp, gw in zip(p.chips, w.chips):
            for table in ("settings", "injections", "taps", "outputs", "coherent"):
                np.testing.assert_array_equal(gp.table(table), gw.table(table), err_msg=f"{table} (call {at})")


def test_a_resume_that_cannot_be_one_is_a_named_error(whole, tmp_path):
    _, path, _ = whole
    with pytest.raises(ArchiveError, match=r"other options \(epochs\)"):
        train(network(chip(1), chip(2)), DATA, archive=path, resume=True, **{**OPTIONS, "epochs": 3})
    one = chip(1)
    with pytest.raises(ArchiveError, match="layer_chips"):
        train(network(one, one), DATA, archive=path, resume=True, **OPTIONS)  # one chip, not two
    with pytest.raises(ArchiveError, match="no training archive"):
        train(network(chip(1), chip(2)), DATA, archive=tmp_path / "none.h5", resume=True, **OPTIONS)
    with pytest.raises(ArchiveError, match="exists"):
        train(network(chip(1), chip(2)), DATA, archive=path, **OPTIONS)  # append-only
    with pytest.raises(TrainingArgumentError, match="needs archive"):
        train(network(chip(1), chip(2)), DATA, resume=True, **OPTIONS)
    model = PhotonicNetwork(MESH, 1, 2)
    with pytest.raises(TrainingArgumentError, match="network with chips"):
        train(model, DATA, archive=tmp_path / "model.h5", **{**OPTIONS, "method": "autodiff"})
    with pytest.raises(TrainingArgumentError, match="schedule"):
        train(network(chip(1), chip(2)), DATA, archive=tmp_path / "bad.h5", **{**OPTIONS, "schedule": "linear"})
    assert not (tmp_path / "model.h5").exists() and not (tmp_path / "bad.h5").exists()  # refused before any work


def test_cli_train_archive_is_named_in_training_json(tmp_path):
    from typer.testing import CliRunner

    from tapmesh.cli import app
    from tapmesh.stages import FABRICATION_DEFAULTS

    (tmp_path / "fabrication.json").write_text(json.dumps(
        {"seed": 0, "n": 4, "kind": "rectangular", "noise": "none", **FABRICATION_DEFAULTS}))
    CAL.save(tmp_path / "calibration.json")
    archive = tmp_path / "training_archive.h5"
    args = ["train", "--out", str(tmp_path), "--layers", "1", "--epochs", "1", "--no-png"]
    refused = CliRunner().invoke(app, [*args, "--archive", str(archive), "--resume"])
    assert refused.exit_code == 2 and "no training archive" in refused.output and not archive.exists()
    result = CliRunner().invoke(app, [*args, "--archive", str(archive)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "training.json").read_text())
    assert summary["archive"]["path"] == str(archive) and sum(summary["archive"]["readings"]) > 0
    again = CliRunner().invoke(app, [*args, "--archive", str(archive)])
    assert again.exit_code == 2 and "--resume" in again.output  # refused before any work


KILLED = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import test_training_archive as t
    from tapmesh.training import train
    a = t.chip(1)
    read = a.read_taps
    def announce(*args, **kwargs):  # the parent kills this process at a random frame
        print("frame", a.frame_index, flush=True)
        return read(*args, **kwargs)
    a.read_taps = announce
    train(t.network(a, t.chip(2)), t.DATA, archive=sys.argv[1], **{**t.OPTIONS, "epochs": 4})
""")


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_to_the_uninterrupted_run(tmp_path):
    reference = train(network(chip(1), chip(2)), DATA, **{**OPTIONS, "epochs": 4})
    path = tmp_path / "killed.h5"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path), os.path.dirname(__file__)],
                            stdout=subprocess.PIPE, text=True, env=env)
    target = int(np.random.default_rng().integers(50, 400))
    for line in proc.stdout:
        if int(line.split()[1]) >= target:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.1)
    resumed = train(network(chip(1), chip(2)), DATA, archive=path, resume=True, **{**OPTIONS, "epochs": 4})
    same_run(resumed, reference)
    assert sum(resumed.archive["resumed_at_calls"]) > 0, f"killed at frame {target}"
