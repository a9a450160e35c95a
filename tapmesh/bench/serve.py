"""Start a bench emulator for a chip: the VirtualChip it stands for (fabricated from a seed as ``tapmesh
fabricate`` does), its pad → channel map, and the bench config (TOML) that reaches it.

``tapmesh bench-emulator`` calls :func:`run_emulator`; tests and benchmarks call :func:`make_bench` and
serve it in a thread or a subprocess. See docs/bench.md.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from tapmesh.bench.config import ChipGeometry, write_config
from tapmesh.bench.emulator import BenchServer, CameraModel, EmulatedBench, Fault, camera_layout

EMULATOR_LIMIT_V = 6.0
"""Safety limit of the emulated bench's heater wiring, V (the config's [heaters] limit)."""


def chip_geometry(n: int, kind: str, chip_map: str | Path | None = None) -> tuple[ChipGeometry, dict]:
    """The chip's geometry and its chip-map JSON: read from ``chip_map``, or laid out with
    :func:`tapmesh.pcells.chip` (a few seconds)."""
    if chip_map is not None:
        data = json.loads(Path(chip_map).read_text())
    else:
        from tapmesh import pcells

        data = pcells.chip_map(pcells.chip(n=n, kind=kind)).to_dict()
    geometry = ChipGeometry.from_dict(data)
    if (geometry.n, geometry.kind) != (n, kind):
        raise ValueError(f"--chip-map is a {geometry.kind} n={geometry.n} chip, not the {kind} n={n} asked for")
    return geometry, data


def virtual_chip(n: int, kind: str, seed: int):
    """The as-built chip the emulator stands for: ``tapmesh fabricate``'s defaults from ``seed``, no chip-level
    detector noise (the emulated camera and meters add theirs)."""
    from tapmesh import circuits
    from tapmesh.calibration import AsBuilt, Noise, VirtualChip
    from tapmesh.stages import FABRICATION_DEFAULTS

    topology = circuits.topology(n, kind)
    errors = AsBuilt.random(topology, seed=seed, **FABRICATION_DEFAULTS)
    return VirtualChip(topology, errors=errors, noise=Noise.none(), seed=seed, max_voltage=10.0)


def channel_map(geometry: ChipGeometry, seed: int) -> np.ndarray:
    """(H,) source channel of each heater: a seeded shuffle, so a driver that ignores the map fails."""
    return 1 + np.random.default_rng([seed, 99]).permutation(geometry.n_heaters)


def make_bench(n: int = 4, kind: str = "rectangular", seed: int = 0, chip_map=None, faults=(), coherent: bool = True,
               stall_s: float = 3.0, camera: CameraModel | None = None) -> tuple[EmulatedBench, dict]:
    """An :class:`EmulatedBench` for a seeded chip, and its chip-map JSON."""
    geometry, data = chip_geometry(n, kind, chip_map)
    faults = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
    bench = EmulatedBench(virtual_chip(n, kind, seed), geometry, channel_map(geometry, seed), seed=seed,
                          coherent=coherent, faults=faults, stall_s=stall_s, camera=camera)
    bench.chip_map_json = data
    warm_up(bench.chip)
    return bench, data


def warm_up(chip) -> None:
    """Compile the chip's simulations once, so the first frame a driver asks for is not a JIT compile."""
    for side, direction in (("input", "forward"), ("output", "backward")):
        for batch in (1, 2, 4, 8, 16):
            chip.inject(np.zeros((batch, chip.n_modes), dtype=complex), side=side)
            chip.read_taps(direction)
            chip.read_outputs_coherent()


def config_tables(bench: EmulatedBench, address: str, chip_map_file: str, timeout_ms: int = 2000,
                  retries: int = 3) -> dict:
    """The bench config (TOML tables) that reaches ``bench`` at ``address``."""
    model = bench.camera.model
    transform, _ = camera_layout(bench.geometry, model)
    pad_of = {h: pad for pad, h in bench.geometry.pads.items()}
    return {
        "chip": {"map": chip_map_file, "n": bench.geometry.n, "kind": bench.geometry.kind},
        "instruments": {role: address for role in ("source", "light", "meter", "camera")}
        | {"timeout_ms": timeout_ms, "retries": retries},
        "heaters": {"drive": "voltage", "limit": EMULATOR_LIMIT_V, "min": 0.0, "max": 5.0, "settle_s": 0.0,
                    "batch_commands": True,
                    "channels": {pad_of[h]: int(c) for h, c in enumerate(bench.channels)}},
        "camera": {"transform": [list(row) for row in transform], "window_px": 2,
                   "mw_per_count": 1.0 / model.counts_per_mw, "dark_frames": 8},
        "capabilities": {"output_side_source": True, "output_detectors": True, "coherent_readout": bench.coherent,
                         "camera_saturation_mw": float((2**model.bits - 1 - model.dark_counts) / model.counts_per_mw
                                                       / _peak_fraction(model.spot_sigma_px))},
        "costs": {"settle_s": 0.01, "frame_s": 0.02, "output_read_s": 0.005, "coherent_read_s": 0.04,
                  "direction_switch_s": 0.5},
    }


def _peak_fraction(sigma_px: float) -> float:
    from scipy.special import erf

    return float(erf(0.5 / (sigma_px * np.sqrt(2))) ** 2)


def write_bench_config(bench: EmulatedBench, address: str, path, **kwargs) -> Path:
    """Write the config (and chip_map.json beside it) that reaches ``bench`` at ``address``."""
    path = Path(path)
    map_file = path.with_name(path.stem + "_chip_map.json")
    from tapmesh.circuits.io import atomic_write_json

    atomic_write_json(map_file, bench.chip_map_json)
    return write_config(path, config_tables(bench, address, map_file.name, **kwargs),
                        header=f"bench config for the tapmesh bench emulator at {address} (seed {bench.seed})")


def start_server(bench: EmulatedBench, port: int = 0) -> tuple[BenchServer, threading.Thread]:
    """Serve ``bench`` on 127.0.0.1:``port`` (0: a free port) in a daemon thread."""
    server = BenchServer(bench, port)
    thread = threading.Thread(target=server.serve_forever, name="bench-emulator", daemon=True)
    thread.start()
    return server, thread


def run_emulator(port: int = 0, n: int = 4, kind: str = "rectangular", seed: int = 0, chip_map=None,
                 write_config_to=None, faults=(), coherent: bool = True, stall_s: float | None = None,
                 timeout_ms: int = 5000) -> None:
    """Serve an emulated bench until interrupted; print ``listening on TCPIP::127.0.0.1::PORT::SOCKET``.

    The config it writes gives the driver ``timeout_ms``; a ``stall`` fault holds its reply ``stall_s``
    (default 2.5 × that timeout, so it is always a timeout)."""
    stall_s = 2.5 * timeout_ms / 1000 if stall_s is None else stall_s
    bench, _ = make_bench(n, kind, seed, chip_map, faults, coherent, stall_s)
    server = BenchServer(bench, port)
    if write_config_to:
        write_bench_config(bench, server.address, write_config_to, timeout_ms=timeout_ms)
    print(f"tapmesh bench-emulator: {kind} n={n} seed={seed} listening on {server.address}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
