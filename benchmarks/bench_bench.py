"""Bench throughput: frames per second through the SCPI emulator (pyvisa-py over a TCP socket, camera
rendering and windowed readout) against the same VirtualChip read directly (the protocol's overhead),
and the raw-measurement archive's write rate and size per 1000 frames; and the archive's overhead on a
training epoch (``train(..., archive=)``, n = 4, VirtualChips directly; ``--train-only`` runs just that).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_bench.py [--quick] [--n 4] [--train-only]

The emulator runs in a subprocess (``tapmesh bench-emulator``), as a lab's instruments would.
Each cycle is what calibration does: set voltages, inject a batch of fields, read the taps.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tapmesh.bench import BenchChip
from tapmesh.bench.serve import virtual_chip
from tapmesh.calibration.archive import Archive
from tapmesh.calibration.replay import ArchivingChip


def cycles(chip, count: int, batch: int, seed: int = 0, repeats: int = 3) -> float:
    """Frames per second of ``count`` set/inject/read cycles of ``batch`` fields: the best of ``repeats``
    runs (the machine is shared; the best run is the one least slowed by other jobs)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(batch, chip.n_modes)) + 1j * rng.normal(size=(batch, chip.n_modes))) / 2
    chip.set_voltages(np.zeros(chip.n_heaters))
    chip.inject(x)
    chip.read_taps("forward")  # warm (compiles)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            chip.set_voltages(rng.uniform(0, 4, chip.n_heaters))
            chip.inject(x)
            chip.read_taps("forward")
        best = max(best, count * batch / (time.perf_counter() - start))
    return best


def calibrate_over_emulator(bench, args) -> None:
    """A default calibration through the emulator, scored on the chip it stands for (as a test may)."""
    from tapmesh import circuits
    from tapmesh.calibration import calibrate

    start = time.perf_counter()
    cal = calibrate(bench, seed=5, progress=False)
    seconds = time.perf_counter() - start
    truth = virtual_chip(args.n, args.kind, 0)
    wrap = lambda a: (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    u = circuits.haar_unitary(args.n, seed=1)
    print(f"\ncalibration over the emulator: {cal.n_measurements} frames in {seconds:.0f} s; "
          f"φ0 rms {np.sqrt(np.mean(wrap(cal.phase_offsets - truth.truth.phase_offsets) ** 2)):.4f} rad; "
          f"F corrected {circuits.fidelity(u, truth.unitary(cal.voltages_for(u))):.4f}, "
          f"plain {circuits.fidelity(u, truth.unitary(cal.voltages_uncorrected(u))):.4f}")


def start_emulator(folder: Path, n: int, kind: str, chip_map: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tapmesh", "bench-emulator", "--port", str(port), "--n", str(n),
                             "--kind", kind, "--chip-map", str(chip_map), "--write-config", str(folder / "bench.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if not re.search("listening on", line):
        raise RuntimeError(line + proc.stdout.read())
    return proc


def training_archive_overhead(quick: bool) -> None:
    """Frames/s of in-situ training epochs on n = 4 chips (3 layers on 2 chips, keyed noise), with and
    without ``train(archive=)``; best of 3 runs each, after a warm-up run (compilation)."""
    from tapmesh import circuits
    from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip
    from tapmesh.training import PhotonicNetwork, data, train

    mesh = circuits.rectangular(4)
    dataset = data.moons(n_samples=80 if quick else 200)
    cal = Calibration.nominal(mesh, tap_fraction=0.02)
    folder = Path(tempfile.mkdtemp(prefix="bench_train_archive_"))

    def run(archive, keyed: bool = True) -> float:
        a, b = (VirtualChip(mesh, AsBuilt.ideal(mesh, tap_fraction=0.02), Noise.realistic(), seed=s, keyed_noise=keyed)
                for s in (1, 2))
        net = PhotonicNetwork(mesh, 3, 2, chips=(a, b, a), calibrations=(cal,) * 3, activation="abs2",
                              encoding="amplitude_phase")
        start = time.perf_counter()
        train(net, dataset, "insitu", epochs=1, batch_size=16, seed=0, progress=False, archive=archive)
        return (a.measurements + b.measurements) / (time.perf_counter() - start)

    run(None)
    plain = max(run(None) for _ in range(3))
    unkeyed = max(run(None, keyed=False) for _ in range(3))
    archived = max(run(folder / f"train_{k}.h5") for k in range(3))
    size = os.path.getsize(folder / "train_0.h5")
    print(f"\n| training epoch (n=4, 3 layers on 2 chips, {len(dataset.y_train)} samples) | frames/s archived | "
          "frames/s unarchived | ratio | archive MB | frames/s, one noise stream (keyed_noise=False) |")
    print("|---|---|---|---|---|---|")
    print(f"| insitu, batch 16 | {archived:.0f} | {plain:.0f} | {plain / archived:.2f}× slower | {size / 1e6:.2f} | {unkeyed:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few cycles (CI)")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--kind", default="rectangular")
    parser.add_argument("--calibrate", action="store_true",
                        help="also run a full calibration over the emulator and score it on the hidden chip")
    parser.add_argument("--train-only", action="store_true", help="only the training-archive overhead")
    args = parser.parse_args()
    if args.train_only:
        return training_archive_overhead(args.quick)
    count = 10 if args.quick else 60
    folder = Path(tempfile.mkdtemp(prefix="bench_bench_"))
    chip_map = Path(__file__).parent.parent / "tests" / "data" / "chip_map_rect4.json"
    if (args.n, args.kind) != (4, "rectangular"):
        from tapmesh import pcells

        chip_map = folder / "chip_map.json"
        chip_map.write_text(pcells.chip_map(pcells.chip(n=args.n, kind=args.kind)).to_json())
    proc = start_emulator(folder, args.n, args.kind, chip_map)
    try:
        bench = BenchChip(folder / "bench.toml")
        direct = virtual_chip(args.n, args.kind, 0)
        print(f"n={args.n} {args.kind}, {bench.n_heaters} taps, frames {bench.readout.shape[0]}×{bench.readout.shape[1]} px; "
              f"best of 3 × {count} cycles per cell (machine shared: read ratios, not seconds)")
        print("| batch | VirtualChip frames/s | emulator frames/s | overhead (direct / emulator) |")
        print("|---|---|---|---|")
        for batch in (1, 16):
            f_direct = cycles(direct, count, batch)
            f_bench = cycles(bench, count, batch)
            print(f"| {batch} | {f_direct:.0f} | {f_bench:.0f} | {f_direct / f_bench:.1f}× |")

        print("\n| archive | frames/s archived | frames/s unarchived | MB per 1000 frames |")
        print("|---|---|---|---|")
        for label, chip, images in (("taps only, VirtualChip", direct, False), ("taps + raw frames (lzf), emulator", bench, True)):
            path = folder / f"archive_{images}.h5"
            archive = Archive.create(path, chip.n_modes, chip.n_heaters)
            wrapped = ArchivingChip(chip, archive, images=images)
            plain = cycles(chip, count, 16)
            archived = cycles(wrapped, count, 16)
            frames = len(archive.table("taps"))
            archive.close()
            print(f"| {label} | {archived:.0f} | {plain:.0f} | {os.path.getsize(path) / frames * 1000 / 1e6:.2f} |")
        training_archive_overhead(args.quick)
        if args.calibrate:
            calibrate_over_emulator(bench, args)
        bench.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
