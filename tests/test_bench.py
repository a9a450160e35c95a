"""The bench driver, its config checks, the SCPI emulator over a real socket, and every fault kind.

The emulator runs as ``tapmesh bench-emulator`` in a subprocess on a free local port (one per module);
pyvisa-sim (tests/data/bench_sim.yaml) covers the driver's commands one by one.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tapmesh.bench import (
    BenchChip,
    BenchConfigError,
    BenchConnectionError,
    BenchInstrumentError,
    BenchProtocolError,
    BenchTimeoutError,
    BenchUnreachableError,
    HeaterTripError,
    load_config,
)
from tapmesh.bench.config import ChipGeometry, write_config
from tapmesh.bench.emulator import CameraModel, camera_layout

DATA = Path(__file__).parent / "data"
CHIP_MAP = DATA / "chip_map_rect4.json"
SIM = str(DATA / "bench_sim.yaml") + "@sim"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tables(address: str, **heaters) -> dict:
    """A config for the n = 4 chip map: pads mapped to channels 1..16 in heater order."""
    geometry = ChipGeometry.load(CHIP_MAP)
    transform, _ = camera_layout(geometry, CameraModel())
    channels = {pad: h + 1 for pad, h in geometry.pads.items()}
    return {
        "chip": {"map": "chip_map.json", "n": 4, "kind": "rectangular"},
        "instruments": {role: address for role in ("source", "light", "meter", "camera")} | {"timeout_ms": 500, "retries": 1},
        "heaters": {"drive": "voltage", "limit": 6.0, "min": 0.0, "max": 5.0, "batch_commands": False,
                    "channels": channels} | heaters,
        "camera": {"transform": [list(r) for r in transform], "window_px": 2, "mw_per_count": 4e-6},
    }


def write(tmp_path: Path, t: dict) -> Path:
    shutil.copy(CHIP_MAP, tmp_path / "chip_map.json")
    return write_config(tmp_path / "bench.toml", t)


# ============================================================================ config: bad input, before any voltage
def test_config_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, tables("TCPIP::127.0.0.1::1::SOCKET")))
    assert cfg.geometry.n_heaters == 16 and sorted(cfg.channels) == list(range(1, 17))
    assert cfg.capabilities.drive_max.shape == (16,)


@pytest.mark.parametrize("change, match", [
    (lambda t: t["heaters"]["channels"].update(pad_nowhere=17), "pads the chip map lacks"),
    (lambda t: t["heaters"]["channels"].pop("pad_e3"), "maps no source channel"),
    (lambda t: t["heaters"].update(max=7.5), "wider than the bench limit"),
    (lambda t: t["heaters"]["channels"].update(pad_e1=2), "two pads to one source channel"),
    (lambda t: t["camera"].update(window_px=9), "overlap|outside"),
])
def test_bad_config_is_a_named_error(tmp_path, change, match):
    t = tables(f"TCPIP::127.0.0.1::{free_port()}::SOCKET")
    change(t)
    path = write(tmp_path, t)
    with pytest.raises(BenchConfigError, match=match):
        BenchChip(path)  # camera windows are checked on connect: that case reaches no instrument either


def test_unreachable_address_and_wider_drive_limit(tmp_path):
    path = write(tmp_path, tables(f"TCPIP::127.0.0.1::{free_port()}::SOCKET"))
    with pytest.raises(BenchUnreachableError, match="cannot be reached"):
        BenchChip(path)
    with pytest.raises(BenchConfigError, match="wider than the config"):
        BenchChip(path, drive_max=5.5)


def test_cli_reports_bad_config_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from tapmesh.cli import app

    t = tables("TCPIP::127.0.0.1::1::SOCKET")
    t["heaters"]["channels"]["pad_ghost"] = 40
    path = write(tmp_path, t)
    result = CliRunner().invoke(app, ["calibrate", "--driver", "scpi", "--config", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "BenchConfigError" in lines[0] and "pad_ghost" in lines[0]


# ============================================================================ pyvisa-sim: the driver's commands
def sim_chip(tmp_path, address="TCPIP::sim-bench::5025::SOCKET", **heaters):
    return BenchChip(write(tmp_path, tables(address, **heaters)), visa_library=SIM, dark_frames=0)


def test_sim_sets_each_channel_of_the_map(tmp_path):
    chip = sim_chip(tmp_path)
    assert chip.identity["source"].startswith("tapmesh,pyvisa-sim")
    v = np.linspace(0.1, 4.0, 16)
    chip.set_voltages(v)
    r = chip._role["source"].resource
    read = [float(r.query(f"SOUR:VOLT:CHAN? {ch}")) for ch in chip.config.channels]
    np.testing.assert_allclose(read, v, atol=1e-6)


def test_sim_source_range_narrower_than_config_fails_before_any_voltage(tmp_path):
    with pytest.raises(BenchConfigError, match="wider than the source's range"):
        sim_chip(tmp_path, max=5.5)


def test_sim_refused_setting_and_trip_are_named(tmp_path):
    chip = sim_chip(tmp_path)
    with pytest.raises(BenchInstrumentError, match="Command error"):
        chip.set_voltages(np.full(16, 4.75))  # within the config, beyond what this source accepts
    tripped = sim_chip(tmp_path, address="TCPIP::sim-tripped::5025::SOCKET")
    with pytest.raises(HeaterTripError) as info:
        tripped.set_voltages(np.zeros(16))
    assert info.value.channels == (5,) and info.value.heaters == (4,)


# ============================================================================ the emulator, over a real socket
@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """``tapmesh bench-emulator`` in a subprocess; yields (config path, VISA address)."""
    folder = tmp_path_factory.mktemp("bench")
    config = folder / "bench.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapmesh", "bench-emulator", "--port", str(free_port()), "--n", "4", "--seed", "3",
         "--chip-map", str(CHIP_MAP), "--write-config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        proc.kill()
        pytest.fail(f"emulator did not start: {line}{proc.stdout.read()}")
    yield config, match.group(1)
    proc.terminate()
    proc.wait(timeout=30)


def arm(address: str, fault: str) -> None:
    """Arm an emulator fault through its SCPI debug command (on a connection of its own)."""
    import pyvisa

    r = pyvisa.ResourceManager("@py").open_resource(address, read_termination="\n", write_termination="\n")
    r.write(f"DIAG:FAULT {fault}")
    assert int(r.query("DIAG:FAULT:COUN?")) >= 1  # debug queries fire no fault: this one only waits for the arming
    r.close()


def fast(config: Path, tmp_path: Path, timeout_ms=400, retries=2) -> Path:
    text = config.read_text()
    text = re.sub(r"timeout_ms = \d+", f"timeout_ms = {timeout_ms}", text)
    text = re.sub(r"retries = \d+", f"retries = {retries}", text)
    shutil.copy(config.with_name("bench_chip_map.json"), tmp_path / "bench_chip_map.json")
    path = tmp_path / "fast.toml"
    path.write_text(text)
    return path


def test_emulator_reads_the_chip_through_its_camera(emulator):
    from tapmesh.bench.serve import virtual_chip

    config, _ = emulator
    chip = BenchChip(config)
    truth = virtual_chip(4, "rectangular", 3)  # the same as-built chip (tests may read the truth)
    v = np.linspace(0.5, 3.5, 16)
    x = np.array([[1, 0.5j, 0, 0.3], [0, 1, 1, 0]], dtype=complex)
    chip.set_voltages(v)
    chip.inject(x)
    taps, outputs = chip.read_taps("forward"), chip.read_outputs()
    truth.set_voltages(v)
    truth.inject(x)
    true_taps, true_out = truth.read_taps("forward"), truth.read_outputs()
    bright = true_taps > 2e-3
    ratio = taps[bright] / true_taps[bright]  # the window holds ~97.5 % of a spot of σ = 1 px
    assert 0.95 < np.median(ratio) < 1.0 and np.all(np.abs(ratio / np.median(ratio) - 1) < 0.05)
    np.testing.assert_allclose(outputs, true_out, rtol=0.03, atol=1e-3)
    assert np.abs(chip.read_taps("backward")).max() < 5 * chip.capabilities.tap_noise_mw + 1e-6
    chip.inject(x, side="output")
    truth.inject(x, side="output")
    np.testing.assert_allclose(chip.read_outputs_coherent(), truth.read_outputs_coherent(), atol=0.03)
    # frame tags key the noise: the same tag gives the same frame, the next one another
    chip.inject(x)
    chip.frame_index = 100
    a = chip.read_taps()
    chip.frame_index = 100
    assert np.array_equal(a, chip.read_taps()) and not np.array_equal(a, chip.read_taps())
    chip.close()


@pytest.mark.parametrize("kind, counter", [("drop", "connection"), ("stall", "timeout"), ("garble", "protocol")])
def test_fault_survived_by_retry(emulator, tmp_path, kind, counter):
    config, address = emulator
    chip = BenchChip(fast(config, tmp_path))
    chip.set_voltages(np.full(16, 1.0))
    chip.inject(np.eye(4, dtype=complex)[:2])
    chip.frame_index = 7
    reference = chip.read_taps()
    arm(address, kind)
    chip.frame_index = 7
    again = chip.read_taps()  # the fault hits this query; a retry on a fresh connection answers it
    assert chip.retried[counter] == 1
    assert np.array_equal(again, reference)  # same tag, same frame: a survived fault changes nothing
    chip.close()


@pytest.mark.parametrize("kind, error", [("drop", BenchConnectionError), ("stall", BenchTimeoutError),
                                         ("garble", BenchProtocolError)])
def test_persistent_fault_is_a_named_error(emulator, tmp_path, kind, error):
    config, address = emulator
    chip = BenchChip(fast(config, tmp_path, timeout_ms=300, retries=1))
    chip.inject(np.eye(4, dtype=complex)[:1])
    for _ in range(2):  # one more than the retries
        arm(address, kind)
    with pytest.raises(error, match=f"on each of 2 tries"):
        chip.read_outputs()
    chip.close()


def test_tripped_heater_is_never_retried(emulator, tmp_path):
    config, address = emulator
    chip = BenchChip(fast(config, tmp_path))
    channel = int(chip.config.channels[6])
    arm(address, f"trip,{channel}")
    with pytest.raises(HeaterTripError) as info:
        chip.set_voltages(np.full(16, 2.0))
    assert info.value.heaters == (6,) and sum(chip.retried.values()) == 0
    chip._role["source"].resource.write("OUTP:TRIP:CLE")
    chip.set_voltages(np.full(16, 2.0))  # cleared: the bench works again
    chip.close()


def test_cli_resume_needs_an_archive(tmp_path):
    from typer.testing import CliRunner

    from tapmesh.cli import app

    result = CliRunner().invoke(app, ["calibrate", "--resume", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--resume needs --archive" in result.output


class RenderedCamera:
    """A camera of one's own (a vendor SDK, say) behind the Camera protocol: here the emulator's renderer."""

    def __init__(self, powers):
        from tapmesh.bench.emulator import SpotRenderer

        self.renderer = SpotRenderer(ChipGeometry.load(CHIP_MAP), CameraModel(), seed=5)
        self.powers, self.tags = powers, []

    @property
    def shape(self):
        return self.renderer.shape

    def acquire(self, count, tag):
        self.tags.append(tag)
        return self.renderer.render(np.repeat(self.powers[None], count, axis=0), tag)


def test_camera_protocol_and_windowed_readout(tmp_path):
    from tapmesh.bench import Camera

    camera = RenderedCamera(np.zeros(32))
    assert isinstance(camera, Camera)
    chip = BenchChip(write(tmp_path, tables("TCPIP::sim-bench::5025::SOCKET", max=4.5)), visa_library=SIM,
                     dark_frames=6, camera=camera)
    assert camera.tags == [-6]  # dark frames, shutter closed (LIGH OFF on the sim)
    assert chip._role["light"].resource.query("LIGH?") == "ON"
    noise = chip.capabilities.tap_noise_mw  # measured: 25 pixels of 2 counts read noise, 1/2.6e5 mW per count
    assert 0.5 * 10 / 2.6e5 < noise < 2 * 10 / 2.6e5
    powers = np.random.default_rng(0).uniform(0, 0.05, 32)  # forward gratings, then backward
    camera.powers = powers
    frames = camera.acquire(4, 0)
    readout = chip.readout
    readout.mw_per_count = 1 / 2.6e5
    for g, direction in enumerate(("forward", "backward")):
        taps = readout.taps(frames, direction).mean(0)
        np.testing.assert_allclose(taps, 0.975 * powers[16 * g : 16 * (g + 1)], rtol=0.02, atol=3 * noise)
