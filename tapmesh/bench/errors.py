"""Named errors of the bench driver and emulator: bad configuration (before anything is sent) and the
faults of a live bench (lost connection, timeout, garbled reply, tripped heater)."""

from __future__ import annotations

from tapmesh.calibration.errors import CalibrationError


class BenchError(RuntimeError):
    """Base class of every failure of a live bench (after the driver has connected)."""


class BenchConfigError(CalibrationError):
    """The bench config (TOML) is malformed or disagrees with the chip map or the instruments; raised
    before any voltage is set. The message names the config key."""


class BenchConnectionError(BenchError, ConnectionError):
    """The connection to an instrument was lost and could not be re-established within the retries."""


class BenchUnreachableError(BenchConnectionError, BenchConfigError):
    """An instrument address of the config cannot be reached at all (raised on connect, before any
    voltage is set)."""


class BenchTimeoutError(BenchError, TimeoutError):
    """An instrument did not answer within the timeout, on every retry."""


class BenchProtocolError(BenchError):
    """An instrument's reply could not be parsed or failed its CRC, on every retry."""


class BenchInstrumentError(BenchError):
    """An instrument reported an error in its error queue (``SYST:ERR?``) for a command the driver sent."""


class HeaterTripError(BenchError):
    """A heater channel of the source tripped (over-current / over-temperature protection). Never
    retried: the bench needs a look. ``channels`` are the source channels, ``heaters`` the canonical
    heater indices."""

    def __init__(self, channels, heaters):
        self.channels = tuple(int(c) for c in channels)
        self.heaters = tuple(int(h) for h in heaters)
        super().__init__(
            f"heater source tripped on channel(s) {list(self.channels)} (heaters {list(self.heaters)}); "
            "clear the trip (OUTP:TRIP:CLE) after checking the bench, then resume from the archive"
        )
