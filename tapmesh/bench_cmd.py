"""``tapmesh bench-emulator``: serve the SCPI bench emulator of :mod:`tapmesh.bench` (registered on the CLI
by :func:`register`; the work is in :mod:`tapmesh.bench.commands`, imported only when the command runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``bench-emulator`` sub-command to ``app``."""
    from tapmesh.command import KINDS, DebugOption, SeedOption, command
    from tapmesh.options import choice_option

    @app.command("bench-emulator")
    def bench_emulator_cmd(
        port: int = typer.Option(0, "--port", min=0, max=65535, help="TCP port on 127.0.0.1 (0: a free one, printed)."),
        n: int = typer.Option(4, "--n", min=2, help="Number of modes."),
        kind: str = typer.Option("rectangular", "--kind", help="rectangular | triangular"),
        chip_map: Optional[Path] = typer.Option(None, "--chip-map", help="chip_map.json of the chip (default: lay it out)."),
        write_config: Optional[Path] = typer.Option(None, "--write-config", help="Write the bench config TOML that reaches this emulator."),
        fault: list[str] = typer.Option([], "--fault", help="Inject a fault at a query number: drop@N, stall@N, garble@N, trip:CH@N (repeatable)."),
        coherent: bool = typer.Option(True, "--coherent/--no-coherent", help="Emulate a coherent output analyzer."),
        seed: int = SeedOption,
        debug: bool = DebugOption,
    ) -> None:
        """Serve a SCPI bench emulator backed by a VirtualChip fabricated from --seed, until Ctrl-C
        (docs/bench.md); --write-config writes the config `tapmesh calibrate --driver scpi` reads."""

        def run(port, n, kind, chip_map, write_config, fault, coherent, seed):
            choice_option(kind, KINDS, "--kind")
            from tapmesh.bench.commands import bench_emulator

            bench_emulator(port, n, kind, seed, chip_map, write_config, fault, coherent=coherent)
            return {}

        command("bench-emulator", report=False)(run)(port=port, n=n, kind=kind, chip_map=chip_map, write_config=write_config,
                                       fault=fault, coherent=coherent, seed=seed, debug=debug)
