"""What every ``tapmesh`` sub-command shares: the common options, exit codes, and :func:`command`, the
wrapper that turns a sub-command's ``run`` into one-line errors, a printed summary, the report and the
``--json`` line. Sub-commands in their own modules (``tapmesh yield``, ``tapmesh bench-emulator``) import
it from here, so that :mod:`tapmesh.cli` can register them without an import cycle.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import typer

from tapmesh.options import UsageError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
KINDS = ("rectangular", "triangular")
TASKS = ("moons", "circles", "ring", "iris", "digits")
METHODS = ("insitu", "insitu_analog", "two_pass", "dfa", "spsa", "autodiff")
LAYOUT_N_MAX = 64  # pcells draws meshes of up to 64 modes
WL_SPAN_MIN_UM, WL_SPAN_MAX_UM = 0.001, 1.0
MAX_MODES = 1024  # = tapmesh.circuits.arguments.MAX_MODES (not imported: option checks must not wait for jax)

OutOption = typer.Option(Path("out"), "--out", help="Folder for every file the command writes.")
SeedOption = typer.Option(0, "--seed", min=0, help="Seed of every random choice (fabrication errors, noise, data split); ≥ 0.")
ForceOption = typer.Option(False, "--force", help="Replace the chip that --out holds when it is another one.")
JsonOption = typer.Option(False, "--json", help="Print a machine-readable summary as the last line.")
DebugOption = typer.Option(False, "--debug", help="Show the full traceback on errors.")


def _is_bad_input(error: BaseException) -> bool:
    return isinstance(error, (ValueError, TypeError, LookupError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError))


def _error_line(name: str, error: BaseException) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, UsageError):
        return f"tapmesh {name}: error: {message}"
    return f"tapmesh {name}: error: {type(error).__name__}: {message}"


def _print_summary(summary: dict[str, Any]) -> None:
    for line in summary.get("headline", ()):
        typer.echo(line)
    files = summary.get("files") or []
    if files:
        typer.echo("wrote: " + ", ".join(str(f) for f in files))
    if summary.get("report"):
        typer.echo(f"report: {summary['report']}")


def command(name: str, report: bool = True) -> Callable:
    """Wrap a sub-command's ``run``: one-line errors with exit codes, a printed summary, the report
    rebuilt from what ``--out`` holds (``report``), the ``--json`` line, the ``--debug`` traceback."""

    def decorate(fn: Callable[..., dict[str, Any]]) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            as_json = kwargs.pop("as_json", False)
            debug = kwargs.pop("debug", False)
            try:
                summary = fn(*args, **kwargs)
                if report and "out" in kwargs and not summary.get("report"):
                    from tapmesh import report as report_module

                    folder = Path(summary.pop("out_folder", kwargs["out"]))
                    summary["report"] = str(report_module.build(folder, command=_command_line())[0])
            except typer.Exit:
                raise
            except Exception as error:  # noqa: BLE001 - every failure becomes one clear line
                if debug:
                    traceback.print_exc()
                typer.echo(_error_line(name, error), err=True)
                raise typer.Exit(EXIT_BAD_INPUT if _is_bad_input(error) else EXIT_FAILED)
            _print_summary(summary)
            if as_json:
                payload = {k: v for k, v in summary.items() if k != "headline"}
                typer.echo(json.dumps({"command": name, **payload}, default=_json_default, sort_keys=True))
            return summary

        return wrapper

    return decorate


def _command_line() -> str:
    """The command as typed (for the report)."""
    return " ".join(["tapmesh", *sys.argv[1:]])


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")
