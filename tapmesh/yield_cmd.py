"""``tapmesh yield``: fabrication yield of a mesh design over thousands of virtual chips, on Dask.

Registered on the CLI by :func:`register` (one call in :mod:`tapmesh.cli`); the study itself is
:mod:`tapmesh.yield_study` and :mod:`tapmesh.yield_dask`. Progress lines (and the Dask dashboard address)
go to stderr, so that ``--json`` leaves the summary as the last line of stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


class OptionError(ValueError):
    """A ``tapmesh yield`` option that does not parse (reported as one line, exit code 2)."""


def _numbers(text: str, kind, option: str) -> tuple:
    try:
        values = tuple(kind(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise OptionError(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise OptionError(f"{option} is empty")
    return values


def register(app: typer.Typer) -> None:
    """Add the ``yield`` sub-command to ``app`` (the options every sub-command has come from :mod:`tapmesh.cli`)."""
    from tapmesh.command import DebugOption, JsonOption, OutOption, SeedOption, command

    @app.command("yield")
    def yield_cmd(
        n: str = typer.Option("8", "--n", help="Mesh size(s) in modes, comma-separated (8 or 8,16)."),
        chips: int = typer.Option(100, "--chips", help="Chips per (n, σδ)."),
        sigma_delta: str = typer.Option("0.01,0.02,0.03", "--sigma-delta",
                                        help="Process spreads σδ of the couplers' splitting error, rad, comma-separated."),
        mode: str = typer.Option("full", "--mode", help="full: calibrate every chip | fast: perturb the truth by the "
                                 "calibration error measured from a few full calibrations."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a running Dask scheduler "
                                                "(default: a LocalCluster, one worker per core)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="LocalCluster workers (default: one per core)."),
        k_targets: int = typer.Option(4, "--k-targets", help="Haar-random target unitaries scored per chip."),
        spec: float = typer.Option(0.99, "--spec", help="Fidelity spec: a chip passes when its mean corrected F ≥ spec."),
        variation: str = typer.Option("wafer", "--variation", help="wafer (correlated wafer maps, nm → δ, φ0, loss) | "
                                      "independent (per-device draws)."),
        kind: str = typer.Option("rectangular", "--kind", help="rectangular | triangular"),
        crosstalk: float = typer.Option(0.0, "--crosstalk", help="Thermal crosstalk between neighbouring heaters."),
        polish: bool = typer.Option(True, "--polish/--no-polish", help="Gradient polish in voltages_for."),
        chunk: Optional[int] = typer.Option(None, "--chunk", help="Chips per Dask task (default: ~4 tasks per worker)."),
        error_model: Optional[Path] = typer.Option(None, "--error-model", help="JSON error models by n (fast mode), "
                                                   "instead of measuring them."),
        png: bool = typer.Option(True, "--png/--no-png", help="Write the plots."),
        connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="Seconds to try reaching --scheduler."),
        out: Path = OutOption,
        seed: int = SeedOption,
        as_json: bool = JsonOption,
        debug: bool = DebugOption,
    ) -> None:
        """Fabrication yield: per chip fabricate from the wafer model, calibrate, correct, and score F on K
        Haar targets on the true chip; sweeps over σδ (rad) and n. Writes yield.parquet (one row per chip),
        yield_vs_spec.png, fidelity_distributions.png, wafer_map.png and yield_summary.json into --out; a
        rerun into the same --out skips the chips already scored."""

        def run(n, chips, sigma_delta, mode, scheduler, workers, k_targets, spec, variation, kind, crosstalk, polish,
                chunk, error_model, png, connect_timeout, out, seed):
            from tapmesh.yield_study import Study

            study = Study(ns=_numbers(n, int, "--n"), sigmas=_numbers(sigma_delta, float, "--sigma-delta"),
                          chips=chips, seed=seed, mode=mode, k_targets=k_targets, spec=spec, kind=kind,
                          variation=variation, crosstalk=crosstalk, polish=polish)
            if workers is not None and workers < 1:
                raise OptionError(f"--workers must be at least 1, got {workers}")
            if chunk is not None and chunk < 1:
                raise OptionError(f"--chunk must be at least 1, got {chunk}")
            models = None
            if error_model is not None:
                from tapmesh.calibration.surrogate import load_error_models

                models = load_error_models(Path(error_model).read_text())
            from tapmesh import yield_dask

            return yield_dask.run(study, out, scheduler=scheduler, workers=workers, chunk=chunk, error_models=models,
                                  plots=png, echo=lambda line: typer.echo(line, err=True), timeout_s=connect_timeout)

        command("yield", report=False)(run)(n=n, chips=chips, sigma_delta=sigma_delta, mode=mode, scheduler=scheduler,
                              workers=workers, k_targets=k_targets, spec=spec, variation=variation, kind=kind,
                              crosstalk=crosstalk, polish=polish, chunk=chunk, error_model=error_model, png=png,
                              connect_timeout=connect_timeout, out=out, seed=seed, as_json=as_json, debug=debug)
