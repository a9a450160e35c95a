"""The ``tapmesh`` command line: the whole flow, and each stage on its own.

Every sub-command reads and writes files in ``--out`` (default ``out/``), takes ``--seed`` and ``--json``
(a machine-readable summary as the last line of output), and reports bad input as one line on stderr
with exit code 2 (``--debug`` shows the traceback). Files are written atomically, so a failed stage
leaves the outputs of earlier stages intact.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import typer

app = typer.Typer(
    name="tapmesh",
    help="Design, model, calibrate and train programmable photonic MZI meshes with grating-tap monitors.\n\n"
    "Units: lengths and wavelengths in µm, phases in rad, voltages in V, optical power in mW.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

OutOption = typer.Option(Path("out"), "--out", help="Folder for every file the command writes.")
SeedOption = typer.Option(0, "--seed", help="Seed of every random choice (fabrication errors, noise, data split).")
JsonOption = typer.Option(False, "--json", help="Print a machine-readable summary as the last line.")
DebugOption = typer.Option(False, "--debug", help="Show the full traceback on errors.")


class UsageError(ValueError):
    """Bad command-line input (reported as one line, exit code 2)."""


def _is_bad_input(error: BaseException) -> bool:
    return isinstance(error, (ValueError, TypeError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, KeyError))


def command(name: str) -> Callable:
    """Wrap a sub-command: one-line errors with exit codes, ``--json`` summary, ``--debug`` traceback."""

    def decorate(fn: Callable[..., dict[str, Any]]) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            as_json = kwargs.pop("as_json", False)
            debug = kwargs.pop("debug", False)
            try:
                summary = fn(*args, **kwargs)
            except typer.Exit:
                raise
            except Exception as error:  # noqa: BLE001 - every failure becomes one clear line
                if debug:
                    traceback.print_exc()
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                typer.echo(f"tapmesh {name}: error: {type(error).__name__}: {message}", err=True)
                raise typer.Exit(EXIT_BAD_INPUT if _is_bad_input(error) else EXIT_FAILED)
            if as_json:
                typer.echo(json.dumps({"command": name, **summary}, default=_json_default, sort_keys=True))
            return summary

        return wrapper

    return decorate


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _check_out(out: Path) -> Path:
    """Create ``out`` or fail with a clear message if it cannot be written."""
    import os

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"cannot create --out folder {out}: {error.strerror}") from None
    if not os.access(out, os.W_OK):
        raise PermissionError(f"--out folder {out} is not writable")
    return out


def _check_n(n: int, minimum: int = 2) -> int:
    if n < minimum:
        raise UsageError(f"--n must be at least {minimum}, got {n}")
    return n


@app.callback()
def _root() -> None:
    """tapmesh: from GDS to a calibrated chip to a trained network."""


# ----------------------------------------------------------------------------------------- commands
@app.command("simulate")
def simulate_cmd(
    n: int = typer.Option(4, "--n", help="Number of modes."),
    kind: str = typer.Option("rectangular", "--kind", help="rectangular | triangular"),
    wl_span: float = typer.Option(0.1, "--wl-span", help="Width of the wavelength sweep around 1.55 µm, µm."),
    sax_check: bool = typer.Option(True, "--sax/--no-sax", help="Check the engine against the SAX reference circuit."),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Model a mesh: a random as-built mesh in the JAX engine, checked against SAX, swept over wavelength.

    Writes simulation.json and simulation.png (|U|² and the transmission spectrum)."""
    command("simulate")(_simulate)(n=n, kind=kind, wl_span=wl_span, sax_check=sax_check, out=out, seed=seed, as_json=as_json, debug=debug)


def _simulate(n, kind, wl_span, sax_check, out, seed):
    _check_n(n)
    _check_choice(kind, KINDS, "--kind")
    out = _check_out(out)
    from tapmesh import stages  # after the checks: bad input fails at once, not after seconds of imports

    return stages.simulate(n=n, kind=kind, wl_span=wl_span, sax_check=sax_check, out=out, seed=seed)


KINDS = ("rectangular", "triangular")
TASKS = ("moons", "circles", "ring", "iris", "digits")
METHODS = ("insitu", "insitu_analog", "two_pass", "dfa", "spsa", "autodiff")


def _check_choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise UsageError(f"unknown {option} {value!r}; expected one of {', '.join(allowed)}")
    return value


@app.command("layout")
def layout_cmd(
    n: Optional[int] = typer.Option(None, "--n", help="Number of modes (default: the demo chip, a 6-mode triangular mesh)."),
    kind: str = typer.Option("triangular", "--kind", help="rectangular | triangular (with --n)."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also write chip.png, the layout with the chip map overlaid."),
    pdk: str = typer.Option("generic", "--pdk", help="PDK to lay out on: generic | ubcpdk | cspdk (foundry PDKs need tapmesh[NAME])."),
    pads: str = typer.Option("direct", "--pads", help="direct | bumps | edge: pad per heater on zone tracks, or dense routing to a bump array / edge pad field (with --n)."),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Lay out a chip (mesh with grating taps, fiber-array I/O, heaters routed to bond pads).

    Writes chip.gds, chip.png and chip_map.json (pad → heater, tap → segment, direction and grating
    position in µm, fiber port → mode) into --out; with --out NAME.gds, writes NAME.gds and NAME.png
    beside each other instead. Lengths in µm."""

    def run(n, kind, png, out, seed, pads="direct", pdk="generic"):
        _check_pdk(pdk)
        name = "chip"
        if Path(out).suffix.lower() == ".gds":
            out, name = Path(out).parent, Path(out).stem
        if n is not None:
            _check_n(n)
            _check_choice(kind, KINDS, "--kind")
        _check_choice(pads, ("direct", "bumps", "edge"), "--pads")
        out = _check_out(out)
        from tapmesh import stages

        return stages.layout(out, n=n, kind=kind, demo=n is None, png=png, name=name, pads=pads, pdk=pdk)

    command("layout")(run)(n=n, kind=kind, png=png, out=out, seed=seed, as_json=as_json, debug=debug, pads=pads,
                           pdk=pdk)


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
    driver: Optional[str] = typer.Option(None, "--driver", help="A Chip driver registered under the 'tapmesh.chips' entry points (a real bench). Default: a VirtualChip fabricated from --seed."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also plot residuals and fitted curves."),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Calibrate a chip: phase–voltage curves (rad/V²), coupler splitting errors (rad), crosstalk,
    global refinement; then error-corrected fidelity on random targets.

    Writes calibration.json (versioned, checksummed, written atomically) and calibration_summary.json."""

    def run(driver, png, out, seed):
        out = _check_out(out)
        from tapmesh import stages

        chip = stages.load_driver(driver) if driver else None
        if chip is None and not (out / "fabrication.json").exists():
            stages.fabricate(out, seed)
        return stages.calibrate(out, seed, chip=chip, png=png)

    command("calibrate")(run)(driver=driver, png=png, out=out, seed=seed, as_json=as_json, debug=debug)


@app.command("train")
def train_cmd(
    task: str = typer.Option("moons", "--task", help="moons | circles | ring | iris | digits"),
    method: str = typer.Option("insitu", "--method", help="insitu | insitu_analog | two_pass | dfa | spsa | autodiff"),
    layers: int = typer.Option(3, "--layers", help="Number of mesh layers."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs."),
    png: bool = typer.Option(True, "--png/--no-png"),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Train a network on the calibrated chip (reads calibration.json) next to its digital twin.

    Writes training.json, training_curves.png and (2-D tasks) decision_boundary.png."""

    def run(task, method, layers, epochs, png, out, seed):
        _check_choice(task, TASKS, "--task")
        _check_choice(method, METHODS, "--method")
        if layers < 1 or epochs < 1:
            raise UsageError("--layers and --epochs must be at least 1")
        out = _check_out(out)
        from tapmesh import stages

        return stages.train(out, seed, task=task, method=method, layers=layers, epochs=epochs, png=png)

    command("train")(run)(task=task, method=method, layers=layers, epochs=epochs, png=png, out=out, seed=seed, as_json=as_json, debug=debug)


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
            raise FileNotFoundError(f"--out folder {out} does not exist: run a stage first")
        from tapmesh import report

        path, status = report.build(out)
        return {"report": str(path), "sections": status}

    command("report")(run)(out=out, seed=seed, as_json=as_json, debug=debug)


@app.command("flow")
def flow_cmd(
    n: Optional[int] = typer.Option(None, "--n", help="Modes of a generic chip instead of the demo chip (6-mode triangular)."),
    kind: str = typer.Option("triangular", "--kind", help="rectangular | triangular (with --n)."),
    task: str = typer.Option("moons", "--task", help="moons | circles | ring | iris | digits"),
    method: str = typer.Option("insitu", "--method", help="Gradient method on the chip."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs."),
    fast: bool = typer.Option(False, "--fast", help="A small, quick setting (CI): fewer epochs, no SAX reference."),
    out: Path = OutOption,
    seed: int = SeedOption,
    as_json: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """The whole pipeline on the demo chip: layout → model extraction → fabricate a VirtualChip →
    calibrate → train in situ → report.html. Each stage writes its files into --out."""

    def run(n, kind, task, method, epochs, fast, out, seed):
        if n is not None:
            _check_n(n)
            _check_choice(kind, KINDS, "--kind")
        _check_choice(task, TASKS, "--task")
        _check_choice(method, METHODS, "--method")
        out = _check_out(out)
        from tapmesh import stages

        return stages.flow(out, seed, n=n, kind=kind, task=task, method=method, epochs=3 if fast else epochs, fast=fast)

    command("flow")(run)(n=n, kind=kind, task=task, method=method, epochs=epochs, fast=fast, out=out, seed=seed, as_json=as_json, debug=debug)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
