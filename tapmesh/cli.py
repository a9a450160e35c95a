"""The ``tapmesh`` command line: the whole flow, and each stage on its own.

Every sub-command reads and writes files in ``--out`` (default ``out/``), checks every option before any
work or file write (:mod:`tapmesh.options`), prints a short summary on success (headline numbers with
units, the files written, the report's path; ``--json``: a machine-readable summary as the last line),
and reports bad input as one line on stderr with exit code 2 (``--debug`` shows the traceback). Files
are written atomically, so a failed stage leaves the outputs of earlier stages intact.

Adding a sub-command: a ``@app.command`` function whose body checks its options with the helpers of
:mod:`tapmesh.options` and passes a ``run`` function to :func:`command`; ``run`` returns a summary dict
with ``headline`` (lines to print), ``files`` (paths written) and, if the report belongs elsewhere than
``--out``, ``out_folder``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import click
import typer

from tapmesh.command import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    KINDS,
    TASKS,
    METHODS,
    LAYOUT_N_MAX,
    WL_SPAN_MIN_UM,
    WL_SPAN_MAX_UM,
    MAX_MODES,
    OutOption,
    SeedOption,
    ForceOption,
    JsonOption,
    DebugOption,
    command,
    _command_line,
)
from tapmesh.options import UsageError, calibration_file, choice_option, finite_option, out_option

app = typer.Typer(
    name="tapmesh",
    help="Design, model, calibrate and train programmable photonic MZI meshes with grating-tap monitors.\n\n"
    "Units: lengths and wavelengths in µm, phases in rad, voltages in V, optical power in mW.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _chip_option(n: Optional[int], kind: str) -> dict[str, Any]:
    """``--n``/``--kind`` of a layout: the demo chip when ``n`` is None."""
    if n is None:
        return {"demo": True, "n": 6, "kind": "triangular"}
    choice_option(kind, KINDS, "--kind")
    return {"demo": False, "n": n, "kind": kind}


@app.callback()
def _root() -> None:
    """tapmesh: from GDS to a calibrated chip to a trained network."""


# ----------------------------------------------------------------------------------------- commands
@app.command("simulate")
def simulate_cmd(
    n: int = typer.Option(4, "--n", min=2, max=MAX_MODES, help=f"Number of modes (2 … {MAX_MODES})."),
    kind: str = typer.Option("rectangular", "--kind", help="rectangular | triangular"),
    wl_span: float = typer.Option(0.1, "--wl-span", min=WL_SPAN_MIN_UM, max=WL_SPAN_MAX_UM, help=f"Width of the wavelength sweep around 1.55 µm, µm ({WL_SPAN_MIN_UM:g} … {WL_SPAN_MAX_UM:g})."),
    sax_check: bool = typer.Option(True, "--sax/--no-sax", help="Check the engine against the SAX reference circuit (n ≤ 8)."),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Model a mesh: a random as-built mesh in the JAX engine, checked against SAX, swept over wavelength.

    Writes simulation.json and simulation.png (|U|² and the transmission spectrum)."""

    def run(n, kind, wl_span, sax_check, out, seed):
        choice_option(kind, KINDS, "--kind")
        finite_option(wl_span, "--wl-span")
        out = out_option(out)
        from tapmesh import stages  # after the checks: bad input fails at once, not after seconds of imports

        s = stages.simulate(n=n, kind=kind, wl_span=wl_span, sax_check=sax_check, out=out, seed=seed)
        sax = s.get("engine_vs_sax_max_error")
        s["headline"] = [
            f"simulated a {n}-mode {kind} mesh: {s['n_mzis']} MZIs, {s['n_heaters']} heaters",
            f"insertion loss {s['insertion_loss_db']:.3f} dB at 1.55 µm, worst {s['worst_insertion_loss_db']:.3f} dB over ±{wl_span / 2:g} µm",
            (f"engine vs SAX: max |ΔU| {sax:.1e} (SAX took {s['sax_seconds']:.1f} s)" if sax is not None else "engine vs SAX: not checked")
            + f"; Clements round trip max |ΔU| {s['decomposition_max_error']:.1e}",
        ]
        return s

    command("simulate")(run)(n=n, kind=kind, wl_span=wl_span, sax_check=sax_check, out=out, seed=seed, as_json=as_json, debug=debug)


@app.command("layout")
def layout_cmd(
    n: Optional[int] = typer.Option(None, "--n", min=2, max=LAYOUT_N_MAX, help=f"Number of modes, 2 … {LAYOUT_N_MAX} (default: the demo chip, a 6-mode triangular mesh)."),
    kind: str = typer.Option("triangular", "--kind", help="rectangular | triangular (with --n)."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also write chip.png, the layout with the chip map overlaid."),
    pdk: str = typer.Option("generic", "--pdk", help="PDK to lay out on: generic | ubcpdk | cspdk (foundry PDKs need tapmesh[NAME])."),
    pads: str = typer.Option("auto", "--pads", help="auto (the PDK's default: direct on generic, fanout on ubcpdk and cspdk) | direct | fanout | bumps | edge: pad per heater on zone tracks, zone tracks fanned out in one metal to a staggered pad field, or dense routing to a bump array / edge pad field (fanout, bumps, edge: with --n)."),
    pad_stagger: str = typer.Option("none", "--pad-stagger", help="With --pads edge: none (aligned rows) | auto (staggered rows, offset and rows chosen for the smallest field) | a row offset in µm."),
    balanced_taps: bool = typer.Option(False, "--balanced-taps", help="A dummy tap beside every monitor tap, so every path loses the same power (needed for F ≥ 0.999 at n ≥ 32; with --n). The folder's chip is then fabricated and calibrated as such."),
    out: Path = OutOption,
    seed: int = SeedOption,
    force: bool = ForceOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Lay out a chip (mesh with grating taps, fiber-array I/O, heaters routed to bond pads).

    Writes chip.gds, chip.png and chip_map.json (pad → heater, tap → segment, direction and grating
    position in µm, fiber port → mode) into --out; with --out NAME.gds, writes NAME.gds and NAME.png
    beside each other instead. Lengths in µm."""

    def run(n, kind, png, out, seed, force, pads="auto", pdk="generic", pad_stagger="none", balanced_taps=False):
        from tapmesh.options import check_same_chip, stagger_option

        _check_pdk(pdk)
        name = "chip"
        if Path(out).suffix.lower() == ".gds":
            out, name = Path(out).parent, Path(out).stem
        chosen = _chip_option(n, kind)
        choice_option(pads, ("auto", "direct", "fanout", "bumps", "edge"), "--pads")
        if pads == "auto":
            from tapmesh import pcells

            pads = "direct" if chosen["demo"] else pcells.default_pads(pdk)
        stagger = stagger_option(pad_stagger, pads)
        if chosen["demo"] and (pads != "direct" or stagger is not None):
            flag = f"--pads {pads}" if pads != "direct" else "--pad-stagger"
            raise UsageError(f"{flag} needs --n (the demo chip has direct pads)")
        if chosen["demo"] and balanced_taps:
            raise UsageError("--balanced-taps needs --n (the demo chip is the seed paper's, with one-arm taps)")
        out = out_option(out)
        held = "none" if stagger is None else str(stagger)
        replaced = check_same_chip(out, layout={**chosen, "pads": pads, "pdk": pdk, "pad_stagger": held,
                                                                 "balanced_taps": balanced_taps}, force=force)
        from tapmesh import stages

        s = stages.layout(out, n=n, kind=kind, demo=chosen["demo"], png=png, name=name, pads=pads, pdk=pdk,
                          pad_stagger=stagger, replace_chip=bool(replaced), balanced_taps=balanced_taps)
        s["out_folder"] = str(out)
        s["headline"] = (["replaced the chip in --out (" + "; ".join(replaced) + ")"] if replaced else []) + [
            f"laid out {s['chip']}: {s['n_heaters']} heaters, {s['n_taps']} tap gratings"
            + (" (each with a dummy beside it)" if s["balanced_taps"] else "") + f", {s['n_pads']} bond pads"
            + (f", die {s['die_um'][0] / 1e3:.2f} × {s['die_um'][1] / 1e3:.2f} mm" if s.get("die_um") else ""),
            f"GDS {s['gds_bytes'] / 1e6:.2f} MB, built in {s['layout_seconds']:.1f} s",
        ]
        return s

    command("layout")(run)(n=n, kind=kind, png=png, out=out, seed=seed, force=force, as_json=as_json, debug=debug, pads=pads,
                           pdk=pdk, pad_stagger=pad_stagger, balanced_taps=balanced_taps)


def _check_pdk(name: str) -> str:
    """A known, installed PDK name, else a one-line UsageError (the known names, or the extra to install)."""
    import importlib.util

    from tapmesh.pcells.roles import KNOWN_PDKS

    if name not in KNOWN_PDKS:
        raise UsageError(f"unknown --pdk {name!r}; known: {', '.join(sorted(KNOWN_PDKS))}")
    module = KNOWN_PDKS[name]["module"]
    if module is not None and importlib.util.find_spec(module.split(".")[0]) is None:
        raise UsageError(f"PDK {name!r} is not installed: pip install '{KNOWN_PDKS[name]['extra']}'")
    return name


@app.command("calibrate")
def calibrate_cmd(
    driver: Optional[str] = typer.Option(None, "--driver", help="'scpi' (the reference PyVISA bench driver, with --config) or a Chip driver registered under the 'tapmesh.chips' entry points. Default: a VirtualChip fabricated from --seed."),
    config: Optional[Path] = typer.Option(None, "--config", help="Bench config TOML for --driver scpi."),
    archive: Optional[Path] = typer.Option(None, "--archive", help="Raw-measurement archive (HDF5); default --out/calibration_archive.h5 with --driver scpi."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted calibration recorded in --archive."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also plot residuals and fitted curves."),
    out: Path = OutOption,
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Fabrication seed of the VirtualChip (≥ 0; default: the chip --out holds, else 0)."),
    force: bool = ForceOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Calibrate a chip: phase–voltage curves (rad/V²), coupler splitting errors (rad), crosstalk,
    global refinement; then error-corrected fidelity on random targets.

    Writes calibration.json (versioned, checksummed, written atomically) and calibration_summary.json."""

    def run(driver, config, archive, resume, png, out, seed, force):
        from tapmesh.options import check_same_chip, folder_chip

        if driver == "scpi":  # the reference bench driver (tapmesh.bench): its archive, resume and config
            from tapmesh.bench.commands import calibrate_scpi

            s = calibrate_scpi(config, out_option(out), 0 if seed is None else seed, archive=archive, resume=resume, png=png)
            s["headline"] = calibration_headline(s)
            return s
        if resume and archive is None:
            raise UsageError("--resume needs --archive (or --driver scpi, whose archive is --out/calibration_archive.h5)")
        if seed is not None:
            out = out_option(out)
        replaced = [] if driver else check_same_chip(out, seed=seed, force=force)
        from tapmesh import stages

        chip = stages.load_driver(driver) if driver else None
        fabricated = folder_chip(out)["fabrication"]
        if chip is None and (fabricated is None or replaced):
            stages.fabricate(out, 0 if seed is None else seed)
        use_seed = seed if seed is not None else (fabricated or {}).get("seed", 0)
        s = stages.calibrate(out, use_seed, chip=chip, png=png, archive=archive, resume=resume)
        s["headline"] = (["replaced the chip in --out (" + "; ".join(replaced) + ")"] if replaced else []) + calibration_headline(s)
        return s

    command("calibrate")(run)(driver=driver, config=config, archive=archive, resume=resume, png=png, out=out, seed=seed,
                              force=force, as_json=as_json, debug=debug)


def calibration_headline(s: dict[str, Any]) -> list[str]:
    """The calibration summary's headline lines (also used by ``flow``)."""
    bench = f", bench time {s['bench_seconds']:.0f} s" if s.get("bench_seconds") is not None else ""
    lines = [
        f"calibrated a {s['n_modes']}-mode {s['kind']} chip: {s['n_measurements']:,} camera frames in {s['calibration_seconds']:.1f} s{bench}",
        f"fidelity on the chip {s['mean_fidelity_uncorrected']:.4f} uncorrected → {s['mean_fidelity_corrected']:.4f} corrected (mean of {len(s['fidelity'])} Haar-random targets)",
    ]
    if "phase_offset_rms_error" in s:
        lines.append(
            f"against the hidden truth: φ0 {s['phase_offset_rms_error']:.4f} rad, δ {s['delta_rms_error']:.4f} rad, "
            f"α {100 * s['alpha_rms_relative_error']:.2f} % RMS"
        )
    return lines


def training_headline(s: dict[str, Any]) -> list[str]:
    """The training summary's headline lines (also used by ``flow``)."""
    chip, twin = s["chip"], s["twin"]
    return [
        f"trained {s['task']} ({s['layers']} layers, {s['epochs']} epochs, {s['method']}): test accuracy on the chip "
        f"{100 * chip['test_accuracy']:.1f} % (epoch {chip['epoch_kept']} kept; best {100 * chip['best_test_accuracy']:.1f} %), "
        f"digital twin {100 * twin['test_accuracy']:.1f} %",
        f"{chip['chip_passes']:,} chip passes in {chip['seconds']:.1f} s; twin {twin['seconds']:.1f} s",
    ]


@app.command("train")
def train_cmd(
    task: str = typer.Option("moons", "--task", help="moons | circles | ring | iris | digits"),
    method: str = typer.Option("insitu", "--method", help="insitu | insitu_analog | two_pass | dfa | spsa | autodiff"),
    layers: int = typer.Option(3, "--layers", min=1, max=16, help="Number of mesh layers (1 … 16)."),
    epochs: int = typer.Option(20, "--epochs", min=1, max=10_000, help="Training epochs (1 … 10000)."),
    png: bool = typer.Option(True, "--png/--no-png"),
    archive: Optional[Path] = typer.Option(None, "--archive", help="Training archive (HDF5): every chip call of the run on the chip, recorded as it is taken."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted training recorded in --archive (same options)."),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Train a network on the calibrated chip (reads calibration.json) next to its digital twin.

    Writes training.json, training_curves.png and (2-D tasks) decision_boundary.png."""

    def run(task, method, layers, epochs, png, archive, resume, out, seed):
        choice_option(task, TASKS, "--task")
        choice_option(method, METHODS, "--method")
        if resume and archive is None:
            raise UsageError("--resume needs --archive (the archive of the training to continue)")
        if archive is not None and resume and not archive.exists():
            raise UsageError(f"--resume: no training archive at {archive}; start it without --resume")
        if archive is not None and not resume and archive.exists():
            raise UsageError(f"--archive {archive} exists: pass --resume to continue it, or choose a new path")
        out = out_option(out)
        calibration_file(out)  # before seconds of imports
        from tapmesh import stages

        s = stages.train(out, seed, task=task, method=method, layers=layers, epochs=epochs, png=png,
                         archive=archive, resume=resume)
        s["headline"] = training_headline(s)
        if "archive" in s:
            s["headline"].append(f"archive {s['archive']['path']}: {sum(s['archive']['readings']):,} readings recorded")
        return s

    command("train")(run)(task=task, method=method, layers=layers, epochs=epochs, png=png, archive=archive, resume=resume,
                          out=out, seed=seed, as_json=as_json, debug=debug)


@app.command("report")
def report_cmd(
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Write report.html: a self-contained page with every figure and table found in --out."""

    def run(out, seed):
        out = Path(out)
        if not out.is_dir():
            raise UsageError(f"--out {out} is not a folder: run a stage first")
        from tapmesh import report

        path, status = report.build(out, command=_command_line())
        done = sum(bool(v) for v in status.values())
        return {"report": str(path), "sections": status, "headline": [f"report with {done} of {len(status)} sections"]}

    command("report", report=False)(run)(out=out, seed=seed, as_json=as_json, debug=debug)


@app.command("flow")
def flow_cmd(
    n: Optional[int] = typer.Option(None, "--n", min=2, max=LAYOUT_N_MAX, help=f"Modes of a generic chip, 2 … {LAYOUT_N_MAX}, instead of the demo chip (6-mode triangular)."),
    kind: str = typer.Option("triangular", "--kind", help="rectangular | triangular (with --n)."),
    task: str = typer.Option("moons", "--task", help="moons | circles | ring | iris | digits"),
    method: str = typer.Option("insitu", "--method", help="Gradient method on the chip."),
    epochs: int = typer.Option(20, "--epochs", min=1, max=10_000, help="Training epochs (1 … 10000)."),
    fast: bool = typer.Option(False, "--fast", help="A small, quick setting (CI): 3 epochs, no SAX reference."),
    out: Path = OutOption,
    seed: int = SeedOption,
    force: bool = ForceOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """The whole pipeline on the demo chip: layout → model extraction → fabricate a VirtualChip →
    calibrate → train in situ → report.html. Each stage writes its files into --out."""

    def run(n, kind, task, method, epochs, fast, out, seed, force):
        from tapmesh.options import check_same_chip

        chosen = _chip_option(n, kind)
        choice_option(task, TASKS, "--task")
        choice_option(method, METHODS, "--method")
        out = out_option(out)
        replaced = check_same_chip(out, seed=seed, layout={**chosen, "pads": "direct", "pdk": "generic"}, force=force)
        from tapmesh import stages

        if replaced:
            stages.forget_chip(out)
        s = stages.flow(out, seed, n=n, kind=kind, task=task, method=method, epochs=3 if fast else epochs, fast=fast,
                        command=_command_line())
        s["headline"] = [
            *calibration_headline(s["calibrate"]),
            *training_headline(s["train"]),
            f"tapmesh flow: done in {s['seconds']:.0f} s",
        ]
        s["report"] = s["report"]["report"]
        return s

    command("flow", report=False)(run)(n=n, kind=kind, task=task, method=method, epochs=epochs, fast=fast, out=out, seed=seed, force=force, as_json=as_json, debug=debug)


from tapmesh import yield_cmd  # noqa: E402  (`tapmesh yield` lives in its own module)

yield_cmd.register(app)

from tapmesh import bench_cmd  # noqa: E402  (`tapmesh bench-emulator` lives in its own module)

bench_cmd.register(app)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: click's parse errors (``--n eight``) as one line with exit code 2."""
    try:
        result = app(args=argv, prog_name="tapmesh", standalone_mode=False)
    except click.exceptions.UsageError as error:  # includes BadParameter, NoSuchOption, MissingParameter
        where = error.ctx.command_path if error.ctx is not None else "tapmesh"
        typer.echo(f"{where}: error: {error.format_message()}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        typer.echo("tapmesh: aborted", err=True)
        return EXIT_FAILED
    except click.exceptions.Exit as done:
        return done.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
