"""The raw-measurement archive: round trip, refit offline, resume equal to an uninterrupted run, and an
archive that survives SIGKILL mid-write. The end-to-end run over the emulator, killed and resumed after
an emulator restart, is the slow test at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tapmesh import circuits
from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip, calibrate
from tapmesh.calibration.archive import Archive, ArchiveError, ArchiveExhaustedError, ReplayMismatchError
from tapmesh.calibration.procedure import refit
from tapmesh.calibration.replay import ReplayChip

# a deliberately short run (8 points, 1 frame, no crosstalk step on a chip with crosstalk): these tests are
# about the archive, not the calibration, whose verdict fails; strict=False returns it anyway
OPTIONS = dict(steps=("phase_voltage", "couplers"), sweep_points=8, repeat_frames=1, progress=False, seed=3,
               strict=False)
FITTED = ("phase_offsets", "alpha", "delta", "tap_efficiency", "tap_offset")


def chip(noise=None):
    mesh = circuits.rectangular(4)
    return VirtualChip(mesh, errors=AsBuilt.random(mesh, seed=2, crosstalk=0.01), noise=noise or Noise.none(), seed=2)


def same_fit(a: Calibration, b: Calibration) -> None:
    for name in FITTED:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.n_measurements == b.n_measurements and a.dead_heaters == b.dead_heaters


class Interrupted(Exception):
    pass


class Dying:
    """A chip whose bench dies at the ``after``-th tap frame (the process is killed there)."""

    def __init__(self, inner, after: int):
        self.inner, self.after, self.frames = inner, after, 0
        self.topology = inner.topology

    n_modes = property(lambda self: self.inner.n_modes)
    n_heaters = property(lambda self: self.inner.n_heaters)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read_taps(self, direction="forward"):
        self.frames += 1
        if self.frames > self.after:
            raise Interrupted
        return self.inner.read_taps(direction)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("archive") / "run.h5"
    cal = calibrate(chip(Noise.realistic()), archive=path, **OPTIONS)
    return path, cal


def test_archive_round_trip_and_refit(recorded):
    path, cal = recorded
    assert cal.info["archive"]["path"] == str(path)
    with Archive.open(path) as archive:
        assert archive.n_calls == cal.info["archive"]["calls"]
        ds = archive.to_xarray()
        assert ds.taps.shape == (ds.sizes["frame"], 16) and set(ds.direction.values) == {"forward", "backward"}
        assert ds.voltages.shape[1] == 16 and ds.step.values.min() >= 0
        assert archive.n_readings == cal.n_measurements
    again = refit(path)  # no chip: the fits re-run on the recorded readings
    same_fit(again, cal)
    saved = cal.save(path.with_suffix(".json"))
    assert Calibration.load(saved).info["archive"]["path"] == str(path)


def test_replay_checks_every_call(recorded):
    path, _ = recorded
    with pytest.raises(ReplayMismatchError, match="differ from the record"):
        calibrate(ReplayChip(Archive.open(path)), **{**OPTIONS, "seed": 4})  # other seed, other probe fields
    with pytest.raises(ArchiveError, match="exists"):
        calibrate(chip(), archive=path, **OPTIONS)  # append-only: never overwritten


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole = calibrate(chip(), archive=tmp_path / "whole.h5", **OPTIONS)
    part = tmp_path / "part.h5"
    with pytest.raises(Interrupted):
        calibrate(Dying(chip(), after=37), archive=part, **OPTIONS)
    with Archive.open(part) as archive:
        recorded = archive.n_calls
    with pytest.raises(ArchiveExhaustedError):
        refit(part)  # a cut-off run cannot be re-fitted without a chip
    resumed = calibrate(chip(), archive=part, resume=True, **OPTIONS)
    same_fit(resumed, whole)
    with Archive.open(part) as a, Archive.open(tmp_path / "whole.h5") as b:
        assert a.n_calls == b.n_calls > recorded  # nothing lost, nothing taken twice
        for table in ("settings", "injections", "taps", "outputs", "coherent"):
            np.testing.assert_array_equal(a.table(table), b.table(table), err_msg=table)


def test_resume_on_a_chip_whose_noise_cannot_be_rewound_says_so(tmp_path):
    from tapmesh.calibration.replay import ResumeNoiseWarning

    part = tmp_path / "part.h5"
    with pytest.raises(Interrupted):
        calibrate(Dying(chip(Noise.realistic()), after=37), archive=part, **OPTIONS)
    with pytest.warns(ResumeNoiseWarning, match="keyed_noise=True"):
        calibrate(chip(Noise.realistic()), archive=part, resume=True, **OPTIONS)


@pytest.mark.slow
def test_resume_on_a_noisy_chip_with_keyed_noise_equals_an_uninterrupted_run(tmp_path):
    def keyed():
        mesh = circuits.rectangular(4)
        return VirtualChip(mesh, errors=AsBuilt.random(mesh, seed=2, crosstalk=0.01), noise=Noise.realistic(), seed=2,
                           keyed_noise=True)

    whole = calibrate(keyed(), archive=tmp_path / "whole.h5", **OPTIONS)
    with pytest.raises(Interrupted):
        calibrate(Dying(keyed(), after=37), archive=tmp_path / "part.h5", **OPTIONS)
    same_fit(calibrate(keyed(), archive=tmp_path / "part.h5", resume=True, **OPTIONS), whole)  # frame noise in step
    with Archive.open(tmp_path / "part.h5") as a, Archive.open(tmp_path / "whole.h5") as b:
        for table in ("settings", "injections", "taps", "outputs", "coherent"):
            np.testing.assert_array_equal(a.table(table), b.table(table), err_msg=table)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from tapmesh.calibration.archive import Archive
    archive = Archive.create(sys.argv[1], 4, 16, {"test": True})
    print("started", flush=True)
    i = 0
    while True:
        archive.append("set_voltages", rows=np.full((1, 16), float(i)))
        archive.append("read_taps", arg=0, rows=np.full((3, 16), float(i)), frame_index=3 * i)
        i += 1
""")


def test_archive_survives_sigkill_mid_write(tmp_path):
    path = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(float(np.random.default_rng().uniform(0.05, 1.0)))  # at a random record, mid-write or not
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Archive.open(path, "a") as archive:
        n = archive.n_calls
        assert n >= 2
        for i in range(n):
            record = archive.call(i)
            assert record["op"] == ("set_voltages", "read_taps")[i % 2]
            assert np.all(record["rows"] == i // 2)
        archive.append("set_voltages", rows=np.zeros((1, 16)))  # and it goes on appending
    with Archive.open(path) as archive:
        assert archive.n_calls == n + 1 and len(archive.table("settings")) == (n + 1) // 2 + 1  # ⌈n/2⌉ + 1


# ============================================================================ end to end over the emulator
RUN = textwrap.dedent("""
    import sys
    from tapmesh.bench import BenchChip
    from tapmesh.calibration import calibrate

    class Announcing(BenchChip):
        def read_taps(self, direction="forward"):
            out = super().read_taps(direction)
            print("frame", self.frame_index, flush=True)
            return out

    calibrate(Announcing(sys.argv[1]), archive=sys.argv[2], resume=sys.argv[3] == "resume",
              steps=("phase_voltage", "couplers"), sweep_points=8, repeat_frames=1, progress=False, seed=3,
              strict=False)
    print("done", flush=True)
""")


def start_emulator(port: int, config: Path, chip_map: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapmesh", "bench-emulator", "--port", str(port), "--n", "4", "--seed", "3",
         "--chip-map", str(chip_map), "--write-config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    assert "listening on" in line, line + proc.stdout.read()
    return proc


@pytest.mark.slow
def test_killed_calibration_resumes_after_emulator_restart(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chip_map = Path(__file__).parent / "data" / "chip_map_rect4.json"
    config, whole, part = tmp_path / "bench.toml", tmp_path / "whole.h5", tmp_path / "part.h5"

    def run(archive, mode):
        return subprocess.Popen([sys.executable, "-c", RUN, str(config), str(archive), mode],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    emulator = start_emulator(port, config, chip_map)
    try:
        reference = run(whole, "new")
        assert "done" in reference.communicate(timeout=900)[0]
        kill_at = int(np.random.default_rng().integers(10, 200))  # a random frame
        killed = run(part, "new")
        for line in killed.stdout:
            if line.startswith("frame") and int(line.split()[1]) >= kill_at:
                os.kill(killed.pid, signal.SIGKILL)
                break
        killed.wait()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    emulator = start_emulator(port, config, chip_map)  # the bench restarted: a new process, its state lost
    try:
        resumed = run(part, "resume")
        output = resumed.communicate(timeout=900)[0]
        assert "done" in output, output[-3000:]
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    with Archive.open(whole) as a, Archive.open(part) as b:
        assert a.n_calls == b.n_calls, f"killed at frame {kill_at}"
        for table in ("settings", "injections", "taps", "outputs", "coherent"):
            np.testing.assert_array_equal(a.table(table), b.table(table), err_msg=f"{table}, killed at frame {kill_at}")
    same_fit(refit(whole), refit(part))
