"""bench: a reference PyVISA driver for a thermo-optic mesh bench, a SCPI bench emulator backed by a
VirtualChip, and what connects them (config, camera readout, SCPI command set). See docs/bench.md."""

from tapmesh.bench.camera import Camera, SpotReadout
from tapmesh.bench.config import BenchConfig, ChipGeometry, load_config
from tapmesh.bench.driver import BenchChip
from tapmesh.bench.errors import (
    BenchConfigError,
    BenchConnectionError,
    BenchError,
    BenchInstrumentError,
    BenchProtocolError,
    BenchTimeoutError,
    BenchUnreachableError,
    HeaterTripError,
)

__all__ = [
    "BenchChip",
    "BenchConfig",
    "BenchConfigError",
    "BenchConnectionError",
    "BenchError",
    "BenchInstrumentError",
    "BenchProtocolError",
    "BenchTimeoutError",
    "BenchUnreachableError",
    "Camera",
    "ChipGeometry",
    "HeaterTripError",
    "SpotReadout",
    "load_config",
]
