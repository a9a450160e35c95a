"""What ``tapmesh calibrate --driver scpi`` and ``tapmesh bench-emulator`` do (tapmesh/cli.py only parses
their options and calls these). Bad input fails here, before the bench is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARCHIVE_NAME = "calibration_archive.h5"


def calibrate_scpi(config: Path | None, out: Path, seed: int, archive: Path | None = None, resume: bool = False,
                   png: bool = True, max_voltage: float | None = None, images: bool = False) -> dict[str, Any]:
    """Calibrate the bench of ``config`` through :class:`tapmesh.bench.BenchChip`, archiving every call
    into ``archive`` (default ``out/calibration_archive.h5``); ``resume`` continues that archive."""
    from tapmesh import stages
    from tapmesh.bench.config import load_config
    from tapmesh.bench.driver import BenchChip
    from tapmesh.bench.errors import BenchConfigError

    if config is None:
        raise BenchConfigError("--driver scpi needs --config BENCH.toml (write one with `tapmesh bench-emulator --write-config`)")
    cfg = load_config(config)  # every config check before any connection
    archive = Path(archive) if archive is not None else Path(out) / ARCHIVE_NAME
    if archive.exists() and not resume:
        raise BenchConfigError(f"archive {archive} exists: pass --resume to continue it, or --archive NEW.h5")
    chip = BenchChip(cfg, drive_max=max_voltage)
    try:
        summary = stages.calibrate(Path(out), seed, chip=chip, png=png, archive=archive, resume=resume,
                                   archive_images=images)
    finally:
        chip.close()
    summary["bench"] = {"identity": chip.identity, "frames": chip.frame_index, "faults_survived": dict(chip.retried),
                        "archive": str(archive)}
    return summary


def bench_emulator(port: int, n: int, kind: str, seed: int, chip_map: Path | None, write_config: Path | None,
                   faults: list[str], coherent: bool = True, stall_s: float | None = None) -> None:
    """Run the emulator in the foreground (until Ctrl-C)."""
    from tapmesh.bench.emulator import Fault
    from tapmesh.bench.serve import run_emulator

    if not 0 <= port < 65536:
        raise ValueError(f"--port must be 0..65535, got {port}")
    parsed = [Fault.parse(f) for f in faults]  # bad --fault fails before the chip is built
    run_emulator(port=port, n=n, kind=kind, seed=seed, chip_map=chip_map, write_config_to=write_config,
                 faults=parsed, coherent=coherent, stall_s=stall_s)
