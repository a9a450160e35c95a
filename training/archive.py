"""The raw-measurement archive of a training run on chips: ``train(net, data, archive=path, resume=...)``.

Every Chip call of every physical chip of the network (training steps, dark frames and on-chip
evaluations alike) is appended as it happens to one HDF5 file, in calibrate's archive layout
(:class:`tapmesh.calibration.archive.Archive`), one group per physical chip: ``chip0``, ``chip1``, … in
the order the network first names them (a chip shared by several layers, or time-multiplexed, is one
group). The file's attributes hold ``kind = "train"``, format version
:data:`~tapmesh.calibration.archive.TRAIN_VERSION` and ``meta``: the train options, the network's
shape, a digest of the data set and which chip realizes which layer, so a resume with anything else is
an :class:`~tapmesh.calibration.archive.ArchiveError` before any chip call.

``resume=True`` replays each chip's recorded calls through a
:class:`~tapmesh.calibration.replay.ReplayChip` (every call checked against its record) and, where a
chip's record ends, goes on live on that chip (its state restored, ``frame_index`` set where the record
stopped). ``train`` is deterministic given its seed and its readings (numpy rng for batch order and the
methods, jax on the host), so the resumed run is the recorded one: equal phases and history (wall time
apart) for a chip whose noise is keyed by frame (``VirtualChip(keyed_noise=True)``, a bench). Layout and
rules: docs/bench.md ("Training archives").
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tapmesh.calibration.archive import FORMAT, TRAIN_VERSION, Archive, ArchiveError, open_file
from tapmesh.calibration.replay import ArchivingChip, ReplayChip, _meta

SESSION_ARGUMENTS = ("net", "dataset", "archive", "resume", "progress")
"""Arguments of ``train`` that are not options of the run (a resumed run may change ``progress``)."""


class TrainingArchive:
    """An open training archive: :attr:`meta` (options, network, data digest, ``layer_chips``) and one
    :class:`~tapmesh.calibration.archive.Archive` per physical chip in :attr:`chips`. Open with
    :meth:`create` or :meth:`open`; a context manager."""

    def __init__(self, path, handle, meta: dict, chips: list[Archive]):
        self.path, self._f, self.meta, self.chips = Path(path), handle, meta, chips

    @classmethod
    def create(cls, path, meta: dict, chips) -> "TrainingArchive":
        """A new training archive at ``path`` for ``chips`` (refused if the file exists)."""
        import h5py

        path = Path(path)
        if path.exists():
            raise ArchiveError(f"archive {path} exists; pass resume=True to continue it, or choose a new path")
        f = h5py.File(path, "w")
        f.attrs.update(format=FORMAT, version=TRAIN_VERSION, kind="train", meta=json.dumps(meta))
        groups = [Archive.create_group(path, f, f"chip{i}", int(c.n_modes), int(c.n_heaters), _meta(c, {}))
                  for i, c in enumerate(chips)]
        f.flush()
        return cls(path, f, meta, groups)

    @classmethod
    def open(cls, path, mode: str = "r") -> "TrainingArchive":
        """Open a training archive to read (``"r"``) or to append (``"a"``: each chip's rows past its
        committed count, cut off by a crash, are dropped)."""
        path = Path(path)
        f = open_file(path, mode, "training archive", "is not a tapmesh training archive (a calibration archive "
                      "opens with tapmesh.calibration.archive.Archive.open)", kind="train")
        meta = json.loads(f.attrs["meta"])
        n = int(meta["n_chips"])
        chips = [Archive.of_group(path, f[f"chip{i}"], writable=mode != "r") for i in range(n)]
        return cls(path, f, meta, chips)

    @property
    def n_calls(self) -> list[int]:
        """Committed calls per chip."""
        return [a.n_calls for a in self.chips]

    @property
    def n_readings(self) -> list[int]:
        """Frames and meter readings recorded per chip."""
        return [a.n_readings for a in self.chips]

    def to_xarray(self) -> dict:
        """``{"chip0": Dataset, …}``: each chip's calls as :meth:`Archive.to_xarray` gives them, with the
        layers it realized in the attribute ``layers``."""
        out = {}
        for i, archive in enumerate(self.chips):
            ds = archive.to_xarray()
            ds.attrs["layers"] = json.dumps([l for l, c in enumerate(self.meta["layer_chips"]) if c == i])
            ds.attrs["train_options"] = json.dumps(self.meta["options"])
            out[f"chip{i}"] = ds
        return out

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_training_archive(path) -> dict:
    """A training archive's runs, read back: ``{"meta": …, "chips": {"chip0": xarray.Dataset, …}}``."""
    with TrainingArchive.open(path) as archive:
        return {"meta": archive.meta, "chips": archive.to_xarray()}


# ============================================================================= the options of a run
def _jsonable(value):
    """``value`` as JSON (arrays as lists; an object JSON cannot hold as its type name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__array__"):
        return np.asarray(value).tolist()
    if callable(value):
        return f"callable:{getattr(value, '__name__', type(value).__name__)}"
    return f"object:{type(value).__name__}"


def data_digest(dataset) -> str:
    """SHA-256 (hex, 16 digits) of a data set's arrays: a resume on other data is refused."""
    h = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a = np.ascontiguousarray(getattr(dataset, name))
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _physical(net) -> tuple[list, list[int]]:
    """(the distinct chips of ``net`` in first-named order, each entry of ``net.chips``'s index in them)."""
    distinct, index = [], []
    for chip in net.chips:
        for i, seen in enumerate(distinct):
            if seen is chip:
                index.append(i)
                break
        else:
            distinct.append(chip)
            index.append(len(distinct) - 1)
    return distinct, index


def run_meta(arguments: dict, layer_chips: list[int]) -> dict:
    """The archive's ``meta``: options (JSON, as a resume compares them), network shape, data digest."""
    net, dataset = arguments["net"], arguments["dataset"]
    options = {k: _jsonable(v) for k, v in arguments.items() if k not in SESSION_ARGUMENTS}
    if arguments.get("optimizer") is not None:
        options["optimizer"] = "custom (not checked on resume)"
    options["network"] = {
        "topology": {"n": int(net.topology.n), "kind": str(net.topology.kind)}, "n_layers": net.n_layers,
        "n_classes": net.n_classes, "activation": net.activation.kind, "encoding": net.encoding.kind,
        "loss": net.loss_kind, "dtype": str(net.dtype), "temperature": net.temperature, "groups": _jsonable(net.groups),
    }
    options["data"] = {"name": dataset.name, "n_train": len(dataset.y_train), "n_test": len(dataset.y_test),
                       "sha256": data_digest(dataset)}
    options = json.loads(json.dumps(options))  # as it reads back (tuples → lists)
    return {"options": options, "n_chips": max(layer_chips) + 1, "layer_chips": layer_chips}


# ============================================================================= train(archive=...)
@contextmanager
def archived_chips(net, path, resume: bool, arguments: dict):
    """Within the block, ``net.chips`` record into (or replay from, then continue) the training archive
    at ``path``; yields the open :class:`TrainingArchive` and, when resuming, the calls each chip had.

    Raises:
        ArchiveError: ``path`` exists without ``resume``; ``resume`` with no archive at ``path``; the
            archive was recorded with other options, data, network or chips.
    """
    path = Path(path)
    chips, layer_chips = _physical(net)
    meta = run_meta(arguments, layer_chips)
    if resume:
        if not path.exists():
            raise ArchiveError(f"resume=True but there is no training archive at {path}: start the run without resume")
        archive = TrainingArchive.open(path, "a")
        recorded = archive.meta
        changed = sorted(k for k in set(recorded["options"]) | set(meta["options"])
                         if recorded["options"].get(k) != meta["options"].get(k))
        if recorded["layer_chips"] != layer_chips:
            changed.append("layer_chips")
        if changed:
            archive.close()
            raise ArchiveError(f"archive {path} was recorded with other options ({', '.join(changed)}); resume needs the same")
        try:
            wrapped = [ReplayChip(a, live=c) for a, c in zip(archive.chips, chips)]
        except ArchiveError:
            archive.close()
            raise
        resumed_at = archive.n_calls
    else:
        archive = TrainingArchive.create(path, meta, chips)
        wrapped = [ArchivingChip(c, a) for a, c in zip(archive.chips, chips)]
        resumed_at = None
    originals = net.chips
    for w in wrapped:  # a wrapper is new: nothing the network remembers may be keyed by its id
        net._programmed.pop(id(w), None)
        net._dark.pop(id(w), None)
    net.chips = tuple(wrapped[i] for i in layer_chips)
    try:
        yield archive, resumed_at
    finally:
        net.chips = originals
        for w, c in zip(wrapped, chips):  # what the network knows of a wrapper it knows of the chip below
            programmed, dark = net._programmed.pop(id(w), None), net._dark.pop(id(w), None)
            live = not (isinstance(w, ReplayChip) and w._recorder is None)  # a replay that never went live set nothing
            net._programmed.pop(id(c), None)
            if programmed is not None and live:
                net._programmed[id(c)] = programmed
            if dark is not None:
                net._dark[id(c)] = dark
        archive.close()


def archived_training(train, arguments: dict):
    """Run ``train`` with ``arguments`` (its own, as :func:`locals` gave them) on chips that record into
    ``arguments["archive"]`` (or replay it and continue, with ``resume``); the result's ``archive`` names it."""
    import inspect

    arguments = {k: v for k, v in arguments.items() if k in inspect.signature(train).parameters}
    net = arguments["net"]
    path = Path(arguments["archive"])
    run = {k: v for k, v in arguments.items() if k not in ("archive", "resume")}
    with archived_chips(net, path, bool(arguments["resume"]), arguments) as (archive, resumed_at):
        result = train(**run)
        result.archive = {"path": str(path), "calls": archive.n_calls, "readings": archive.n_readings,
                          **({"resumed_at_calls": resumed_at} if resumed_at is not None else {})}
    return result
