"""The bench config: one TOML file with the VISA addresses, the pad → source-channel map, drive limits,
settling, the camera's geometry and the bench costs; read and checked against the chip map before any
voltage is set. The file format is documented key by key in docs/bench.md and in :func:`write_config`.

The chip map is the JSON that ``tapmesh layout`` writes (``chip_map.json``: pad → heater, tap → grating
position in µm); it is read here as plain JSON so the driver does not import the layout tools.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tapmesh.bench.errors import BenchConfigError
from tapmesh.calibration.capabilities import BenchCosts, Capabilities, CapabilitiesError

INSTRUMENTS = ("source", "light", "meter", "camera")
COST_KEYS = tuple(f.name for f in BenchCosts.__dataclass_fields__.values())


@dataclass(frozen=True)
class ChipGeometry:
    """What the bench needs of a chip map: size, pad of each heater, grating position of each tap (µm)."""

    n: int
    kind: str
    pads: dict[str, int]          # pad name → canonical heater index
    taps: np.ndarray              # (2, H, 2): [forward, backward] grating (x, y) of every heater's tap, µm

    @property
    def n_heaters(self) -> int:
        return int(self.taps.shape[1])

    @classmethod
    def from_dict(cls, data: dict) -> "ChipGeometry":
        try:
            n, kind = int(data["n"]), str(data["kind"])
            taps = data["taps"]
            h = 1 + max(int(t["shifter"]) for t in taps)
            positions = np.full((2, h, 2), np.nan)
            for t in taps:
                positions[0 if t["direction"] == "fwd" else 1, int(t["shifter"])] = t["position"]
            pads = {str(p["pad"]): int(p["shifter"]) for p in data.get("pads", []) if p.get("shifter") is not None}
        except (KeyError, TypeError, ValueError) as error:
            raise BenchConfigError(f"chip map is not a tapmesh chip map (missing or bad {error})") from None
        if np.isnan(positions).any():
            raise BenchConfigError("chip map lacks the forward or backward grating of some heater")
        return cls(n=n, kind=kind, pads=pads, taps=positions)

    @classmethod
    def load(cls, path) -> "ChipGeometry":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise BenchConfigError(f"chip map {path} not found (write it with `tapmesh layout`)") from None
        except json.JSONDecodeError as error:
            raise BenchConfigError(f"chip map {path} is not JSON: {error}") from None


@dataclass(frozen=True)
class CameraConfig:
    """Camera geometry and scale. ``transform`` (2, 3): ``[col, row] = A·[x_µm, y_µm] + b`` (pixels);
    ``window_px``: half-width of the square window summed around each spot; ``mw_per_count``: tap
    power per ADC count summed over a window, mW; ``dark_frames`` averaged for the dark frame."""

    transform: np.ndarray
    window_px: int = 2
    mw_per_count: float = 1e-6
    dark_frames: int = 8


@dataclass(frozen=True)
class BenchConfig:
    """A checked bench config (see :func:`load_config`). ``channels[i]`` is the 1-based source channel
    of heater i; ``drive_min``/``drive_max`` (H,) the allowed drive of each heater (V or mA)."""

    addresses: dict[str, str]
    geometry: ChipGeometry
    channels: np.ndarray
    drive: str
    drive_min: np.ndarray
    drive_max: np.ndarray
    limit: float
    camera: CameraConfig
    capabilities: Capabilities
    timeout_ms: int = 2000
    retries: int = 3
    settle_s: float = 0.0
    batch_commands: bool = True
    path: Path | None = None
    extra: dict = field(default_factory=dict)


def _get(table: dict, key: str, kind, where: str, default=None):
    if key not in table:
        if default is None:
            raise BenchConfigError(f"bench config lacks [{where}] {key}")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BenchConfigError(f"bench config [{where}] {key} must be {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise BenchConfigError(f"bench config [{where}] {key} must be finite, got {value!r}")
    return value


def _check_pads(table: dict, geometry: ChipGeometry, where: str, missing_says: str) -> None:
    """Every key of ``table`` a pad of the chip map that drives a heater, and every such pad a key."""
    unknown = sorted(set(table) - set(geometry.pads))
    if unknown:
        raise BenchConfigError(f"bench config [{where}] names pads the chip map lacks: {unknown[:6]}")
    missing = sorted(set(geometry.pads) - set(table))
    if missing:
        raise BenchConfigError(f"bench config [{where}] {missing_says} pads {missing[:6]}")


def _per_heater(value, geometry: ChipGeometry, where: str) -> np.ndarray:
    """A scalar, or a table pad name → value, as a (H,) array."""
    h = geometry.n_heaters
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.full(h, float(value))
    if isinstance(value, dict):
        _check_pads(value, geometry, where, "gives no value for")
        out = np.zeros(h)
        for pad, v in value.items():
            out[geometry.pads[pad]] = float(v)
        return out
    raise BenchConfigError(f"bench config [{where}] must be a number or a table pad → number, got {value!r}")


def parse_config(data: dict, base: Path = Path("."), path: Path | None = None) -> BenchConfig:
    """Check a parsed TOML document and build the :class:`BenchConfig` (relative paths from ``base``)."""
    for section in ("chip", "instruments", "heaters", "camera"):
        if not isinstance(data.get(section), dict):
            raise BenchConfigError(f"bench config lacks the [{section}] table")
    chip = data["chip"]
    geometry = ChipGeometry.load(base / _get(chip, "map", str, "chip"))
    for key, value in (("n", geometry.n), ("kind", geometry.kind)):
        if key in chip and chip[key] != value:
            raise BenchConfigError(f"bench config [chip] {key} = {chip[key]!r} but the chip map has {value!r}")
    inst = data["instruments"]
    addresses = {name: _get(inst, name, str, "instruments") for name in INSTRUMENTS}
    timeout_ms = _get(inst, "timeout_ms", int, "instruments", 2000)
    retries = _get(inst, "retries", int, "instruments", 3)
    if timeout_ms <= 0 or retries < 0:
        raise BenchConfigError("bench config [instruments] timeout_ms must be > 0 and retries ≥ 0")

    heaters = data["heaters"]
    drive = _get(heaters, "drive", str, "heaters", "voltage")
    if drive not in ("voltage", "current"):
        raise BenchConfigError(f"bench config [heaters] drive must be 'voltage' or 'current', got {drive!r}")
    table = heaters.get("channels")
    if not isinstance(table, dict):
        raise BenchConfigError("bench config lacks [heaters.channels] (pad name = source channel)")
    _check_pads(table, geometry, "heaters.channels", "maps no source channel to")
    channels = np.zeros(geometry.n_heaters, dtype=int)
    for pad, ch in table.items():
        if not isinstance(ch, int) or isinstance(ch, bool) or ch < 1:
            raise BenchConfigError(f"bench config [heaters.channels] {pad} must be a channel number ≥ 1, got {ch!r}")
        channels[geometry.pads[pad]] = ch
    if len(set(channels.tolist())) != len(channels):
        raise BenchConfigError("bench config [heaters.channels] maps two pads to one source channel")
    limit = _get(heaters, "limit", float, "heaters")
    low = _per_heater(heaters.get("min", 0.0), geometry, "heaters.min")
    if "max" not in heaters:
        raise BenchConfigError("bench config lacks [heaters] max")
    high = _per_heater(heaters["max"], geometry, "heaters.max")
    if np.any(high <= low):
        raise BenchConfigError("bench config [heaters] max must exceed min for every pad")
    if np.any(np.abs(low) > limit) or np.any(np.abs(high) > limit):
        worst = float(np.max(np.abs(np.concatenate([low, high]))))
        raise BenchConfigError(f"bench config [heaters] min/max reach {worst:g}, wider than the bench limit ±{limit:g}")

    cam = data["camera"]
    transform = np.asarray(_get(cam, "transform", list, "camera"), dtype=float)
    if transform.shape != (2, 3) or not np.all(np.isfinite(transform)):
        raise BenchConfigError("bench config [camera] transform must be [[a, b, c], [d, e, f]] (µm → pixel)")
    camera = CameraConfig(
        transform=transform,
        window_px=_get(cam, "window_px", int, "camera", 2),
        mw_per_count=_get(cam, "mw_per_count", float, "camera"),
        dark_frames=_get(cam, "dark_frames", int, "camera", 8),
    )
    if camera.window_px < 0 or camera.mw_per_count <= 0 or camera.dark_frames < 1:
        raise BenchConfigError("bench config [camera] needs window_px ≥ 0, mw_per_count > 0, dark_frames ≥ 1")
    from tapmesh.bench.camera import check_windows

    check_windows(geometry.taps, transform, camera.window_px)

    caps = data.get("capabilities", {})
    costs = data.get("costs", {})
    unknown = sorted(set(costs) - set(COST_KEYS))
    if unknown:
        raise BenchConfigError(f"bench config [costs] has unknown keys {unknown}; known: {list(COST_KEYS)}")
    try:
        capabilities = Capabilities(
            drive=drive,
            drive_min=low,
            drive_max=high,
            output_side_source=bool(caps.get("output_side_source", True)),
            output_detectors=bool(caps.get("output_detectors", True)),
            coherent_readout=bool(caps.get("coherent_readout", True)),
            camera_saturation_mw=caps.get("camera_saturation_mw"),
            tap_noise_mw=caps.get("tap_noise_mw"),
            costs=BenchCosts(**{k: float(v) for k, v in costs.items()}),
        ).check(geometry.n_heaters)
    except (CapabilitiesError, TypeError) as error:
        raise BenchConfigError(f"bench config [capabilities]/[costs]: {error}") from None
    return BenchConfig(
        addresses=addresses, geometry=geometry, channels=channels, drive=drive, drive_min=low, drive_max=high,
        limit=limit, camera=camera, capabilities=capabilities, timeout_ms=timeout_ms, retries=retries,
        settle_s=_get(heaters, "settle_s", float, "heaters", 0.0),
        batch_commands=_get(heaters, "batch_commands", bool, "heaters", True), path=path,
    )


def load_config(path) -> BenchConfig:
    """Read and check a bench TOML file (:class:`BenchConfigError` naming the key on any problem)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BenchConfigError(f"bench config {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise BenchConfigError(f"bench config {path} is not valid TOML: {error}") from None
    return parse_config(data, base=path.parent, path=path)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(v.item() if hasattr(v, "item") else v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_config(path, tables: dict[str, dict], header: str = "") -> Path:
    """Write ``tables`` (section → key → value; a dict value inside a section becomes a sub-table) as
    TOML, atomically."""
    from tapmesh.circuits.io import atomic_write_text

    lines = [f"# {line}" for line in header.splitlines()]
    for section, table in tables.items():
        lines.append(f"\n[{section}]")
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for name, sub in subtables.items():
            lines.append(f"\n[{section}.{name}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in sub.items()]
    return atomic_write_text(Path(path), "\n".join(lines).lstrip("\n") + "\n")
