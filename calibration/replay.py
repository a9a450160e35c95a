"""Chips that record into and replay from a raw-measurement archive (:mod:`tapmesh.calibration.archive`).

:class:`ArchivingChip` proxies a live chip and records every call as it returns; :class:`ReplayChip`
serves an archive's calls in order, checking each against its record, and hands over to a live chip
(recording on) where the archive ends. :func:`archive_session` is what ``calibrate(archive=, resume=)``
uses. The determinism this rests on, and how resume keeps frame tags in step, is in docs/bench.md.
"""

from __future__ import annotations

import warnings

import numpy as np

from tapmesh.calibration.archive import (
    DIRECTIONS,
    FLAG_NOT_IMPLEMENTED,
    FLAG_SINGLE,
    SIDES,
    Archive,
    ArchiveError,
    ArchiveExhaustedError,
    ReplayMismatchError,
    capabilities_from_json,
    capabilities_to_json,
)

MATCH_ATOL = 1e-9
"""Largest difference (V, √mW) between a replayed call's voltages or field and the recorded ones: the
recorded run's own values, up to the last bits a different BLAS may change."""


class ResumeNoiseWarning(UserWarning):
    """A resumed run continues on a simulated chip whose noise cannot be rewound to where the record ends."""


def _frame_index(chip) -> int:
    value = getattr(chip, "frame_index", None)
    return int(value) if isinstance(value, (int, np.integer)) else -1


class _Passthrough:
    """Size, topology and capabilities of the chip underneath."""

    def __init__(self, chip):
        self.chip = chip

    @property
    def n_modes(self) -> int:
        return int(self.chip.n_modes)

    @property
    def n_heaters(self) -> int:
        return int(self.chip.n_heaters)

    def __getattr__(self, name):
        if name in ("topology", "capabilities"):
            return getattr(self.chip, name)
        raise AttributeError(name)


class ArchivingChip(_Passthrough):
    """A Chip that forwards every call to ``chip`` and appends it, with its result, to ``archive``.

    Raw camera frames are archived too when ``images`` is true and the chip exposes ``last_frames``
    (:class:`tapmesh.bench.BenchChip` does)."""

    def __init__(self, chip, archive: Archive, images: bool = False):
        super().__init__(chip)
        self.archive, self.images = archive, bool(images)
        self._single = True

    def set_voltages(self, voltages) -> None:
        self.chip.set_voltages(voltages)
        self.archive.append("set_voltages", rows=np.asarray(voltages, dtype=float)[None], frame_index=_frame_index(self.chip),
                            flush=False)

    def inject(self, x, side="input") -> None:
        self.chip.inject(x, side=side)
        x = np.asarray(x)
        self._single = x.ndim == 1
        self.archive.append("inject", arg=SIDES.index(side), rows=np.atleast_2d(x).astype(np.complex128),
                            flags=FLAG_SINGLE if self._single else 0, frame_index=_frame_index(self.chip), flush=False)

    def read_taps(self, direction="forward"):
        reading = self.chip.read_taps(direction)
        frames = getattr(self.chip, "last_frames", None) if self.images else None
        self.archive.append("read_taps", arg=DIRECTIONS.index(direction), rows=np.atleast_2d(reading),
                            frame_index=_frame_index(self.chip), images=frames)
        return reading

    def _read(self, op: str):
        try:
            reading = getattr(self.chip, op)()
        except NotImplementedError:
            self.archive.append(op, flags=FLAG_NOT_IMPLEMENTED, frame_index=_frame_index(self.chip))
            raise
        self.archive.append(op, rows=np.atleast_2d(reading), frame_index=_frame_index(self.chip))
        return reading

    def read_outputs(self):
        return self._read("read_outputs")

    def read_outputs_coherent(self):
        return self._read("read_outputs_coherent")


class ReplayChip:
    """A Chip that serves ``archive``'s recorded calls in order; past the end, ``live`` (if given) takes
    over, with its state restored (the last voltages and field re-applied, ``frame_index`` set where the
    record stopped) and recording on.

    Raises:
        ReplayMismatchError: a call differs from its record (other op, voltages, field, side, direction).
        ArchiveExhaustedError: the archive ends and there is no live chip.
    """

    def __init__(self, archive: Archive, live=None, images: bool = False):
        self.archive, self.live, self.images = archive, live, images
        self.cursor = 0
        self.end = archive.n_calls  # the recorded prefix (the archive grows past it once live)
        self._recorder = None
        self._single = True
        self._last_v = self._last_x = None
        self._last_side = "input"
        meta = archive.meta
        self._n, self._h = int(meta["n_modes"]), int(meta["n_heaters"])
        if live is not None and (int(live.n_modes), int(live.n_heaters)) != (self._n, self._h):
            raise ArchiveError(f"archive {archive.path} is of a chip with {self._n} modes and {self._h} heaters; "
                               f"the live chip has {live.n_modes} and {live.n_heaters}")
        self.capabilities = capabilities_from_json(meta.get("capabilities"))
        if meta.get("topology"):
            from tapmesh import circuits

            self.topology = circuits.topology(int(meta["topology"]["n"]), meta["topology"]["kind"])

    @property
    def n_modes(self) -> int:
        return self._n

    @property
    def n_heaters(self) -> int:
        return self._h

    @property
    def replaying(self) -> bool:
        return self.cursor < self.end

    def _target(self):
        """The live recorder, once the archive is used up (restoring the live chip's state first)."""
        if self._recorder is None:
            if self.live is None:
                raise ArchiveExhaustedError(
                    f"archive {self.archive.path} ends after {self.end} calls and the run asks for more; "
                    "resume it on a chip (calibrate(chip, archive=..., resume=True))")
            if self._last_v is not None:
                self.live.set_voltages(self._last_v)
            if self._last_x is not None:
                self.live.inject(self._last_x[0] if self._single else self._last_x, side=self._last_side)
            noise = getattr(self.live, "noise", None)
            if self.end and getattr(self.live, "keyed_noise", True) is False and noise is not None and (
                    noise.shot > 0 or noise.read_mw > 0):
                warnings.warn("resuming on a VirtualChip whose noise is one stream (keyed_noise=False): the "
                              "live part draws other noise than an uninterrupted run would, so the result differs "
                              "from it; VirtualChip(keyed_noise=True) reproduces it frame for frame",
                              ResumeNoiseWarning, stacklevel=3)
            if self.end and _frame_index(self.live) >= 0:
                last = self.archive.call(self.end - 1)["frame_index"]
                if last >= 0:
                    self.live.frame_index = last
            self._recorder = ArchivingChip(self.live, self.archive, images=self.images)
        return self._recorder

    def _next(self, op: str, arg: int = -1) -> dict:
        record = self.archive.call(self.cursor)
        if record["op"] != op or (arg >= 0 and record["arg"] != arg):
            raise ReplayMismatchError(
                f"call {self.cursor}: the run asks {op}({arg if arg >= 0 else ''}) but archive {self.archive.path} "
                f"recorded {record['op']}({record['arg'] if record['arg'] >= 0 else ''})")
        self.cursor += 1
        return record

    def _compare(self, what: str, asked: np.ndarray, recorded: np.ndarray) -> None:
        if asked.shape != recorded.shape or not np.allclose(asked, recorded, rtol=0, atol=MATCH_ATOL):
            diff = np.max(np.abs(asked - recorded)) if asked.shape == recorded.shape else "shape"
            raise ReplayMismatchError(f"call {self.cursor - 1}: {what} differ from the record (max |Δ| {diff}): the run "
                                      "is not the recorded one (other options, seed or code)")

    def set_voltages(self, voltages) -> None:
        v = np.asarray(voltages, dtype=float)
        if not self.replaying:
            return self._target().set_voltages(v)
        self._compare("voltages", v[None], self._next("set_voltages")["rows"])
        self._last_v = v.copy()

    def inject(self, x, side="input") -> None:
        x = np.asarray(x)
        if not self.replaying:
            self._single = x.ndim == 1
            return self._target().inject(x, side=side)
        record = self._next("inject", SIDES.index(side))
        self._compare("fields", np.atleast_2d(x).astype(np.complex128), record["rows"])
        self._single = x.ndim == 1
        self._last_x, self._last_side = np.atleast_2d(x).astype(np.complex128), side

    def _reading(self, record: dict):
        if record["flags"] & FLAG_NOT_IMPLEMENTED:
            raise NotImplementedError("the recorded chip raised NotImplementedError here")
        rows = np.array(record["rows"])
        return rows[0] if self._single else rows

    def read_taps(self, direction="forward"):
        if not self.replaying:
            return self._target().read_taps(direction)
        return self._reading(self._next("read_taps", DIRECTIONS.index(direction)))

    def read_outputs(self):
        if not self.replaying:
            return self._target().read_outputs()
        return self._reading(self._next("read_outputs"))

    def read_outputs_coherent(self):
        if not self.replaying:
            return self._target().read_outputs_coherent()
        return self._reading(self._next("read_outputs_coherent"))


def _meta(chip, options: dict) -> dict:
    topology = getattr(chip, "topology", None)
    return {
        "topology": {"n": int(topology.n), "kind": str(topology.kind)} if topology is not None else None,
        "capabilities": capabilities_to_json(getattr(chip, "capabilities", None)),
        "options": options,
    }


def archive_session(chip, path, resume: bool, options: dict, images: bool = False):
    """(the chip a run should talk to, the open :class:`Archive`) for ``calibrate(archive=path, resume=...)``.

    A new archive records the run; ``resume=True`` on an existing one replays it and continues on ``chip``.
    ``options`` (JSON-able) are the run's options: a resumed run must use the same ones."""
    from pathlib import Path

    path = Path(path)
    if resume and path.exists():
        archive = Archive.open(path, "a")
        recorded = archive.meta.get("options")
        if recorded != options:
            changed = sorted(k for k in set(recorded or {}) | set(options) if (recorded or {}).get(k) != options.get(k))
            archive.close()
            raise ArchiveError(f"archive {path} was recorded with other options ({changed}); resume needs the same")
        return ReplayChip(archive, live=chip, images=images), archive
    if path.exists():
        raise ArchiveError(f"archive {path} exists; pass resume=True to continue it, or choose a new path")
    archive = Archive.create(path, int(chip.n_modes), int(chip.n_heaters), _meta(chip, options))
    return ArchivingChip(chip, archive, images=images), archive


# ============================================================================= calibrate(archive=...) and refit
SESSION_ARGUMENTS = ("chip", "archive", "resume", "archive_images", "progress")
"""Arguments of ``calibrate`` that are not options of the run (a resumed run may change them)."""


def _json_options(arguments: dict) -> dict:
    options = {}
    for name, value in arguments.items():
        if name in SESSION_ARGUMENTS:
            continue
        if hasattr(value, "n_shifters"):  # a MeshTopology
            value = {"n": int(value.n), "kind": str(value.kind)}
        elif isinstance(value, tuple):
            value = list(value)
        options[name] = value
    return options


def call_options(options: dict) -> dict:
    kwargs = dict(options)
    if isinstance(kwargs.get("topology"), dict):
        from tapmesh import circuits

        kwargs["topology"] = circuits.topology(kwargs["topology"]["n"], kwargs["topology"]["kind"])
    return kwargs


def record_archive_note(cal, archive: Archive, resumed_at: int | None) -> None:
    cal.info["archive"] = {"path": str(archive.path), "calls": archive.n_calls, "readings": archive.n_readings,
                           **({"resumed_at_call": resumed_at} if resumed_at is not None else {})}


def archived_run(calibrate, arguments: dict):
    """Run ``calibrate`` with ``arguments`` (its own, as :func:`locals` gave them) on a chip that records
    into ``arguments["archive"]`` (or replays it and continues, with ``resume``)."""
    import inspect

    arguments = {k: v for k, v in arguments.items() if k in inspect.signature(calibrate).parameters}
    options = _json_options(arguments)
    wrapped, archive = archive_session(arguments["chip"], arguments["archive"], bool(arguments["resume"]), options,
                                       images=bool(arguments.get("archive_images")))
    resumed_at = archive.n_calls if isinstance(wrapped, ReplayChip) else None
    try:
        cal = calibrate(wrapped, progress=arguments.get("progress", True), **call_options(options))
        record_archive_note(cal, archive, resumed_at)
    finally:
        archive.close()
    return cal

