"""The calibrated model of a chip: heater laws, coupler errors, tap efficiencies, and what to do with them.

A :class:`Calibration` is a digital twin. It turns phases into heater voltages (crosstalk-compensated) and
back, builds the :class:`tapmesh.circuits.MeshParams` of the chip at any phases, finds error-corrected voltages
for a target unitary (:meth:`Calibration.voltages_for`), and saves itself to a checksummed JSON file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tapmesh import circuits
from tapmesh.circuits.io import atomic_write_text
from tapmesh.calibration.crosstalk import Crosstalk
from tapmesh.calibration.heater import heater_phases
from tapmesh.calibration.errors import (
    CalibrationError,
    CalibrationFileError,
    CalibrationVersionError,
    VoltageError,
)

FORMAT = "tapmesh-calibration"
FORMAT_VERSION = 1
"""Version of the JSON file format written by :meth:`Calibration.save`; files with a newer version are refused."""

TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class Correction:
    """Result of :meth:`Calibration.correct`: voltages realizing a target, and the fidelities predicted by
    the calibrated model for the corrected and the uncorrected (plain decomposition) settings."""

    voltages: np.ndarray
    phases: np.ndarray
    fidelity: float
    fidelity_uncorrected: float
    fidelity_local: float


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
        loss_db: (K, 4); output_loss_db: (n,) (nominal 0: losses are not fitted).
        tap_fraction: (H,) tap fraction used in the model's propagation (nominal).
        tap_efficiency: (2, H) camera reading per mW in the guide, forward / backward gratings
            (tap fraction × grating and camera gain).
        tap_offset: (2, H) camera dark reading, mW.
        uncertainties: name → (1σ) array of the same shape as the attribute, from the refinement's Jacobian.
        residuals: step name → normalized residuals of that step's fit.
        n_measurements: frames read from the chip to make this calibration.
        dead_heaters, dark_taps: faults found (reported, not fitted).
        fits: sweep data for plots: name → array.
        info: free-form summary (step timings, frame counts per step, notes).
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

    def __setattr__(self, name, value):
        if name == "crosstalk":  # always the sparse operator, whatever was assigned
            value = Crosstalk.coerce(value, self.topology.n_shifters)
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def nominal(cls, topology: circuits.MeshTopology, alpha: float = 0.5, tap_fraction: float = 0.02) -> "Calibration":
        """The design values of an ideal chip: φ0 = 0, uniform α, δ = 0, no loss, no crosstalk."""
        k, n, h = topology.n_mzis, topology.n, topology.n_shifters
        return cls(
            topology=topology,
            phase_offsets=np.zeros(h),
            alpha=np.full(h, float(alpha)),
            beta=np.zeros(h),
            crosstalk=Crosstalk.zeros(h),
            delta=np.zeros((k, 2)),
            loss_db=np.zeros((k, 4)),
            output_loss_db=np.zeros(n),
            tap_fraction=np.full(h, float(tap_fraction)),
            tap_efficiency=np.full((2, h), float(tap_fraction)),
            tap_offset=np.zeros((2, h)),
        )

    @property
    def n_heaters(self) -> int:
        return self.topology.n_shifters

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
        Raises :class:`VoltageError` if a voltage would exceed ``max_voltage``."""
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
        if max_voltage is not None and np.any(v > max_voltage):
            worst = int(np.argmax(v))
            raise VoltageError(f"heater {worst} would need {v[worst]:.3g} V > {max_voltage} V")
        return v

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
        )

    def unitary(self, phases) -> np.ndarray:
        """The calibrated model's transfer matrix at ``phases``."""
        return np.asarray(circuits.unitary(self.topology, self.mesh_params(phases)))

    # ------------------------------------------------------------------ error correction
    def local_correction(self, u) -> np.ndarray:
        """Phases realizing ``u`` on the calibrated chip by local MZI correction (Bandyopadhyay, Hamerly &
        Englund 2021): each MZI's internal phase is re-solved so its splitting matches the ideal one despite
        its couplers' δ, its external phase absorbs the phase error arriving at its inputs, and the phase
        error it leaves on its outputs is carried forward to later MZIs and finally to the output phases γ."""
        ideal = circuits.decompose(self.topology, u)
        theta = np.asarray(ideal.theta, dtype=float).copy()
        phi = np.asarray(ideal.phi, dtype=float).copy()
        gamma = np.asarray(ideal.gamma, dtype=float).copy()
        debt = np.zeros(self.topology.n)
        quarter = np.pi / 4
        for k, (_, top) in enumerate(self.topology.mzis):
            k1, k2 = quarter + self.delta[k, 0], quarter + self.delta[k, 1]
            m0 = _mzi_core(theta[k], quarter, quarter)
            c_val = np.cos(k1) ** 2 * np.cos(k2) ** 2 + np.sin(k1) ** 2 * np.sin(k2) ** 2
            d_val = 2 * np.cos(k1) * np.cos(k2) * np.sin(k1) * np.sin(k2)
            target = np.sin(theta[k] / 2) ** 2
            cos_t = np.clip((c_val - target) / d_val, -1.0, 1.0)
            wrapped = np.angle(np.exp(1j * theta[k]))
            new_theta = math.copysign(float(np.arccos(cos_t)), wrapped if wrapped != 0 else 1.0)
            m1 = _mzi_core(new_theta, k1, k2)
            a, b = debt[top], debt[top + 1]
            c = b + np.angle(m1[0, 1]) - np.angle(m0[0, 1]) if abs(m0[0, 1]) > 1e-9 else None
            d = b + np.angle(m1[1, 1]) - np.angle(m0[1, 1]) if abs(m0[1, 1]) > 1e-9 else None
            # column 0 gives φ' from whichever entry is larger
            if abs(m0[0, 0]) >= abs(m0[1, 0]):
                if c is None:
                    c = a + phi[k] + np.angle(m1[0, 0]) - np.angle(m0[0, 0])  # φ' = φ (free choice)
                    new_phi = phi[k]
                else:
                    new_phi = phi[k] + c - a + np.angle(m0[0, 0]) - np.angle(m1[0, 0])
                if d is None:
                    d = new_phi + a - phi[k] + np.angle(m1[1, 0]) - np.angle(m0[1, 0])
            else:
                if d is None:
                    d = a + phi[k] + np.angle(m1[1, 0]) - np.angle(m0[1, 0])
                    new_phi = phi[k]
                else:
                    new_phi = phi[k] + d - a + np.angle(m0[1, 0]) - np.angle(m1[1, 0])
                if c is None:
                    c = new_phi + a - phi[k] + np.angle(m1[0, 0]) - np.angle(m0[0, 0])
            theta[k], phi[k] = new_theta, new_phi
            debt[top], debt[top + 1] = c, d
        gamma = gamma - debt
        return np.mod(np.concatenate([theta, phi, gamma]), TWO_PI)

    def polish(self, u, phases, max_iterations: int = 300) -> np.ndarray:
        """Gradient polish: maximize the fidelity of the calibrated model's transfer matrix to ``u`` over all
        phases, from ``phases`` (L-BFGS on the JAX model)."""
        import jax
        import jax.numpy as jnp
        from scipy.optimize import minimize

        u = np.asarray(u, dtype=np.complex128)
        base = self.mesh_params(np.asarray(phases, dtype=float))
        topology = self.topology
        target = jnp.asarray(u)
        dead = np.zeros(self.n_heaters, dtype=bool)
        dead[list(self.dead_heaters)] = True
        free = jnp.asarray(~dead)
        fixed = jnp.asarray(np.asarray(phases, dtype=float))

        def loss(p):
            p = jnp.where(free, p, fixed)
            return 1.0 - circuits.fidelity(target, circuits.unitary(topology, base.with_phases(p)))

        value_and_grad = jax.jit(jax.value_and_grad(loss))

        def fun(p):
            value, grad = value_and_grad(jnp.asarray(p))
            return float(value), np.asarray(grad, dtype=float)

        result = minimize(fun, np.asarray(phases, dtype=float), jac=True, method="L-BFGS-B",
                          options={"maxiter": max_iterations, "ftol": 1e-15, "gtol": 1e-12})
        p = np.where(dead, phases, result.x)
        return np.mod(p, TWO_PI)

    def correct(self, u, polish: bool = True, max_iterations: int = 300) -> Correction:
        """Error-corrected settings for the target unitary ``u``: local correction, then (``polish``) the
        gradient polish. Reports the model-predicted fidelity with and without correction."""
        u = circuits.check_unitary(u, tolerance=1e-6)
        if u.shape[0] != self.topology.n:
            raise CalibrationError(f"target is {u.shape[0]}x{u.shape[0]}, the chip has {self.topology.n} modes")
        ideal = np.asarray(circuits.decompose(self.topology, u).phases, dtype=float)
        local = self.local_correction(u)
        phases = self.polish(u, local, max_iterations) if polish else local
        f_model = lambda p: float(circuits.fidelity(u, self.unitary(p)))  # noqa: E731
        return Correction(
            voltages=self.voltages_for_phases(phases),
            phases=phases,
            fidelity=f_model(phases),
            fidelity_uncorrected=f_model(ideal),
            fidelity_local=f_model(local),
        )

    def voltages_for(self, u, polish: bool = True) -> np.ndarray:
        """Heater voltages that realize the unitary ``u`` on this chip, corrected for the calibrated errors."""
        return self.correct(u, polish=polish).voltages

    def voltages_uncorrected(self, u) -> np.ndarray:
        """Voltages of the plain (ideal-coupler) decomposition of ``u``: the baseline correction is compared to."""
        return self.voltages_for_phases(np.asarray(circuits.decompose(self.topology, u).phases, dtype=float))

    # ------------------------------------------------------------------ persistence
    _ARRAYS = (
        "phase_offsets", "alpha", "beta", "delta", "loss_db", "output_loss_db", "tap_fraction",
        "tap_efficiency", "tap_offset",
    )

    def to_dict(self) -> dict:
        """A JSON-ready dict of everything but the checksum."""
        x = self.crosstalk  # row-major (rows, cols, values): the order np.nonzero gave a dense X
        return {
            "topology": {"kind": self.topology.kind, "n": self.topology.n},
            **{name: _encode(getattr(self, name)) for name in self._ARRAYS},
            "crosstalk": {"rows": x.rows.tolist(), "cols": x.cols.tolist(), "values": _encode(x.values)},
            "uncertainties": {k: _encode(v) for k, v in self.uncertainties.items()},
            "residuals": {k: _encode(v) for k, v in self.residuals.items()},
            "fits": {k: _encode(v) for k, v in self.fits.items()},
            "n_measurements": int(self.n_measurements),
            "dead_heaters": [int(i) for i in self.dead_heaters],
            "dark_taps": [int(i) for i in self.dark_taps],
            "info": _jsonable(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        top = circuits.topology(int(data["topology"]["n"]), data["topology"]["kind"])
        h = top.n_shifters
        x = data["crosstalk"]
        crosstalk = Crosstalk(h, np.asarray(x["rows"], dtype=int), np.asarray(x["cols"], dtype=int), _decode(x["values"]))
        return cls(
            topology=top,
            **{name: _decode(data[name]) for name in cls._ARRAYS},
            crosstalk=crosstalk,
            uncertainties={k: _decode(v) for k, v in data.get("uncertainties", {}).items()},
            residuals={k: _decode(v) for k, v in data.get("residuals", {}).items()},
            fits={k: _decode(v) for k, v in data.get("fits", {}).items()},
            n_measurements=int(data.get("n_measurements", 0)),
            dead_heaters=tuple(int(i) for i in data.get("dead_heaters", ())),
            dark_taps=tuple(int(i) for i in data.get("dark_taps", ())),
            info=dict(data.get("info", {})),
        )

    def save(self, path) -> Path:
        """Write the calibration to ``path`` as JSON (format version, SHA-256 checksum of the payload).

        The write is atomic: a temporary file in the same folder is flushed, synced and renamed over
        ``path``, so a failed save leaves any previous file untouched."""
        path = Path(path)
        payload = self.to_dict()
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "checksum": _checksum(payload),
            "calibration": payload,
        }
        return atomic_write_text(path, json.dumps(document, allow_nan=False))

    @classmethod
    def load(cls, path) -> "Calibration":
        """Read a file written by :meth:`save`. Raises :class:`CalibrationFileError` if it is missing,
        not JSON, not a tapmesh calibration or fails its checksum, :class:`CalibrationVersionError` if it
        was written by a newer format version."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise CalibrationFileError(f"cannot read calibration file {path}: {error}") from error
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CalibrationFileError(f"calibration file {path} is not valid JSON: {error}") from error
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise CalibrationFileError(f"{path} is not a tapmesh calibration file")
        version = document.get("version")
        if not isinstance(version, int):
            raise CalibrationFileError(f"{path} has no valid format version")
        if version > FORMAT_VERSION:
            raise CalibrationVersionError(
                f"{path} has format version {version}; this tapmesh reads versions up to {FORMAT_VERSION}"
            )
        payload = document.get("calibration")
        if not isinstance(payload, dict) or document.get("checksum") != _checksum(payload):
            raise CalibrationFileError(f"{path} fails its checksum: the file is corrupt or was edited")
        try:
            return cls.from_dict(payload)
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationFileError(f"{path} is missing or has malformed fields: {error}") from error

    def summary(self) -> dict:
        """Headline figures (for CLIs and reports)."""
        return {
            "n_modes": self.topology.n,
            "kind": self.topology.kind,
            "n_heaters": self.n_heaters,
            "n_measurements": int(self.n_measurements),
            "measurements_per_mzi": self.n_measurements / max(self.topology.n_mzis, 1),
            "dead_heaters": list(self.dead_heaters),
            "dark_taps": list(self.dark_taps),
            **{f"rms_residual_{k}": float(np.sqrt(np.mean(np.square(v)))) for k, v in self.residuals.items() if np.size(v)},
        }


def _mzi_core(theta: float, k1: float, k2: float) -> np.ndarray:
    """B(κ2)·diag(e^{iθ}, 1)·B(κ1): an MZI without its external phase."""
    def b(k):
        return np.array([[np.cos(k), 1j * np.sin(k)], [1j * np.sin(k), np.cos(k)]])

    return b(k2) @ np.diag([np.exp(1j * theta), 1.0]) @ b(k1)


def _encode(a):
    """Array → nested lists with non-finite values as strings (strict JSON)."""
    a = np.asarray(a, dtype=float)
    if np.all(np.isfinite(a)):
        return {"shape": list(a.shape), "data": a.ravel().tolist()}
    data = [x if math.isfinite(x) else repr(x) for x in a.ravel().tolist()]
    return {"shape": list(a.shape), "data": data}


def _decode(d) -> np.ndarray:
    data = [float(x) for x in d["data"]]
    return np.asarray(data, dtype=float).reshape(d["shape"])


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def _checksum(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
