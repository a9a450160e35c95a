"""The hidden truth of a fabricated chip: its as-built errors (:class:`AsBuilt`).

Phase offsets, heater efficiencies, coupler errors, losses, tap fractions, thermal crosstalk and faults
(dead heaters, dark taps), random or ideal; :class:`tapmesh.calibration.VirtualChip` simulates a chip that
has them. Only tests may compare a calibration against it; the heater law is in docs/calibration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.crosstalk import neighbour_pairs
from tapmesh.calibration.errors import CalibrationError
from tapmesh.circuits.arguments import check_float, check_int
from tapmesh.calibration.heater import heater_phases


def _layout_crosstalk(source, n_heaters: int, thermal_length: float | None):
    """(rows, cols, X values) of the thermal crosstalk of a layout (a chip map or positions/lengths arrays)."""
    from tapmesh.circuits import thermal

    ell = thermal.THERMAL_LENGTH if thermal_length is None else float(thermal_length)
    pos, lengths = source.heater_positions() if hasattr(source, "heater_positions") else source
    if np.shape(pos) != (n_heaters, 2):
        raise ValueError(f"crosstalk_from has {len(pos)} heater positions, the topology has {n_heaters} heaters")
    if hasattr(source, "heater_positions"):
        return thermal.crosstalk_from_chip_map(source, thermal_length=ell)
    return thermal.crosstalk_pairs(pos, lengths, thermal_length=ell)


@dataclass(frozen=True, eq=False)
class AsBuilt:
    """Hidden truth of a fabricated chip (numpy arrays, canonical heater order).

    Attributes:
        phase_offsets: (H,) φ0 in rad.
        alpha: (H,) rad/V².
        beta: (H,) rad/V³.
        crosstalk: (H, H) X, zero diagonal, acting on heater powers (V²).
        delta: (K, 2) splitting errors of the (input, output) coupler of each MZI, rad.
        loss_db: (K, 4) segment losses, dB (order of ``circuits.params.SEGMENT_NAMES``).
        output_loss_db: (n,) dB.
        tap_fraction: (H,) power fraction taken by each tap.
        dead_heaters: heaters that do not heat.
        dark_taps: taps whose gratings send nothing to the camera (both directions).
    """

    phase_offsets: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    crosstalk: np.ndarray
    delta: np.ndarray
    loss_db: np.ndarray
    output_loss_db: np.ndarray
    tap_fraction: np.ndarray
    dead_heaters: tuple[int, ...] = ()
    dark_taps: tuple[int, ...] = ()
    idle_loss_db: np.ndarray | None = None  # (P,) idle segments' loss, dB (None: lossless)

    @classmethod
    def random(
        cls,
        topology: circuits.MeshTopology,
        seed: int = 0,
        delta_sigma: float = 0.03,
        alpha: float = 0.5,
        alpha_spread: float = 0.05,
        beta_sigma: float = 0.0,
        crosstalk: float = 0.0,
        loss_db: float = 0.0,
        loss_db_sigma: float = 0.0,
        tap_fraction: float = 0.02,
        tap_spread: float = 0.0,
        dead_heaters=(),
        dark_taps=(),
        crosstalk_from=None,
        thermal_length: float | None = None,
        balanced_taps: bool = False,
    ) -> "AsBuilt":
        """A random chip: φ0 uniform over [0, 2π); α = ``alpha``·(1 + ``alpha_spread``·N(0,1)); β ~ N(0,
        ``beta_sigma``); crosstalk ``crosstalk``·(1 + 0.2·N(0,1)) between neighbouring heaters
        (:func:`neighbour_pairs`); δ ~ N(0, ``delta_sigma``) rad; segment losses N(``loss_db``,
        ``loss_db_sigma``) dB clipped at 0; tap fractions ``tap_fraction``·(1 + ``tap_spread``·N(0,1)), the
        draws' tails clipped to [1e-4, 0.5]. Out-of-range arguments (``tap_fraction`` outside (0, 0.5], a
        negative spread, ``alpha`` ≤ 0, a heater index off the mesh) raise :class:`CalibrationError`.

        ``crosstalk_from`` takes the crosstalk from a layout instead: a :class:`tapmesh.pcells.ChipMap` (its drawn
        heater positions and deep trenches through :func:`tapmesh.circuits.thermal.crosstalk_pairs`, thermal
        length ``thermal_length`` µm) or a ``(positions (H, 2) µm, lengths (H,) µm)`` pair; each coupling is
        scattered by (1 + 0.2·N(0,1)) and ``crosstalk`` is then ignored.

        ``balanced_taps`` draws the chip of a balanced-tap layout: a dummy tap of the same design fraction and
        spread on every MZI's bottom input and bottom arm, and two on every idle segment, as extra segment loss
        (drawn after everything else, so the other draws keep their values)."""
        if not isinstance(topology, circuits.MeshTopology):
            raise CalibrationError(f"topology must be a circuits.MeshTopology, got {type(topology).__name__}")
        check_int(seed, "seed", minimum=0, error=CalibrationError)
        for name, value in (("delta_sigma", delta_sigma), ("alpha_spread", alpha_spread), ("beta_sigma", beta_sigma),
                            ("crosstalk", crosstalk), ("loss_db", loss_db), ("loss_db_sigma", loss_db_sigma),
                            ("tap_spread", tap_spread)):
            check_float(value, name, minimum=0.0, error=CalibrationError)
        check_float(alpha, "alpha", minimum=0.0, strict_minimum=True, unit="rad/V²", error=CalibrationError)
        check_float(tap_fraction, "tap_fraction", minimum=0.0, strict_minimum=True, maximum=0.5, error=CalibrationError)
        check_float(crosstalk, "crosstalk", maximum=0.5, error=CalibrationError)
        k, n, h = topology.n_mzis, topology.n, topology.n_shifters
        for name, indices in (("dead_heaters", dead_heaters), ("dark_taps", dark_taps)):
            for i in indices:
                check_int(i, f"{name} entry", minimum=0, maximum=h - 1, error=CalibrationError)
        rng = np.random.default_rng(seed)
        x = np.zeros((h, h))
        if crosstalk_from is not None:
            rows, cols, vals = _layout_crosstalk(crosstalk_from, h, thermal_length)
            x[rows, cols] = vals * (1 + 0.2 * rng.normal(size=len(vals)))
        elif crosstalk:
            pairs = neighbour_pairs(topology)
            x[pairs[:, 0], pairs[:, 1]] = crosstalk * (1 + 0.2 * rng.normal(size=len(pairs)))
        taps = tap_fraction * (1 + tap_spread * rng.normal(size=h))
        chip = cls(
            phase_offsets=rng.uniform(0, 2 * np.pi, h),
            alpha=alpha * (1 + alpha_spread * rng.normal(size=h)),
            beta=rng.normal(0.0, beta_sigma, h) if beta_sigma else np.zeros(h),
            crosstalk=x,
            delta=rng.normal(0.0, delta_sigma, (k, 2)),
            loss_db=np.clip(rng.normal(loss_db, loss_db_sigma, (k, 4)), 0.0, None),
            output_loss_db=np.clip(rng.normal(loss_db, loss_db_sigma, n), 0.0, None),
            tap_fraction=np.clip(taps, 1e-4, 0.5),
            dead_heaters=tuple(int(i) for i in dead_heaters),
            dark_taps=tuple(int(i) for i in dark_taps),
        )
        if balanced_taps:
            def dummy_db(size):
                fraction = np.clip(tap_fraction * (1 + tap_spread * rng.normal(size=size)), 1e-4, 0.5)
                return -10 * np.log10(1 - fraction)

            chip.loss_db[:, 1] += dummy_db(k)
            chip.loss_db[:, 3] += dummy_db(k)
            chip = replace(chip, idle_loss_db=dummy_db(topology.n_idle) + dummy_db(topology.n_idle))
        return chip

    @classmethod
    def ideal(cls, topology: circuits.MeshTopology, alpha: float = 0.5, tap_fraction: float = 0.02) -> "AsBuilt":
        """A perfect chip: φ0 = 0, δ = 0, no loss, no crosstalk, uniform α and tap fraction."""
        k, n, h = topology.n_mzis, topology.n, topology.n_shifters
        return cls(
            phase_offsets=np.zeros(h),
            alpha=np.full(h, float(alpha)),
            beta=np.zeros(h),
            crosstalk=np.zeros((h, h)),
            delta=np.zeros((k, 2)),
            loss_db=np.zeros((k, 4)),
            output_loss_db=np.zeros(n),
            tap_fraction=np.full(h, float(tap_fraction)),
        )

    def with_faults(self, dead_heaters=(), dark_taps=()) -> "AsBuilt":
        """A copy with (more) dead heaters and dark taps."""
        return replace(
            self,
            dead_heaters=tuple(sorted(set(self.dead_heaters) | {int(i) for i in dead_heaters})),
            dark_taps=tuple(sorted(set(self.dark_taps) | {int(i) for i in dark_taps})),
        )

    def phases(self, voltages) -> np.ndarray:
        """True phases of every heater at ``voltages`` (canonical order), rad."""
        return heater_phases(voltages, self.phase_offsets, self.alpha, self.beta, self.crosstalk, self.dead_heaters)

    def mesh_params(self, topology: circuits.MeshTopology, voltages) -> circuits.MeshParams:
        """The true mesh parameters at these heater voltages (float64)."""
        phases = self.phases(voltages)
        return circuits.MeshParams.assemble(
            topology,
            phases,
            delta=self.delta,
            loss_db=self.loss_db,
            output_loss_db=self.output_loss_db,
            tap_fraction=self.tap_fraction,
            idle_loss_db=self.idle_loss_db,
        )
