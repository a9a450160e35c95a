"""The raw-measurement archive: every Chip call of a run and its result, appended to an HDF5 file as it
happens, and replayed in order to re-fit offline or to resume an interrupted run.

:class:`ArchivingChip` wraps any Chip and records each ``set_voltages``, ``inject`` and ``read_*`` (and
the readings, and raw camera frames where the chip exposes ``last_frames``) into an :class:`Archive`.
:class:`ReplayChip` serves the recorded results in order and checks that every call matches its record
(same voltages, same fields, same side and direction); past the end it hands over to a live chip,
restoring its state, and goes on recording. Since ``calibrate`` is deterministic given its seed and the
readings, a calibration on a ReplayChip is the recorded calibration: that is ``calibration.refit`` and
``calibrate(..., resume=True)``. docs/bench.md ("The archive") gives the layout and its crash safety.

Crash safety: each record is written (rows, then its ``calls`` row, then the committed count in the
file's attributes) and flushed before the call returns; rows past the committed count are dropped when
the file is opened again, so a process killed at any point leaves every committed record readable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from tapmesh.calibration.errors import CalibrationError

FORMAT = "tapmesh-archive"
VERSION = 1
"""The version calibrate's single-chip archives are written with (the layout at the file's root)."""
TRAIN_VERSION = 2
"""Training archives (one group of this layout per chip, :mod:`tapmesh.training.archive`): version 2, so a
tapmesh that reads only version 1 refuses them by name instead of failing on a missing table."""
OPS = ("set_voltages", "inject", "read_taps", "read_outputs", "read_outputs_coherent")
SIDES = ("input", "output")
DIRECTIONS = ("forward", "backward")
FLAG_SINGLE, FLAG_NOT_IMPLEMENTED = 1, 2
TABLES = {"settings": "set_voltages", "injections": "inject", "taps": "read_taps", "outputs": "read_outputs",
          "coherent": "read_outputs_coherent"}
CALL_COLUMNS = ("op", "arg", "start", "count", "flags", "frame_index")
CALL_DTYPE = np.dtype([(c, "<i8") for c in CALL_COLUMNS])


class ArchiveError(CalibrationError):
    """An archive is missing, not a tapmesh archive, of another chip, or used against its rules."""


class ReplayMismatchError(ArchiveError):
    """A replayed run asked for something other than what the archive recorded at that call."""


class ArchiveExhaustedError(ArchiveError):
    """A replay without a live chip asked for more calls than the archive holds."""


def open_file(path: Path, mode: str, what: str, not_ours: str, kind: str | None = None):
    """The HDF5 file of a tapmesh archive at ``path`` (h5py ``mode``), or :class:`ArchiveError`: missing,
    unreadable, not ours (``f"{path} {not_ours}"``; also when ``kind`` is given and the file's differs) or
    of a newer format version than this tapmesh reads."""
    import h5py

    if not path.exists():
        raise ArchiveError(f"{what} {path} not found")
    try:
        f = h5py.File(path, mode)
    except OSError as error:
        raise ArchiveError(f"archive {path} cannot be opened: {error}") from None
    if f.attrs.get("format") != FORMAT or (kind is not None and f.attrs.get("kind") != kind):
        f.close()
        raise ArchiveError(f"{path} {not_ours}")
    if int(f.attrs["version"]) > TRAIN_VERSION:
        f.close()
        raise ArchiveError(f"archive {path} has format version {f.attrs['version']}; this tapmesh reads ≤ {TRAIN_VERSION}")
    return f


class Archive:
    """An append-only HDF5 store of Chip calls (see the module doc). Open with :meth:`create` or :meth:`open`.

    Layout: ``calls`` (one compound row per call: op, arg (side / direction index), start and count of
    its rows in its table, flags, the chip's ``frame_index`` after it); tables ``settings`` (S, H) V,
    ``injections`` (F, n) √mW, ``taps`` (T, H) mW, ``outputs`` (P, n) mW, ``coherent`` (Q, n) √mW;
    ``images`` (T, rows, cols) raw frames when recorded. ``attrs["meta"]`` (JSON) holds the chip's size,
    topology, capabilities and the run's options; ``attrs["n_calls"]`` the committed count.
    """

    def __init__(self, path, handle, meta: dict, owner: bool = True):
        self.path, self._f, self.meta, self._owner = Path(path), handle, meta, bool(owner)
        self.n_calls = int(handle.attrs["n_calls"])
        self._d = {name: handle[name] for name in ("calls", *TABLES) if name in handle}
        recorded = handle["calls"][: self.n_calls]
        self._calls = {c: recorded[c].tolist() for c in CALL_COLUMNS}
        self._length = {name: 0 for name in (*TABLES, "images")}
        for name, op in TABLES.items():
            mine = np.flatnonzero(np.asarray(self._calls["op"], dtype=int) == OPS.index(op))
            if mine.size:
                last = mine[-1]
                self._length[name] = int(self._calls["start"][last] + self._calls["count"][last])
        self._length["images"] = min(self._length["taps"], handle["images"].shape[0]) if "images" in handle else 0
        self._call_rows = self.n_calls

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(cls, path, n_modes: int, n_heaters: int, meta: dict | None = None) -> "Archive":
        """A new archive at ``path`` (refused if the file exists: archives are append-only)."""
        import h5py

        path = Path(path)
        if path.exists():
            raise ArchiveError(f"archive {path} exists; resume it (resume=True) or choose a new path")
        f = h5py.File(path, "w")
        f.attrs.update(format=FORMAT, version=VERSION)
        return cls._start(path, f, n_modes, n_heaters, meta, owner=True)

    @classmethod
    def _start(cls, path, f, n_modes: int, n_heaters: int, meta: dict | None, owner: bool) -> "Archive":
        """Lay out an empty archive in the HDF5 group ``f`` (a file's root, or one chip's group)."""
        meta = {"n_modes": int(n_modes), "n_heaters": int(n_heaters), **(meta or {})}
        f.attrs.update(meta=json.dumps(meta), n_calls=0)
        f.create_dataset("calls", shape=(0,), maxshape=(None,), chunks=(1024,), dtype=CALL_DTYPE)
        shapes = {"settings": (n_heaters, "f8"), "injections": (n_modes, "c16"), "taps": (n_heaters, "f8"),
                  "outputs": (n_modes, "f8"), "coherent": (n_modes, "c16")}
        for name, (width, dtype) in shapes.items():
            f.create_dataset(name, shape=(0, width), maxshape=(None, width), chunks=(256, width), dtype=dtype)
        f.file.flush()
        return cls(path, f, meta, owner=owner)

    @classmethod
    def create_group(cls, path, parent, name: str, n_modes: int, n_heaters: int, meta: dict | None = None) -> "Archive":
        """A new archive in group ``name`` of the open HDF5 file or group ``parent`` (the file at ``path``
        stays its owner's to close)."""
        return cls._start(path, parent.create_group(name), n_modes, n_heaters, meta, owner=False)

    @classmethod
    def of_group(cls, path, group, writable: bool = False) -> "Archive":
        """The archive in an open HDF5 ``group`` (rows past its committed count dropped when ``writable``)."""
        archive = cls(path, group, json.loads(group.attrs["meta"]), owner=False)
        if writable:
            archive._truncate()
        return archive

    @classmethod
    def open(cls, path, mode: str = "r") -> "Archive":
        """Open an archive to read (``"r"``) or to append (``"a"``); rows past the committed count (a
        record cut off by a crash) are dropped."""
        path = Path(path)
        f = open_file(path, mode, "archive", "is not a tapmesh archive")
        if f.attrs.get("kind") == "train":
            f.close()
            raise ArchiveError(f"archive {path} is a training archive (one run per chip): open it with "
                               "tapmesh.training.TrainingArchive.open")
        archive = cls(path, f, json.loads(f.attrs["meta"]))
        if mode != "r":
            archive._truncate()
        return archive

    def _truncate(self) -> None:
        f = self._f
        f["calls"].resize((self.n_calls,))
        for name in TABLES:
            f[name].resize(self._length[name], axis=0)
        if "images" in f:
            f["images"].resize(self._length["images"], axis=0)
        f.file.flush()

    def close(self) -> None:
        """Close the file (an archive in a group of a training archive leaves that to its owner)."""
        if self._owner and self._f.id.valid:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ writing
    def _rows(self, name: str, rows: np.ndarray) -> int:
        d = self._d.get(name) or self._d.setdefault(name, self._f[name])
        start = self._length[name]
        if d.shape[0] < start + len(rows):
            d.resize(max(start + len(rows), 2 * d.shape[0], 256), axis=0)
        d[start : start + len(rows)] = rows
        self._length[name] = start + len(rows)
        return start

    def append(self, op: str, arg: int = -1, rows: np.ndarray | None = None, flags: int = 0, frame_index: int = -1,
               images: np.ndarray | None = None, flush: bool = True) -> None:
        """Record one call, committed; flushed to the file before returning unless ``flush=False`` (then
        with the next flushed record: settings and injections take no frame, so losing them to a crash
        only means the resumed run sets them again)."""
        f = self._f
        table = next(name for name, o in TABLES.items() if o == op)
        rows = np.zeros((0, f[table].shape[1])) if rows is None else np.atleast_2d(rows)
        start = self._rows(table, rows)
        if images is not None and len(images) == len(rows):
            if "images" not in f:
                f.create_dataset("images", shape=(0, *images.shape[1:]), maxshape=(None, *images.shape[1:]),
                                 chunks=(1, *images.shape[1:]), dtype=images.dtype, compression="lzf")
            self._length["images"] = start  # images align with the taps rows
            self._rows("images", images)
        values = (OPS.index(op), arg, start, len(rows), flags, frame_index)
        i = self._call_rows
        d = self._d["calls"]
        if d.shape[0] <= i:
            d.resize((max(2 * d.shape[0], 1024),))
        d[i] = np.array(values, dtype=np.int64).view(CALL_DTYPE)
        for column, value in zip(CALL_COLUMNS, values):
            self._calls[column].append(int(value))
        self._call_rows = self.n_calls = i + 1
        f.attrs["n_calls"] = self.n_calls  # the commit point
        if flush:
            f.file.flush()

    # ------------------------------------------------------------------ reading
    def call(self, i: int) -> dict:
        """Record ``i``: ``op``, ``arg``, ``flags``, ``frame_index`` and its ``rows`` (array)."""
        if not 0 <= i < self.n_calls:
            raise IndexError(i)
        c = {column: int(self._calls[column][i]) for column in CALL_COLUMNS}
        op = OPS[c["op"]]
        table = next(name for name, o in TABLES.items() if o == op)
        rows = self._d[table][c["start"] : c["start"] + c["count"]]
        return {"op": op, "arg": c["arg"], "flags": c["flags"], "frame_index": c["frame_index"], "rows": rows}

    @property
    def n_readings(self) -> int:
        """Frames and meter readings recorded (rows of taps, outputs, coherent)."""
        return sum(self._length[name] for name in ("taps", "outputs", "coherent"))

    def table(self, name: str) -> np.ndarray:
        return self._f[name][: self._length[name]]

    def to_xarray(self):
        """The archive as an ``xarray.Dataset``: dims ``step`` (calls), ``setting``, ``frame`` (tap frames),
        ``heater``, ``mode``; coordinates ``step``/``setting``/``direction`` on every frame, ``voltages``
        on every setting."""
        import xarray as xr

        calls = {column: np.asarray(values, dtype=int) for column, values in self._calls.items()}
        ops = calls["op"]
        frames = np.flatnonzero(ops == OPS.index("read_taps"))
        per_frame = np.repeat(frames, calls["count"][frames])
        setting_of_call = np.cumsum(ops == OPS.index("set_voltages")) - 1
        taps = self.table("taps")
        data = {
            "taps": (("frame", "heater"), taps, {"units": "mW"}),
            "voltages": (("setting", "heater"), self.table("settings"), {"units": "V"}),
        }
        coords = {
            "frame": np.arange(len(taps)),
            "step": ("frame", per_frame),
            "setting": np.arange(self._length["settings"]),
            "frame_setting": ("frame", setting_of_call[per_frame]),
            "direction": ("frame", np.asarray(DIRECTIONS)[np.repeat(calls["arg"][frames], calls["count"][frames])]),
        }
        if self._length["outputs"]:
            data["outputs"] = (("reading", "mode"), self.table("outputs"), {"units": "mW"})
        return xr.Dataset(data, coords=coords, attrs={"format": FORMAT, "meta": json.dumps(self.meta)})


# ============================================================================= capabilities as JSON
def capabilities_to_json(caps) -> dict | None:
    """A :class:`tapmesh.calibration.Capabilities` as JSON-able dict (None stays None)."""
    if caps is None:
        return None
    out = {}
    for f in fields(caps):
        value = getattr(caps, f.name)
        out[f.name] = asdict(value) if f.name == "costs" else (value.tolist() if isinstance(value, np.ndarray) else value)
    return out


def capabilities_from_json(data: dict | None):
    if data is None:
        return None
    from tapmesh.calibration.capabilities import BenchCosts, Capabilities

    values = dict(data)
    values["costs"] = BenchCosts(**values["costs"])
    for key in ("drive_min", "drive_max", "heater_resistance_ohm"):
        if isinstance(values.get(key), list):
            values[key] = np.asarray(values[key], dtype=float)
    return Capabilities(**values)
