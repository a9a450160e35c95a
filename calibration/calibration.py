"""The calibrated model of a chip: heater laws, coupler errors, tap efficiencies, and what to do with them.

A :class:`Calibration` is a digital twin. It turns phases into heater voltages (crosstalk-compensated) and
back, builds the :class:`tapmesh.circuits.MeshParams` of the chip at any phases, finds error-corrected voltages
for a target unitary (:meth:`Calibration.voltages_for`), and saves itself to a checksummed JSON file
(:mod:`tapmesh.calibration.correction`, :mod:`tapmesh.calibration.persistence`). See docs/calibration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tapmesh import circuits
from tapmesh.calibration import correction, persistence
from tapmesh.calibration.correction import Correction
from tapmesh.calibration.crosstalk import Crosstalk
from tapmesh.calibration.heater import heater_phases
from tapmesh.calibration.errors import VoltageError
from tapmesh.calibration.persistence import FORMAT_VERSION  # noqa: F401  (re-exported)

TWO_PI = 2 * np.pi


@dataclass(eq=False)
class Calibration:
    """A calibrated chip model (numpy arrays, canonical heater order θ…, φ…, γ…).

    Attributes:
        topology: the mesh.
        phase_offsets: (H,) φ0, rad in [0, 2π).
        alpha: (H,) rad/V² (0 for a dead heater).
        beta: (H,) rad/V³.
        crosstalk: X acting on heater powers (zero diagonal), a sparse (H, H)
            :class:`tapmesh.calibration.crosstalk.Crosstalk` operator: only neighbouring heaters couple. Assigning
            a dense (H, H) array or a scipy sparse matrix converts it.
        delta: (K, 2) coupler splitting errors, rad.
        loss_db: (K, 4); output_loss_db: (n,) (nominal 0: losses are not fitted; a balanced-tap design's
            dummy taps are nominal loss on each MZI's bottom input and arm, see :meth:`nominal`).
        tap_fraction: (H,) tap fraction used in the model's propagation (nominal).
        tap_efficiency: (2, H) camera reading per mW in the guide, forward / backward gratings
            (tap fraction × grating and camera gain).
        tap_offset: (2, H) camera dark reading, mW.
        uncertainties: name → (1σ) array of the same shape as the attribute, from the refinement's Jacobian.
        residuals: step name → normalized residuals of that step's fit.
        n_measurements: frames read from the chip to make this calibration.
        dead_heaters, dark_taps: faults found (reported, not fitted).
        fits: sweep data for plots: name → array.
        info: free-form summary (step timings, frame counts per step, notes, ``bench_seconds`` per step
            and ``"total"`` at the bench's costs, ``bench_time`` with the operation counts).
        quality: the verdict on this calibration (:class:`tapmesh.calibration.quality.Quality`), computed
            from its own data by :func:`~tapmesh.calibration.calibrate`; ``None`` for a hand-made one.
        idle_loss_db: (P,) loss of the idle segments (``topology.tables.idle_slots``), dB; ``None`` → zeros.
    """

    topology: circuits.MeshTopology
    phase_offsets: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    crosstalk: Crosstalk
    delta: np.ndarray
    loss_db: np.ndarray
    output_loss_db: np.ndarray
    tap_fraction: np.ndarray
    tap_efficiency: np.ndarray
    tap_offset: np.ndarray
    uncertainties: dict = field(default_factory=dict)
    residuals: dict = field(default_factory=dict)
    n_measurements: int = 0
    dead_heaters: tuple[int, ...] = ()
    dark_taps: tuple[int, ...] = ()
    fits: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    quality: object = None
    idle_loss_db: np.ndarray = None

    def __post_init__(self):
        if self.idle_loss_db is None:
            self.idle_loss_db = np.zeros(self.topology.n_idle)

    def __setattr__(self, name, value):
        if name == "crosstalk":  # always the sparse operator, whatever was assigned
            value = Crosstalk.coerce(value, self.topology.n_shifters)
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def nominal(cls, topology: circuits.MeshTopology, alpha: float = 0.5, tap_fraction: float = 0.02,
                balanced_taps: bool = False) -> "Calibration":
        """The design values of an ideal chip: φ0 = 0, uniform α, δ = 0, no loss, no crosstalk.

        ``balanced_taps``: the layout has a dummy tap of the same fraction on every MZI's bottom input and
        bottom arm and two on every idle segment (``pcells.mesh(balanced_taps=True)``); the model carries
        them as nominal segment loss, so every path loses the same power."""
        k, n, h = topology.n_mzis, topology.n, topology.n_shifters
        dummy_db = -10 * np.log10(1 - float(tap_fraction)) if balanced_taps else 0.0
        loss_db = np.zeros((k, 4))
        loss_db[:, 1] = loss_db[:, 3] = dummy_db
        return cls(
            topology=topology,
            phase_offsets=np.zeros(h),
            alpha=np.full(h, float(alpha)),
            beta=np.zeros(h),
            crosstalk=Crosstalk.zeros(h),
            delta=np.zeros((k, 2)),
            loss_db=loss_db,
            output_loss_db=np.zeros(n),
            tap_fraction=np.full(h, float(tap_fraction)),
            tap_efficiency=np.full((2, h), float(tap_fraction)),
            tap_offset=np.zeros((2, h)),
            idle_loss_db=np.full(topology.n_idle, 2 * dummy_db),
        )

    def segment_keep(self) -> np.ndarray:
        """(K, 4) amplitude transmission of each MZI's segments in :data:`tapmesh.circuits.params.SEGMENT_NAMES`
        order (top input, bottom input, top arm, bottom arm): segment loss, and the monitor tap on the
        top input (φ) and top arm (θ). The per-MZI fits divide measured light by these."""
        k = self.topology.n_mzis
        keep = 10 ** (-np.asarray(self.loss_db, dtype=float) / 20)
        t = np.asarray(self.tap_fraction, dtype=float)
        keep[:, 0] *= np.sqrt(1 - t[k : 2 * k])
        keep[:, 2] *= np.sqrt(1 - t[:k])
        return keep

    def input_power_ratio(self, k: int) -> float:
        """Power transmission of MZI ``k``'s top input segment (φ tap included) over its bottom input's:
        a measured bottom/top split times this is the coupler's own split."""
        loss = self.loss_db[k]
        return float((1 - self.tap_fraction[self.topology.n_mzis + k]) * 10 ** ((loss[1] - loss[0]) / 10))

    def idle_keep(self) -> np.ndarray:
        """(C, n) amplitude transmission of each (column, mode) slot with no MZI (1 where an MZI sits)."""
        top = self.topology
        keep = np.ones((top.n_columns, top.n))
        slots = top.tables.idle_slots
        keep[slots[:, 0], slots[:, 1]] = 10 ** (-np.asarray(self.idle_loss_db, dtype=float) / 20)
        return keep

    @property
    def n_heaters(self) -> int:
        return self.topology.n_shifters

    @property
    def bench_seconds(self) -> float | None:
        """Bench time this calibration took at the chip's declared costs, s (``None`` if not recorded:
        made by hand, or saved before the bench-time model); per step in ``info["bench_seconds"]``."""
        total = self.info.get("bench_seconds", {}).get("total")
        return None if total is None else float(total)

    # ------------------------------------------------------------------ heater law
    def _check_vector(self, values, name: str) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        if v.shape != (self.n_heaters,):
            raise VoltageError(f"{name} must have shape ({self.n_heaters},), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise VoltageError(f"{name} contain NaN or infinity")
        return v

    def phases_for_voltages(self, voltages) -> np.ndarray:
        """Phases (rad, not wrapped) the calibrated heater law predicts at ``voltages``."""
        v = self._check_vector(voltages, "voltages")
        return heater_phases(v, self.phase_offsets, self.alpha, self.beta, self.crosstalk, self.dead_heaters)

    def voltages_for_phases(self, phases, max_voltage: float | None = None) -> np.ndarray:
        """Non-negative heater voltages realizing ``phases`` modulo 2π, compensating thermal crosstalk.

        Each heater takes the smallest power reaching its target modulo 2π (a fixed-point iteration
        on the crosstalk, Newton on the cubic term). Dead heaters get 0 V (their phase is what it is).
        Raises :class:`VoltageError` if a voltage would exceed ``max_voltage``, or if a target is out of reach
        (a β < 0 law peaks at 4α³/(27β²) rad: a phase above it has no voltage)."""
        target = self._check_vector(phases, "phases")
        dead = np.zeros(self.n_heaters, dtype=bool)
        dead[list(self.dead_heaters)] = True
        alive = ~dead & (self.alpha > 0)
        alpha = np.where(alive, self.alpha, 1.0)
        power = np.zeros(self.n_heaters)
        v = np.zeros(self.n_heaters)
        # the number of 2π wraps is chosen once (smallest non-negative phase to add) and only ever
        # increased afterwards, so the crosstalk iteration cannot oscillate between branches
        wraps = np.ceil(-(target - self.phase_offsets) / TWO_PI)
        crosstalk = self.crosstalk
        cubic = np.nonzero(alive & (self.beta != 0))[0]  # heaters that need Newton on the cubic term
        a_c, b_c = alpha[cubic], self.beta[cubic]
        for _ in range(200):
            if crosstalk.nnz:
                need = target - self.phase_offsets - self.alpha * (crosstalk @ power)
            else:
                need = target - self.phase_offsets
            wraps = np.maximum(wraps, np.ceil(-need / TWO_PI))
            residual = need + TWO_PI * wraps
            # solve α V² + β V³ = residual for V ≥ 0 (Newton from the quadratic solution, where β ≠ 0)
            v_new = np.sqrt(np.clip(residual / alpha, 0.0, None))
            if len(cubic):
                vc, rc = v_new[cubic], residual[cubic]
                for _ in range(8):
                    v2 = vc * vc
                    f = (a_c + b_c * vc) * v2 - rc
                    if np.max(np.abs(f)) < 1e-13:
                        break
                    df = (2 * a_c + 3 * b_c * vc) * vc
                    ok = np.abs(df) > 1e-12
                    vc = np.where(ok, np.maximum(vc - f / np.where(ok, df, 1.0), 0.0), vc)
                v_new[cubic] = vc
            v_new[~alive] = 0.0
            new_power = v_new**2
            if np.max(np.abs(new_power - power), initial=0.0) < 1e-13 and np.max(np.abs(v_new - v)) < 1e-12:
                v = v_new
                break
            if not crosstalk.nnz:  # nothing couples the heaters: one pass is the answer
                v = v_new
                break
            power, v = new_power, v_new
        if len(cubic):
            self._check_cubic_reach(cubic, v[cubic], residual[cubic])
        if max_voltage is not None and np.any(v > max_voltage):
            worst = int(np.argmax(v))
            raise VoltageError(f"heater {worst} would need {v[worst]:.3g} V > {max_voltage} V")
        return v

    def _check_cubic_reach(self, heaters: np.ndarray, v: np.ndarray, need: np.ndarray) -> None:
        """Raise :class:`VoltageError` where α V² + β V³ = ``need`` (rad) has no solution: a β < 0 law peaks
        at V = −2α/(3β), and a phase above that peak is out of reach at any voltage."""
        a, b = self.alpha[heaters], self.beta[heaters]
        miss = np.abs((a + b * v) * v * v - need)
        bad = np.flatnonzero(miss > 1e-8 * np.maximum(1.0, np.abs(need)))
        if len(bad):
            j = int(bad[0])
            i, aj, bj = int(heaters[j]), float(a[j]), float(b[j])
            peak = f"; its law peaks at {4 * aj**3 / (27 * bj * bj):.4g} rad at {-2 * aj / (3 * bj):.4g} V" if bj < 0 else ""
            raise VoltageError(f"heater {i} cannot reach its target: α V² + β V³ (α = {aj:.4g} rad/V², "
                               f"β = {bj:.4g} rad/V³) must give {float(need[j]):.4g} rad{peak} "
                               f"({len(bad)} heaters out of reach)")

    # ------------------------------------------------------------------ digital twin
    def mesh_params(self, phases) -> circuits.MeshParams:
        """:class:`tapmesh.circuits.MeshParams` of the calibrated chip at ``phases`` (canonical order)."""
        phases = np.asarray(phases, dtype=float)
        if phases.shape != (self.n_heaters,):
            raise VoltageError(f"phases must have shape ({self.n_heaters},), got {phases.shape}")
        return circuits.MeshParams.assemble(
            self.topology,
            phases,
            delta=self.delta,
            loss_db=self.loss_db,
            output_loss_db=self.output_loss_db,
            tap_fraction=self.tap_fraction,
            idle_loss_db=self.idle_loss_db,
        )

    def unitary(self, phases) -> np.ndarray:
        """The calibrated model's transfer matrix at ``phases``."""
        return np.asarray(circuits.unitary(self.topology, self.mesh_params(phases)))

    # ------------------------------------------------------------------ error correction (correction.py)
    def local_correction(self, u) -> np.ndarray:
        """Phases realizing ``u`` by local MZI correction: :func:`tapmesh.calibration.correction.local_correction`."""
        return correction.local_correction(self, u)

    def polish(self, u, phases, max_iterations: int = 300) -> np.ndarray:
        """Gradient polish of ``phases`` toward ``u``: :func:`tapmesh.calibration.correction.polish`."""
        return correction.polish(self, u, phases, max_iterations)

    def correct(self, u, polish: bool = True, max_iterations: int = 300) -> Correction:
        """Error-corrected settings for the target unitary ``u``: :func:`tapmesh.calibration.correction.correct`."""
        return correction.correct(self, u, polish, max_iterations)

    def voltages_for(self, u, polish: bool = True) -> np.ndarray:
        """Heater voltages that realize the unitary ``u`` on this chip, corrected for the calibrated errors."""
        return self.correct(u, polish=polish).voltages

    def voltages_uncorrected(self, u) -> np.ndarray:
        """Voltages of the plain (ideal-coupler) decomposition of ``u``: the baseline correction is compared to."""
        return self.voltages_for_phases(np.asarray(circuits.decompose(self.topology, u).phases, dtype=float))

    # ------------------------------------------------------------------ persistence (persistence.py)
    _ARRAYS = persistence.ARRAYS

    def to_dict(self) -> dict:
        """A JSON-ready dict of everything but the checksum."""
        return persistence.to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        """The calibration :meth:`to_dict` gave ``data``."""
        return persistence.from_dict(cls, data)

    def save(self, path) -> Path:
        """Write the calibration to ``path`` as JSON: :func:`tapmesh.calibration.persistence.save` (atomic,
        format version, SHA-256 checksum of the payload). A calibration whose verdict failed goes beside
        ``path``, to ``NAME.failed.json`` (never over a good file); the path written is returned."""
        return persistence.save(self, path)

    @classmethod
    def load(cls, path) -> "Calibration":
        """Read a file written by :meth:`save` (:func:`tapmesh.calibration.persistence.load`). Raises
        :class:`CalibrationFileError` if it is missing, not JSON, not a tapmesh calibration or fails its
        checksum, :class:`CalibrationVersionError` if it was written by a newer format version."""
        return persistence.load(cls, path)

    def summary(self) -> dict:
        """Headline figures (for CLIs and reports)."""
        return {
            "n_modes": self.topology.n,
            "kind": self.topology.kind,
            "n_heaters": self.n_heaters,
            "n_measurements": int(self.n_measurements),
            "measurements_per_mzi": self.n_measurements / max(self.topology.n_mzis, 1),
            "bench_seconds": self.bench_seconds,
            "bench_seconds_by_step": {k: v for k, v in self.info.get("bench_seconds", {}).items() if k != "total"},
            "dead_heaters": list(self.dead_heaters),
            "dark_taps": list(self.dark_taps),
            **({"quality_passed": bool(self.quality.passed), "predicted_fidelity": self.quality.predicted_fidelity,
                "fidelity_low": self.quality.fidelity_low} if self.quality is not None else {}),
            **{f"rms_residual_{k}": float(np.sqrt(np.mean(np.square(v)))) for k, v in self.residuals.items() if np.size(v)},
        }
