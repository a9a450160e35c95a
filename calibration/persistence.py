"""Persistence of a :class:`tapmesh.calibration.Calibration`: a checksummed, versioned JSON file.

:func:`save` writes the format (atomically), :func:`load` reads it back and refuses corrupt files and
newer format versions; arrays keep non-finite values as strings so the JSON stays strict. The format is
described in docs/calibration.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tapmesh import circuits
from tapmesh.circuits.io import atomic_write_text
from tapmesh.calibration.crosstalk import Crosstalk
from tapmesh.calibration.errors import CalibrationFileError, CalibrationVersionError

if TYPE_CHECKING:
    from tapmesh.calibration.calibration import Calibration

FORMAT = "tapmesh-calibration"
FORMAT_VERSION = 3
"""Version of the JSON file format written by :meth:`Calibration.save`; files with a newer version are refused.
Version 2 adds the optional ``"quality"`` verdict (absent: ``None``); version 3 the idle segments' loss
``"idle_loss_db"`` (absent: zeros, as every chip before balanced taps); older files load unchanged."""

ARRAYS = (
    "phase_offsets", "alpha", "beta", "delta", "loss_db", "output_loss_db", "tap_fraction",
    "tap_efficiency", "tap_offset",
)
"""The array attributes of a :class:`Calibration` stored as they are."""


def to_dict(cal: Calibration) -> dict:
    """A JSON-ready dict of everything but the checksum."""
    x = cal.crosstalk  # row-major (rows, cols, values): the order np.nonzero gave a dense X
    return {
        "topology": {"kind": cal.topology.kind, "n": cal.topology.n},
        **{name: _encode(getattr(cal, name)) for name in ARRAYS},
        # written only where it says something: a file with no idle loss reads the same in every version
        **({"idle_loss_db": _encode(cal.idle_loss_db)} if np.any(cal.idle_loss_db) else {}),
        "crosstalk": {"rows": x.rows.tolist(), "cols": x.cols.tolist(), "values": _encode(x.values)},
        "uncertainties": {k: _encode(v) for k, v in cal.uncertainties.items()},
        "residuals": {k: _encode(v) for k, v in cal.residuals.items()},
        "fits": {k: _encode(v) for k, v in cal.fits.items()},
        "n_measurements": int(cal.n_measurements),
        "dead_heaters": [int(i) for i in cal.dead_heaters],
        "dark_taps": [int(i) for i in cal.dark_taps],
        "info": _jsonable(cal.info),
        **({"quality": _jsonable(cal.quality.to_dict())} if cal.quality is not None else {}),
    }


def from_dict(cls: type[Calibration], data: dict) -> Calibration:
    """The :class:`Calibration` (of class ``cls``) that :func:`to_dict` gave ``data``."""
    top = circuits.topology(int(data["topology"]["n"]), data["topology"]["kind"])
    h = top.n_shifters
    x = data["crosstalk"]
    crosstalk = Crosstalk(h, np.asarray(x["rows"], dtype=int), np.asarray(x["cols"], dtype=int), _decode(x["values"]))
    arrays = {name: _decode(data[name]) for name in ARRAYS}
    _check_shapes(arrays, top)
    idle = _decode(data["idle_loss_db"]) if "idle_loss_db" in data else np.zeros(top.n_idle)
    if np.shape(idle) != (top.n_idle,):
        raise ValueError(f"idle_loss_db has shape {np.shape(idle)}, a {top.n}-mode {top.kind} mesh needs ({top.n_idle},)")
    if len(crosstalk.rows) != len(crosstalk.cols) or len(crosstalk.rows) != np.size(crosstalk.values) or (
        len(crosstalk.rows) and (min(crosstalk.rows.min(), crosstalk.cols.min()) < 0 or max(crosstalk.rows.max(), crosstalk.cols.max()) >= h)
    ):
        raise ValueError(f"crosstalk pairs must index the {h} heaters of a {top.n}-mode {top.kind} mesh")
    return cls(
        topology=top,
        **arrays,
        crosstalk=crosstalk,
        uncertainties={k: _decode(v) for k, v in data.get("uncertainties", {}).items()},
        residuals={k: _decode(v) for k, v in data.get("residuals", {}).items()},
        fits={k: _decode(v) for k, v in data.get("fits", {}).items()},
        n_measurements=int(data.get("n_measurements", 0)),
        dead_heaters=tuple(int(i) for i in data.get("dead_heaters", ())),
        dark_taps=tuple(int(i) for i in data.get("dark_taps", ())),
        info=dict(data.get("info", {})),
        quality=_quality(data.get("quality")),
        idle_loss_db=idle,
    )


def _quality(data):
    if data is None:
        return None
    from tapmesh.calibration.quality import Quality

    return Quality.from_dict({k: (float(v) if isinstance(v, str) and v in ("nan", "inf", "-inf") else v)
                              for k, v in data.items()})


def array_shapes(topology: circuits.MeshTopology) -> dict[str, tuple[int, ...]]:
    """The shape of each array of :data:`ARRAYS` for ``topology`` (K MZIs, n modes, h heaters)."""
    k, n, h = topology.n_mzis, topology.n, topology.n_shifters
    return {"phase_offsets": (h,), "alpha": (h,), "beta": (h,), "delta": (k, 2), "loss_db": (k, 4),
            "output_loss_db": (n,), "tap_fraction": (h,), "tap_efficiency": (2, h), "tap_offset": (2, h)}


def _check_shapes(arrays: dict[str, np.ndarray], topology: circuits.MeshTopology) -> None:
    for name, shape in array_shapes(topology).items():
        if np.shape(arrays[name]) != shape:
            raise ValueError(
                f"{name} has shape {np.shape(arrays[name])}, a {topology.n}-mode {topology.kind} mesh needs {shape}"
            )


def save(cal: Calibration, path) -> Path:
    """Write the calibration to ``path`` as JSON (format version, SHA-256 checksum of the payload).

    The write is atomic: a temporary file in the same folder is flushed, synced and renamed over
    ``path``, so a failed save leaves any previous file untouched."""
    path = Path(path)
    if cal.quality is not None and not cal.quality.passed:
        from tapmesh.calibration.quality import failed_path

        path = failed_path(path)
    payload = to_dict(cal)
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "checksum": _checksum(payload),
        "calibration": payload,
    }
    return atomic_write_text(path, json.dumps(document, allow_nan=False))


def load(cls: type[Calibration], path) -> Calibration:
    """Read a file written by :func:`save`. Raises :class:`CalibrationFileError` if it is missing,
    not JSON, not a tapmesh calibration or fails its checksum, :class:`CalibrationVersionError` if it
    was written by a newer format version."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CalibrationFileError(f"cannot read calibration file {path}: {error}") from error
    except UnicodeDecodeError as error:
        raise CalibrationFileError(f"calibration file {path} is not text (a binary file?): {error}") from error
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CalibrationFileError(f"calibration file {path} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CalibrationFileError(f"{path} is not a tapmesh calibration file")
    version = document.get("version")
    if not isinstance(version, int):
        raise CalibrationFileError(f"{path} has no valid format version")
    if version > FORMAT_VERSION:
        raise CalibrationVersionError(
            f"{path} has format version {version}; this tapmesh reads versions up to {FORMAT_VERSION}"
        )
    payload = document.get("calibration")
    if not isinstance(payload, dict) or document.get("checksum") != _checksum(payload):
        raise CalibrationFileError(f"{path} fails its checksum: the file is corrupt or was edited")
    try:
        return from_dict(cls, payload)
    except (KeyError, TypeError, ValueError) as error:
        raise CalibrationFileError(f"{path} is missing or has malformed fields: {error}") from error


def _encode(a):
    """Array → nested lists with non-finite values as strings (strict JSON)."""
    a = np.asarray(a, dtype=float)
    if np.all(np.isfinite(a)):
        return {"shape": list(a.shape), "data": a.ravel().tolist()}
    data = [x if math.isfinite(x) else repr(x) for x in a.ravel().tolist()]
    return {"shape": list(a.shape), "data": data}


def _decode(d) -> np.ndarray:
    data = [float(x) for x in d["data"]]
    return np.asarray(data, dtype=float).reshape(d["shape"])


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def _checksum(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
