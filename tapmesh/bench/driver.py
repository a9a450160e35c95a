"""The reference bench driver: :class:`BenchChip` implements the :class:`tapmesh.calibration.Chip` protocol
over PyVISA for a thermo-optic bench (multichannel heater source, optical switch and laser shutter, field
source, output power meters, optional coherent analyzer, IR camera), speaking :mod:`tapmesh.bench.protocol`.

Everything is checked before the first voltage is set: the config against the chip map, the instruments'
identities and ranges against the config. What is safe to retry is retried (every query is idempotent:
settings are absolute and readings are tagged), with a reconnect that restores the bench state;
everything else raises a named error (:mod:`tapmesh.bench.errors`). docs/bench.md has the retry rules.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pyvisa
from pyvisa import constants

from tapmesh import circuits
from tapmesh.bench import protocol as p
from tapmesh.bench.camera import Camera, SpotReadout
from tapmesh.bench.config import BenchConfig, load_config
from tapmesh.bench.errors import (
    BenchConfigError,
    BenchConnectionError,
    BenchInstrumentError,
    BenchProtocolError,
    BenchTimeoutError,
    BenchUnreachableError,
    HeaterTripError,
)
from tapmesh.calibration.chip import checked_field, checked_voltages
from tapmesh.calibration.errors import ChipStateError, FieldError, VoltageError


class _Garbled(Exception):
    """A reply that does not parse or fails its CRC (retried)."""


class _Link:
    """One VISA resource (an address may serve several instrument roles), reopened after a fault."""

    def __init__(self, address: str, roles: list[str]):
        self.address, self.roles, self.resource = address, roles, None


class ScpiCamera:
    """The bench camera over SCPI (``CAM:SIZE?``, ``CAM:FORM?``, ``CAM:FRAM? <tag>``), through the
    driver's retrying link; implements :class:`tapmesh.bench.Camera`."""

    def __init__(self, chip: "BenchChip"):
        self._chip = chip
        shape = chip._call("camera", lambda r: r.query("CAM:SIZE?"))
        fmt = chip._call("camera", lambda r: r.query("CAM:FORM?").strip().upper())
        if fmt != "UINT16":
            raise BenchConfigError(f"camera frame format {fmt!r} is not UINT16")
        try:
            rows, cols = (int(v) for v in shape.split(","))
        except ValueError:
            raise BenchProtocolError(f"CAM:SIZE? answered {shape!r}") from None
        self._shape = (rows, cols)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def acquire(self, count: int, tag: int) -> np.ndarray:
        rows, cols = self._shape
        payload = self._chip._call("camera", lambda r: self._chip._block(r, f"CAM:FRAM? {tag},{count}", count * rows * cols * 2))
        return np.frombuffer(payload, dtype="<u2").reshape(count, rows, cols)


class BenchChip:
    """A thermo-optic mesh bench behind PyVISA; implements :class:`tapmesh.calibration.Chip`.

    Args:
        config: a :class:`tapmesh.bench.config.BenchConfig` or the path of its TOML file.
        visa_library: the PyVISA backend: ``"@py"`` (pyvisa-py, TCPIP SOCKET) or ``"file.yaml@sim"``.
        drive_max: a lower drive limit than the config's, V or mA (wider: :class:`BenchConfigError`).
        dark_frames: override the config's number of dark frames taken on connect (0: none; call
            :meth:`take_dark` before reading taps).
        camera: a :class:`tapmesh.bench.Camera` of your own (a vendor SDK, say); default the bench's
            SCPI camera at the config's ``camera`` address (:class:`ScpiCamera`).

    Raises (on construction, before any voltage is set):
        BenchConfigError: bad config, or an instrument whose range is narrower than the config's limits.
        BenchUnreachableError: an address that cannot be reached.

    Attributes:
        capabilities: the bench's :class:`tapmesh.calibration.Capabilities` (``tap_noise_mw`` measured from
            the dark frames where the config gives none).
        frame_index: tag of the next reading (frames, meter readings); settable, so a resumed run tags its
            readings as the uninterrupted run would have.
        last_frames: raw camera frames (count, rows, cols) of the last :meth:`read_taps`.
        retried: faults survived so far, by kind (``"timeout"``, ``"connection"``, ``"protocol"``).
    """

    def __init__(self, config: BenchConfig | str | Path, visa_library: str = "@py", drive_max: float | None = None,
                 dark_frames: int | None = None, camera: Camera | None = None):
        self.config = config if isinstance(config, BenchConfig) else load_config(config)
        cfg = self.config
        self.topology = circuits.topology(cfg.geometry.n, cfg.geometry.kind)
        if self.topology.n_shifters != cfg.geometry.n_heaters:
            raise BenchConfigError(f"chip map has {cfg.geometry.n_heaters} heaters, a {cfg.geometry.kind} mesh on "
                                   f"{cfg.geometry.n} modes has {self.topology.n_shifters}")
        self._high = cfg.drive_max.copy()
        if drive_max is not None:
            if drive_max > cfg.drive_max.max():
                raise BenchConfigError(f"drive_max={drive_max:g} is wider than the config's [heaters] max "
                                       f"{cfg.drive_max.max():g}")
            self._high = np.minimum(self._high, drive_max)
        self.capabilities = cfg.capabilities.with_(drive_max=self._high)
        self.camera = camera
        self.frame_index = 0
        self.last_frames = None
        self.retried = {"timeout": 0, "connection": 0, "protocol": 0}
        self._voltages = None
        self._side, self._field, self._light = "input", None, True
        self._single = True
        self._rm = pyvisa.ResourceManager(visa_library)
        self._links: dict[str, _Link] = {}
        roles = ("source", "light", "meter") + (("camera",) if camera is None else ())
        for role in roles:
            address = cfg.addresses[role]
            self._links.setdefault(address, _Link(address, []))
            self._links[address].roles.append(role)
        self._role = {role: self._links[cfg.addresses[role]] for role in roles}
        for link in self._links.values():
            try:
                self._open(link, restore=False)
            except pyvisa.errors.VisaIOError as error:
                raise BenchUnreachableError(f"instrument at {link.address} cannot be reached: {error.description}") from None
            except (OSError, ValueError) as error:
                raise BenchUnreachableError(f"instrument at {link.address} cannot be reached: {error}") from None
        self._check_instruments()
        dark_frames = cfg.camera.dark_frames if dark_frames is None else int(dark_frames)
        if dark_frames:
            self.take_dark(dark_frames)

    # ------------------------------------------------------------------ connection and retries
    def _open(self, link: _Link, restore: bool = True) -> None:
        cfg = self.config
        link.resource = self._rm.open_resource(link.address, read_termination="\n", write_termination="\n",
                                               timeout=cfg.timeout_ms)
        if restore:
            self._restore(link)

    def _drop(self, link: _Link) -> None:
        if link.resource is not None:
            try:
                link.resource.close()
            except Exception:  # noqa: BLE001 - a dead socket may fail to close; it is dropped either way
                pass
        link.resource = None

    def _restore(self, link: _Link) -> None:
        """Re-send the state a reconnect (or a restarted bench) has lost: all of it is absolute."""
        r = link.resource
        if "source" in link.roles and self._voltages is not None:
            r.write(self._voltage_command(self._voltages))
        if "light" in link.roles:
            r.write(f"ROUT:DIR {'INP' if self._side == 'input' else 'OUTP'}")
            r.write(f"LIGH {'ON' if self._light else 'OFF'}")
            if self._field is not None:
                r.write_binary_values("SOUR:FIEL ", p.encode_fields(self._field), datatype="d")

    def _call(self, role: str, fn):
        """Run ``fn(resource)`` (an idempotent exchange) with retries and reconnects."""
        link = self._role[role]
        retries = self.config.retries
        last_kind, last_message = "connection", ""
        for attempt in range(retries + 1):
            try:
                if link.resource is None:
                    self._open(link)
                return fn(link.resource)
            except pyvisa.errors.VisaIOError as error:
                last_kind = "timeout" if error.error_code == constants.StatusCode.error_timeout else "connection"
                last_message = error.description
            except (ConnectionError, OSError, EOFError) as error:
                last_kind, last_message = "connection", str(error)
            except (_Garbled, ValueError, struct.error, UnicodeDecodeError) as error:
                last_kind, last_message = "protocol", str(error)
            self._drop(link)
            if attempt < retries:
                self.retried[last_kind] += 1
                time.sleep(min(0.05 * 2**attempt, 1.0))
        named = {"timeout": BenchTimeoutError, "connection": BenchConnectionError, "protocol": BenchProtocolError}
        raise named[last_kind](f"{role} at {link.address}: {last_kind} on each of {retries + 1} tries ({last_message})")

    def _errors(self, r, trips: bool = False) -> None:
        """Drain the error queue (and, with ``trips``, ask the source for tripped channels); a trip raises
        :class:`HeaterTripError`, anything else :class:`BenchInstrumentError`."""
        tripped = r.query("OUTP:TRIP?").strip() if trips else ""
        messages = []
        for _ in range(32):
            reply = r.query("SYST:ERR?").strip()
            code_text, _, text = reply.partition(",")
            try:
                code = int(code_text)
            except ValueError:
                raise _Garbled(f"SYST:ERR? answered {reply[:40]!r}") from None
            if code == p.ERROR_NONE:
                break
            if code != p.ERROR_TRIP:
                messages.append(f"{code} {text.strip(chr(34))}")
        if tripped:
            try:
                channels = [int(c) for c in tripped.split(",")]
            except ValueError:
                raise _Garbled(f"OUTP:TRIP? answered {tripped[:40]!r}") from None
            heater_of = {int(c): i for i, c in enumerate(self.config.channels)}
            raise HeaterTripError(channels, [heater_of.get(c, -1) for c in channels])
        if messages:
            raise BenchInstrumentError("instrument error: " + "; ".join(messages))

    def _block(self, r, query: str, expected_bytes: int) -> bytes:
        """Query a definite-length block, read by its length (not by termination character: the payload
        holds any byte), and check its CRC."""
        r.write(query)
        head = r.read_bytes(2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            raise _Garbled(f"{query}: reply starts {head!r}, not a definite-length block")
        length_text = r.read_bytes(int(head[1:2]))
        if not length_text.isdigit():
            raise _Garbled(f"{query}: block length {length_text!r}")
        raw = r.read_bytes(int(length_text) + 1, chunk_size=1 << 20)
        if raw[-1:] != b"\n":
            raise _Garbled(f"{query}: block not followed by the termination")
        payload, ok = p.split_crc(raw[:-1])
        if ok and len(payload) == expected_bytes:
            return payload
        if ok and not payload:
            self._errors(r)  # the instrument refused the query: say why
            raise BenchInstrumentError(f"{query} returned nothing")
        raise _Garbled(f"{query}: block of {len(payload)} bytes, CRC {'ok' if ok else 'wrong'}, expected {expected_bytes}")

    # ------------------------------------------------------------------ start-up checks
    def _check_instruments(self) -> None:
        cfg = self.config
        try:
            self.identity = {role: self._call(role, lambda r: r.query("*IDN?").strip()) for role in self._role}
        except (BenchConnectionError, BenchTimeoutError) as error:
            raise BenchUnreachableError(f"instrument cannot be reached: {error}") from None
        kind = "VOLT" if cfg.drive == "voltage" else "CURR"
        text = self._call("source", lambda r: r.query(f"SOUR:{kind}:RANG?"))
        try:
            low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise BenchProtocolError(f"SOUR:{kind}:RANG? answered {text!r}") from None
        if cfg.drive_min.min() < low or cfg.drive_max.max() > high:
            raise BenchConfigError(f"bench config [heaters] min/max [{cfg.drive_min.min():g}, {cfg.drive_max.max():g}] "
                                   f"is wider than the source's range [{low:g}, {high:g}]")
        if self.camera is None:
            self.camera = ScpiCamera(self)
        self.readout = SpotReadout(cfg.geometry.taps, cfg.camera.transform, self.camera.shape, cfg.camera.window_px,
                                   cfg.camera.mw_per_count)

    def take_dark(self, count: int) -> None:
        """Take ``count`` dark frames (laser shutter closed), averaged into the frame subtracted from every
        frame; the tap read noise they show becomes ``capabilities.tap_noise_mw`` unless the config sets it."""
        self._light = False
        self._send("light", "LIGH OFF")
        frames = self._acquire(count, tag=-count)
        self.readout.set_dark(frames)
        if self.capabilities.tap_noise_mw is None:
            noise = self.readout.window_noise_mw(frames)
            if noise > 0:
                self.capabilities = self.capabilities.with_(tap_noise_mw=noise)
        self._light = True
        self._send("light", "LIGH ON")

    # ------------------------------------------------------------------ Chip protocol
    @property
    def n_modes(self) -> int:
        return self.config.geometry.n

    @property
    def n_heaters(self) -> int:
        return self.config.geometry.n_heaters

    def _voltage_command(self, v: np.ndarray) -> str:
        kind = "VOLT" if self.config.drive == "voltage" else "CURR"
        pairs = ",".join(f"{ch},{value:.9g}" for ch, value in zip(self.config.channels, v))
        return f"SOUR:{kind} {pairs}"

    def _send(self, role: str, command: str) -> None:
        def exchange(r):
            r.write(command)
            self._errors(r, trips=role == "source")
        self._call(role, exchange)

    def set_voltages(self, voltages) -> None:
        """Apply heater drives (n_heaters,), V (or mA for a current source), within the config's limits."""
        v = checked_voltages(voltages, self.n_heaters)
        bad = np.flatnonzero((v < self.config.drive_min - 1e-12) | (v > self._high + 1e-12))
        if bad.size:
            i = int(bad[0])
            raise VoltageError(f"drive {v[i]:.4g} on heater {i} is outside the bench limits "
                               f"[{self.config.drive_min[i]:g}, {self._high[i]:g}]")
        self._voltages = v
        if self.config.batch_commands:
            self._send("source", self._voltage_command(v))
        else:
            kind = "VOLT" if self.config.drive == "voltage" else "CURR"

            def exchange(r):
                for ch, value in zip(self.config.channels, v):
                    r.write(f"SOUR:{kind} {ch},{value:.9g}")
                self._errors(r, trips=True)
            self._call("source", exchange)
        if self.config.settle_s:
            time.sleep(self.config.settle_s)

    def _send_field(self, x: np.ndarray, side: str) -> None:
        def exchange(r):
            r.write(f"ROUT:DIR {'INP' if side == 'input' else 'OUTP'}")
            r.write_binary_values("SOUR:FIEL ", p.encode_fields(x), datatype="d")
            self._errors(r)
        self._side, self._field = side, x
        self._call("light", exchange)

    def inject(self, x, side: str = "input") -> None:
        """Launch field(s) (n_modes,) or (batch, n_modes), √mW, from the input or the output side."""
        x = checked_field(x, side, self.n_modes)
        if side == "output" and not self.capabilities.output_side_source:
            raise FieldError("this bench cannot launch light from the output side (capabilities.output_side_source)")
        self._single = x.ndim == 1
        self._send_field(np.atleast_2d(x).astype(np.complex128), side)

    def _batch(self) -> int:
        if self._field is None:
            raise ChipStateError("inject a field before reading the chip")
        return len(self._field)

    def _acquire(self, count: int, tag: int) -> np.ndarray:
        frames = np.asarray(self.camera.acquire(count, tag))
        if frames.shape != (count, *self.readout.shape):
            raise BenchProtocolError(f"camera returned frames of shape {frames.shape}, expected {(count, *self.readout.shape)}")
        return frames

    def _shape(self, a: np.ndarray) -> np.ndarray:
        return a[0] if self._single else a

    def read_taps(self, direction: str = "forward") -> np.ndarray:
        """Tap powers (batch, n_heaters), mW, of one direction's gratings: dark-subtracted windowed sums."""
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        b = self._batch()
        frames = self._acquire(b, self.frame_index)
        self.frame_index += b
        self.last_frames = frames
        return self._shape(self.readout.taps(frames, direction))

    def read_outputs(self) -> np.ndarray:
        """Output power meters (batch, n_modes), mW."""
        if not self.capabilities.output_detectors:
            raise NotImplementedError("this bench has no output power meters (capabilities.output_detectors)")
        b, n = self._batch(), self.n_modes
        payload = self._call("meter", lambda r: self._block(r, f"MEAS:POW? {self.frame_index}", b * n * 8))
        self.frame_index += b
        return self._shape(np.frombuffer(payload, dtype="<f8").reshape(b, n).copy())

    def read_outputs_coherent(self) -> np.ndarray:
        """Coherent output fields (batch, n_modes), √mW; ``NotImplementedError`` without an analyzer."""
        if not self.capabilities.coherent_readout:
            raise NotImplementedError("this bench has no coherent output analyzer (capabilities.coherent_readout)")
        b, n = self._batch(), self.n_modes
        try:
            payload = self._call("meter", lambda r: self._block(r, f"MEAS:FIEL? {self.frame_index}", b * n * 16))
        except BenchInstrumentError as error:
            if str(p.ERROR_NO_HARDWARE) in str(error):
                raise NotImplementedError(f"the bench reports no coherent analyzer: {error}") from None
            raise
        self.frame_index += b
        return self._shape(p.decode_fields(np.frombuffer(payload, dtype="<f8"), n))

    def close(self) -> None:
        """Close every VISA resource (voltages stay where they are)."""
        for link in self._links.values():
            self._drop(link)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"BenchChip({self.config.geometry.kind} n={self.n_modes}, {len(self._links)} VISA link(s), frame {self.frame_index})"
