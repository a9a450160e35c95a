"""The bench-time model: seconds a lab bench spends on each Chip operation, accumulated per step.

:class:`BenchClock` charges every operation at the bench's declared :class:`~tapmesh.calibration.BenchCosts`
(settling after a voltage change, a camera frame per field read at the taps, output and coherent reads,
switching the light's side, a new injected field) under the step that is running; :class:`ClockedChip`
wraps any Chip so that each call it forwards is charged. The defaults and why are in docs/calibration.md
("Bench time").
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tapmesh.calibration.capabilities import BenchCosts, capabilities_of

OPERATIONS = ("settle", "inject", "direction_switch", "frames", "output_reads", "coherent_reads")


class BenchClock:
    """Bench seconds and operation counts, per step (``step`` is the name charged now).

    Attributes:
        costs: the :class:`BenchCosts` charged, s per operation.
        step: the step the next operations are charged to.
        seconds: step → operation → s.
        counts: step → operation → number of operations (frames and reads counted per field).
    """

    def __init__(self, costs: BenchCosts | None = None, step: str = "other"):
        if costs is not None and not isinstance(costs, BenchCosts):
            raise TypeError(f"costs must be a BenchCosts, got {type(costs).__name__}")
        self.costs = costs if costs is not None else BenchCosts()
        self.step = step
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    @classmethod
    def for_chip(cls, chip, step: str = "other") -> "BenchClock":
        """A clock at the chip's declared ``capabilities.costs`` (the defaults if it declares none)."""
        return cls(capabilities_of(chip).costs, step)

    def charge(self, operation: str, count: int = 1) -> None:
        """Charge ``count`` operations of kind ``operation`` (one of :data:`OPERATIONS`) to the current step."""
        unit = {"settle": self.costs.settle_s, "inject": self.costs.inject_s,
                "direction_switch": self.costs.direction_switch_s, "frames": self.costs.frame_s,
                "output_reads": self.costs.output_read_s, "coherent_reads": self.costs.coherent_read_s}[operation]
        self.seconds[self.step][operation] += unit * count
        self.counts[self.step][operation] += int(count)

    def step_seconds(self) -> dict[str, float]:
        """Step → total bench seconds."""
        return {step: float(sum(ops.values())) for step, ops in self.seconds.items()}

    @property
    def total_seconds(self) -> float:
        """All bench seconds charged so far."""
        return float(sum(self.step_seconds().values()))

    def summary(self) -> dict:
        """A JSON-ready record: ``total_s``, ``by_step`` (s), ``by_operation`` (s, all steps), ``counts``."""
        by_operation: dict[str, float] = defaultdict(float)
        for ops in self.seconds.values():
            for op, s in ops.items():
                by_operation[op] += s
        return {"total_s": self.total_seconds, "by_step": self.step_seconds(),
                "by_operation": dict(by_operation),
                "counts": {step: dict(ops) for step, ops in self.counts.items()}}


class ClockedChip:
    """A Chip that charges each forwarded operation to a :class:`BenchClock`; every other member is the
    wrapped chip's. A voltage setting equal to the last one costs no settle (the bench does not wait)."""

    def __init__(self, chip, clock: BenchClock):
        self._chip, self.clock = chip, clock
        self._last_voltages = None
        self._side = None
        self._batch = 1

    def __getattr__(self, name):
        return getattr(self._chip, name)

    @property
    def wrapped(self):
        """The chip underneath."""
        return self._chip

    def set_voltages(self, voltages) -> None:
        self._chip.set_voltages(voltages)
        v = np.asarray(voltages, dtype=float)
        if self._last_voltages is None or not np.array_equal(v, self._last_voltages):
            self.clock.charge("settle")
            self._last_voltages = v.copy()

    def inject(self, x, side: str = "input") -> None:
        self._chip.inject(x, side=side)
        if self._side is not None and side != self._side:
            self.clock.charge("direction_switch")
        self._side = side
        self._batch = int(np.shape(x)[0]) if np.ndim(x) == 2 else 1
        self.clock.charge("inject", self._batch)

    def read_taps(self, direction: str = "forward"):
        out = self._chip.read_taps(direction)
        self.clock.charge("frames", self._batch)
        return out

    def read_outputs(self):
        out = self._chip.read_outputs()
        self.clock.charge("output_reads", self._batch)
        return out

    def read_outputs_coherent(self):
        out = self._chip.read_outputs_coherent()
        self.clock.charge("coherent_reads", self._batch)
        return out
