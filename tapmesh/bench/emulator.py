"""A bench emulator: a SCPI server on 127.0.0.1 backed by a :class:`tapmesh.calibration.VirtualChip`, with
a camera that renders the tap gratings' spots and faults that can be injected.

It speaks the command set of :mod:`tapmesh.bench.protocol` over TCP (one thread per connection, one
shared bench state, so a driver that reconnects finds its bench as it left it). The camera renders a
pixel-integrated Gaussian spot at every grating of the chip map (both directions: the unlit ones are
dark), on a fixed dark pattern, with shot noise, read noise and a 12-bit ADC. Every noise draw is keyed
by (seed, reading kind, frame tag), so a seeded run is reproducible frame for frame, through retries and
restarts. Faults (``drop``, ``stall``, ``garble``, ``trip``) fire at a given query number or when armed
by ``DIAG:FAULT``. docs/bench.md describes the camera model and each fault.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from tapmesh.bench import protocol as p
from tapmesh.bench.camera import to_pixels
from tapmesh.bench.config import ChipGeometry

FAULT_KINDS = ("drop", "stall", "garble", "trip")


@dataclass
class Fault:
    """A fault of the emulator: ``kind`` in :data:`FAULT_KINDS`; fires at query number ``at`` (1-based,
    counted over all connections) or, with ``at=None``, at the next query; ``channel`` for ``trip``."""

    kind: str
    at: int | None = None
    channel: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """``KIND@N`` or ``trip:CH@N`` (e.g. ``drop@40``, ``trip:3@200``)."""
        head, _, at = text.partition("@")
        kind, _, arg = head.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"--fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        if kind == "trip" and not arg.isdigit():
            raise ValueError(f"--fault trip needs a channel: trip:CH@N, got {text!r}")
        if at and not at.isdigit():
            raise ValueError(f"--fault {text!r}: the query number after @ must be an integer")
        return cls(kind, int(at) if at else None, int(arg) if arg else None)


@dataclass(frozen=True)
class CameraModel:
    """The emulated camera. ``um_per_px``: object-side pixel pitch, µm; ``spot_sigma_px``: Gaussian spot
    σ, px; ``counts_per_mw``: ADC counts a 1 mW spot deposits (summed); ``dark_counts`` mean dark level
    with a fixed pattern of σ ``dark_pattern_counts``; ``read_counts`` read noise σ per pixel;
    ``electrons_per_count`` sets the shot noise; ``bits`` the ADC."""

    um_per_px: float = 4.0
    margin_px: int = 6
    spot_sigma_px: float = 1.0
    counts_per_mw: float = 2.6e5
    dark_counts: float = 200.0
    dark_pattern_counts: float = 5.0
    read_counts: float = 2.0
    electrons_per_count: float = 4.0
    bits: int = 12


def camera_layout(geometry: ChipGeometry, model: CameraModel) -> tuple[np.ndarray, tuple[int, int]]:
    """(transform (2, 3) µm → (col, row) px, (rows, cols)) of a camera framing every grating of the chip."""
    xy = geometry.taps.reshape(-1, 2)
    s, m = 1.0 / model.um_per_px, model.margin_px
    x0, y1 = xy[:, 0].min(), xy[:, 1].max()
    transform = np.array([[s, 0.0, m - s * x0], [0.0, -s, m + s * y1]])
    span = (xy.max(0) - xy.min(0)) * s
    return transform, (int(np.ceil(span[1])) + 2 * m + 1, int(np.ceil(span[0])) + 2 * m + 1)


def _tag_key(tag: int) -> int:
    return 2 * tag if tag >= 0 else -2 * tag - 1


class SpotRenderer:
    """Renders frames (count, rows, cols) uint16 from tap powers (count, 2, H) mW; noise keyed by tag."""

    def __init__(self, geometry: ChipGeometry, model: CameraModel, seed: int):
        self.model, self.seed = model, int(seed)
        self.transform, self.shape = camera_layout(geometry, model)
        centres = to_pixels(self.transform, geometry.taps).reshape(-1, 2)  # (2H, 2) col, row
        r = int(np.ceil(4 * model.spot_sigma_px))
        base = np.rint(centres).astype(int)
        offsets = np.arange(-r, r + 1)
        cols = base[:, 0, None] + offsets[None, :]
        rows = base[:, 1, None] + offsets[None, :]
        sig = model.spot_sigma_px * np.sqrt(2)

        def integrated(edges_from, centre):  # pixel-integrated Gaussian along one axis, (2H, 2r+1)
            return 0.5 * (erf((edges_from + 0.5 - centre[:, None]) / sig) - erf((edges_from - 0.5 - centre[:, None]) / sig))

        weights = integrated(rows, centres[:, 1])[:, :, None] * integrated(cols, centres[:, 0])[:, None, :]
        rows, cols = np.clip(rows, 0, self.shape[0] - 1), np.clip(cols, 0, self.shape[1] - 1)
        index = (rows[:, :, None] * self.shape[1] + cols[:, None, :]).ravel()
        self._pixels, self._inverse = np.unique(index, return_inverse=True)  # pixels any spot reaches
        self._weights = weights.reshape(len(centres), -1)
        pattern = np.random.default_rng([self.seed, 0]).normal(0.0, model.dark_pattern_counts, self.shape)
        self._dark = (model.dark_counts + pattern).ravel()

    def render(self, powers: np.ndarray, tag: int) -> np.ndarray:
        """Frames for tap powers (count, 2H) in mW (forward gratings then backward); frame k has tag ``tag + k``."""
        model = self.model
        npx = self.shape[0] * self.shape[1]
        full = 2**model.bits - 1
        frames = np.empty((len(powers), npx), dtype=np.uint16)
        for k, row in enumerate(np.asarray(powers, dtype=float)):
            rng = np.random.default_rng([self.seed, 1, _tag_key(tag + k)])
            counts = (self._weights * (np.clip(row, 0, None) * model.counts_per_mw)[:, None]).ravel()
            signal = np.bincount(self._inverse, counts, minlength=len(self._pixels))
            frame = self._dark + model.read_counts * rng.standard_normal(npx)
            frame[self._pixels] += signal + np.sqrt(signal / model.electrons_per_count) * rng.standard_normal(len(signal))
            frames[k] = np.clip(np.rint(frame), 0, full)
        return frames.reshape(len(powers), *self.shape)


class EmulatedBench:
    """The bench state behind the SCPI server: heater source, optical switch, laser, field source, power
    meters, coherent analyzer (optional) and camera, around one VirtualChip.

    Args:
        chip: the VirtualChip (its own detector noise should be :meth:`Noise.none`: the camera adds noise).
        geometry: the chip map's geometry (pads, grating positions).
        channel_of_heater: (H,) 1-based source channel of each heater.
        seed: keys every noise draw.
        coherent: whether the bench has a coherent output analyzer.
        source_range: (min, max) of the source, V.
        faults: faults to fire (see :class:`Fault`).
        stall_s: how long a ``stall`` fault holds a reply, s.
    """

    def __init__(self, chip, geometry: ChipGeometry, channel_of_heater, seed: int = 0, coherent: bool = True,
                 source_range=(-10.0, 10.0), faults=(), stall_s: float = 3.0, camera: CameraModel | None = None,
                 meter_shot: float = 0.005, meter_read_mw: float = 1e-5):
        self.chip, self.geometry, self.seed = chip, geometry, int(seed)
        self.channels = np.asarray(channel_of_heater, dtype=int)
        self.heater_of = {int(c): i for i, c in enumerate(self.channels)}
        self.coherent, self.range = bool(coherent), (float(source_range[0]), float(source_range[1]))
        self.camera = SpotRenderer(geometry, camera or CameraModel(), seed)
        self.faults, self.stall_s = list(faults), float(stall_s)
        self.meter_shot, self.meter_read_mw = float(meter_shot), float(meter_read_mw)
        self.lock = threading.Lock()
        self.queries = 0
        self.reset()

    def reset(self) -> None:
        h = len(self.channels)
        self.voltages = np.zeros(h)
        self.tripped: set[int] = set()
        self.errors: list[tuple[int, str]] = []
        self.side, self.light, self.field = "input", True, None
        self.chip.set_voltages(self.voltages)

    # ------------------------------------------------------------------ dispatch
    def handle(self, message: bytes) -> tuple[str | None, bytes | None]:
        """(fault to act out or None, reply bytes or None) for one message."""
        text = message[: message.find(b"#")] if b"#" in message[:40] else message
        header = text.decode("ascii", "replace").strip()
        is_query = header.split(" ")[0].endswith("?")
        with self.lock:
            fault = None
            if is_query and not header.upper().startswith("DIAG:"):  # debug commands neither count nor fault
                self.queries += 1
                fault = self._due_fault()
                if fault is not None and fault.kind == "trip":
                    self._trip(fault.channel)
                    fault = None
                if fault is not None and fault.kind == "drop":
                    return "drop", None
            try:
                reply = self._execute(header, message)
            except (ValueError, IndexError) as error:
                self.errors.append((p.ERROR_SYNTAX, f"{header[:40]}: {error}"))
                reply = b"" if is_query else None
        if fault is not None and reply is not None:
            if fault.kind == "garble":
                reply = _garble(reply)
            return fault.kind if fault.kind == "stall" else None, reply
        return None, reply

    def _due_fault(self) -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.at is None or fault.at == self.queries:
                return self.faults.pop(i)
        return None

    def _trip(self, channel: int) -> None:
        if channel in self.heater_of:
            self.tripped.add(channel)
            self.voltages[self.heater_of[channel]] = 0.0
            self.chip.set_voltages(self.voltages)
            self.errors.append((p.ERROR_TRIP, f"heater channel {channel} tripped"))

    def _execute(self, header: str, message: bytes) -> bytes | None:
        command, _, args = header.partition(" ")
        command = command.upper()
        if command == "*IDN?":
            return f"tapmesh,bench-emulator,{self.seed},1".encode()
        if command == "*RST":
            self.reset()
            return None
        if command == "*CLS":
            self.errors.clear()
            return None
        if command == "SYST:ERR?":
            code, text = self.errors.pop(0) if self.errors else (p.ERROR_NONE, "No error")
            return f'{code},"{text}"'.encode()
        if command in ("SOUR:VOLT", "SOUR:CURR"):
            values = [float(a) for a in args.split(",")]
            if len(values) % 2:
                raise ValueError("SOUR:VOLT takes channel,value pairs")
            v = self.voltages.copy()
            for ch, value in zip(values[::2], values[1::2]):
                ch = int(ch)
                if ch not in self.heater_of:
                    self.errors.append((p.ERROR_RANGE, f"no channel {ch}"))
                elif ch in self.tripped:
                    self.errors.append((p.ERROR_TRIP, f"heater channel {ch} tripped"))
                elif not self.range[0] <= value <= self.range[1]:
                    self.errors.append((p.ERROR_RANGE, f"channel {ch}: {value} V outside the source range"))
                else:
                    v[self.heater_of[ch]] = value
            self.voltages = v
            self.chip.set_voltages(np.clip(v, -self.chip.max_voltage, self.chip.max_voltage))
            return None
        if command in ("SOUR:VOLT?", "SOUR:CURR?"):
            by_channel = [self.voltages[self.heater_of[c]] for c in sorted(self.heater_of)]
            return ",".join(f"{v:.9g}" for v in by_channel).encode()
        if command in ("SOUR:VOLT:RANG?", "SOUR:CURR:RANG?"):
            return f"{self.range[0]:g},{self.range[1]:g}".encode()
        if command == "OUTP:TRIP?":
            return ",".join(str(c) for c in sorted(self.tripped)).encode()
        if command == "OUTP:TRIP:CLE":
            self.tripped.clear()
            return None
        if command == "ROUT:DIR":
            side = {"INP": "input", "OUTP": "output"}.get(args.strip().upper())
            if side is None:
                raise ValueError("ROUT:DIR takes INP or OUTP")
            self.side = side
            self._launch()
            return None
        if command == "ROUT:DIR?":
            return b"INP" if self.side == "input" else b"OUTP"
        if command == "LIGH":
            self.light = args.strip().upper() in ("ON", "1")
            return None
        if command == "LIGH?":
            return b"1" if self.light else b"0"
        if command == "SOUR:FIEL":
            _, payload = p.block_argument(message)
            self.field = p.decode_fields(np.frombuffer(payload, dtype="<f8"), self.chip.n_modes)
            self._launch()
            return None
        if command == "CAM:SIZE?":
            return f"{self.camera.shape[0]},{self.camera.shape[1]}".encode()
        if command == "CAM:FORM?":
            return b"UINT16"
        if command in ("CAM:FRAM?", "MEAS:POW?", "MEAS:FIEL?"):
            tag, _, count = args.partition(",")
            return self._read(command, int(tag), int(count) if count.strip() else None)
        if command == "DIAG:FAULT":
            kind, _, arg = args.partition(",")
            self.faults.append(Fault(kind.strip().lower(), None, int(arg) if arg.strip() else None))
            return None
        if command == "DIAG:FAULT:COUN?":
            return str(len(self.faults)).encode()
        self.errors.append((p.ERROR_UNDEFINED, f"undefined header {command}"))
        return b"" if command.endswith("?") else None

    def _launch(self) -> None:
        if self.field is not None:
            self.chip.inject(self.field, side=self.side)

    def _read(self, command: str, tag: int, count: int | None = None) -> bytes:
        h, n = self.chip.n_heaters, self.chip.n_modes
        if command == "CAM:FRAM?" and count is not None and (not self.light or self.field is None):
            dark = np.zeros((count, 2 * h))  # shutter closed (or nothing launched): dark frames
            return p.ieee_block(self.camera.render(dark, tag).astype("<u2").tobytes())
        if self.field is None or (count is not None and count != len(self.field)):
            self.errors.append((-221, "settings conflict: frames asked for are not one per launched field"))
            return p.ieee_block(b"")
        batch = len(self.field)
        if command == "CAM:FRAM?":
            powers = np.zeros((batch, 2, h))
            if self.light:
                direction = "forward" if self.side == "input" else "backward"
                powers[:, 0 if direction == "forward" else 1] = np.atleast_2d(self.chip.read_taps(direction))
            return p.ieee_block(self.camera.render(powers.reshape(batch, 2 * h), tag).astype("<u2").tobytes())
        if command == "MEAS:FIEL?" and not self.coherent:
            self.errors.append((p.ERROR_NO_HARDWARE, "no coherent analyzer on this bench"))
            return p.ieee_block(b"")
        out = np.zeros((batch, n), dtype=complex)
        if self.light:
            out = np.atleast_2d(self.chip.read_outputs_coherent())  # the noiseless field (chip noise off)
        rows = []
        for k, y in enumerate(out):
            rng = np.random.default_rng([self.seed, 2 if command == "MEAS:POW?" else 3, _tag_key(tag + k)])
            if command == "MEAS:POW?":
                power = np.abs(y) ** 2
                rows.append(power + self.meter_shot * np.sqrt(power) * rng.normal(size=n) + self.meter_read_mw * rng.normal(size=n))
            else:
                sigma = self.meter_shot * np.abs(y) + self.meter_read_mw
                rows.append(y + sigma * (rng.normal(size=n) + 1j * rng.normal(size=n)) / np.sqrt(2))
        data = np.asarray(rows)
        payload = data.astype("<f8") if command == "MEAS:POW?" else p.encode_fields(data).astype("<f8")
        return p.ieee_block(payload.tobytes())


def _garble(reply: bytes) -> bytes:
    """A corrupted reply: one payload byte flipped in a block (the CRC catches it), junk for text."""
    if reply.startswith(b"#") and len(reply) > 8:
        b = bytearray(reply)
        b[len(b) // 2] ^= 0x5A
        return bytes(b)
    return b"\x07?!" + reply[::-1]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        bench: EmulatedBench = self.server.bench
        sock, buffer = self.request, b""
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while (found := p.next_message(buffer)) is not None:
                message, buffer = found
                if not message.strip():
                    continue
                action, reply = bench.handle(message)
                if action == "drop":  # the connection is lost mid-query: reset (RST), as a rebooted instrument does
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
                if action == "stall":
                    time.sleep(bench.stall_s)
                    try:
                        sock.sendall(reply + b"\n")  # too late: the driver has given up on this connection
                    except OSError:
                        pass
                    return
                if reply is not None:
                    try:
                        sock.sendall(reply + b"\n")
                    except OSError:
                        return


class BenchServer(socketserver.ThreadingTCPServer):
    """A threading TCP server on 127.0.0.1 serving one :class:`EmulatedBench`."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, bench: EmulatedBench, port: int = 0, host: str = "127.0.0.1"):
        self.bench = bench
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def address(self) -> str:
        """The VISA resource name that reaches this server through pyvisa-py."""
        return f"TCPIP::{self.server_address[0]}::{self.port}::SOCKET"
