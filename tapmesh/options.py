"""Checks of command-line options, shared by every sub-command: each runs before any work or file write
and fails with one :class:`UsageError` line that names the option. Also the check that an output
folder holds the chip a command is asked about (``--force`` to replace it)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable


class UsageError(ValueError):
    """Bad command-line input (reported as one line naming the option, exit code 2)."""


# Numeric ranges are declared on the typer options themselves (``typer.Option(0, min=0)``): click checks them
# while parsing, before any work, and names the option. Click's ranges let NaN through; this closes that gap.
def finite_option(value: float, option: str) -> float:
    """A float option that must be finite (click's FloatRange accepts ``nan``)."""
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value}")
    return value


def choice_option(value: str, allowed: Iterable[str], option: str) -> str:
    """One of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise UsageError(f"unknown {option} {value!r}; expected one of {', '.join(allowed)}")
    return value


def stagger_option(value: str, pads: str, option: str = "--pad-stagger") -> float | str | None:
    """``none`` → None (aligned edge pad rows), ``auto``, or a row offset in µm (finite, > 0); only with
    ``--pads edge``."""
    value = str(value).strip().lower()
    if value == "none":
        return None
    if pads != "edge":
        raise UsageError(f"{option} {value} applies to --pads edge only, not --pads {pads}")
    if value == "auto":
        return "auto"
    try:
        offset = float(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected none, auto or a row offset in µm") from None
    if not math.isfinite(offset) or offset <= 0:
        raise UsageError(f"{option} {value}: a row offset must be a finite number of µm > 0")
    return offset


def out_option(out: Path, option: str = "--out") -> Path:
    """An output folder that exists (created, with its parents) and is writable."""
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            what = "is a file" if parent == out else f"is under {parent}, which is a file"
            raise UsageError(f"{option} {out} {what}, not a folder")
        if parent.exists():
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{option} {out}: cannot create the folder ({error.strerror})") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"{option} {out} is not writable")
    return out


# ------------------------------------------------------------------------------- which chip a folder holds
def calibration_file(out: Path) -> Path:
    """``out/calibration.json``, or FileNotFoundError saying which stage writes it (checked before imports)."""
    path = Path(out) / "calibration.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `tapmesh calibrate --out {out}` first")
    return path


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def describe_chip(record: dict[str, Any]) -> str:
    """``record`` (layout.json / fabrication.json) in words: ``'the demo chip'``, ``'8-mode rectangular'``."""
    if record.get("demo"):
        return "the demo chip (6-mode triangular)"
    return f"a {record.get('n')}-mode {record.get('kind')} chip"


def folder_chip(out: Path) -> dict[str, Any]:
    """What ``out`` holds: ``layout`` (layout.json) and ``fabrication`` (fabrication.json), each a dict
    or ``None``."""
    return {"layout": _read(Path(out) / "layout.json"), "fabrication": _read(Path(out) / "fabrication.json")}


def check_same_chip(out: Path, *, seed: int | None = None, layout: dict[str, Any] | None = None, force: bool = False) -> list[str]:
    """Refuse to reuse a folder that holds another chip than the one asked for.

    ``seed``: the fabrication seed asked for (``None``: whatever the folder holds). ``layout``: the chip
    to lay out, ``{"demo": bool, "n": int, "kind": str}`` and optionally ``"pads"``, ``"pdk"`` and
    ``"pad_stagger"``, ``"balanced_taps"`` (a layout drawn with other pads or on another PDK is another chip; ``None``: the folder's). Returns what
    ``--force`` will replace (empty when nothing differs); raises :class:`UsageError` naming the
    option when something differs and ``force`` is off."""
    held = folder_chip(out)
    lay, fab = held["layout"], held["fabrication"]
    clashes = []
    if layout is not None and lay is not None:
        same = bool(lay.get("demo")) == bool(layout["demo"]) and (
            layout["demo"] or (lay.get("n"), lay.get("kind")) == (layout["n"], layout["kind"])
        )
        if not same:
            clashes.append(f"it holds the layout of {describe_chip(lay)}, not {describe_chip(layout)}")
        held_process = {"pads": lay.get("pads", "direct"), "pdk": lay.get("pdk", (lay.get("summary") or {}).get("pdk", "generic")),
                        "pad_stagger": lay.get("pad_stagger", "none"), "balanced_taps": lay.get("balanced_taps", False)}
        for key, held_value in held_process.items():
            if key in layout and layout[key] != held_value:
                flag = "--" + key.replace("_", "-")
                if isinstance(held_value, bool):
                    clashes.append(f"its layout was drawn {'with' if held_value else 'without'} {flag}")
                else:
                    clashes.append(f"its layout was drawn with {flag} {held_value}, not {flag} {layout[key]}")
    if fab is not None:
        if seed is not None and fab.get("seed") != seed:
            clashes.append(f"its chip was fabricated with --seed {fab.get('seed')} (fabrication.json), not --seed {seed}")
        chosen = layout or lay
        if chosen is not None and not chosen.get("demo") and (fab.get("n"), fab.get("kind")) != (chosen["n"], chosen["kind"]):
            clashes.append(f"fabrication.json is {describe_chip(fab)}, the layout {describe_chip(chosen)}")
    if clashes and not force:
        raise UsageError(f"--out {out} holds another chip: {'; '.join(clashes)}. Pass --force to replace it")
    return clashes
