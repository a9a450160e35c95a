"""In-situ programming of a target unitary: measured transfer matrix, calibrated model's Jacobian, Gauss–Newton.

:func:`program` starts from the calibration's error-corrected voltages, reads the chip's transfer matrix
through its coherent output readout (one frame per input port), and corrects the phases by damped
Gauss–Newton steps whose Jacobian comes from the calibrated model (matrix-free: JAX JVPs and VJPs of the
engine, solved by LSQR). The model only has to be right to first order in the step; the measured light
decides where the chip is, so the estimates' errors that pile up with depth do not. Derivation and
measurements: docs/calibration.md ("In-situ programming").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.bench import Bench
from tapmesh.calibration.calibration import Calibration
from tapmesh.calibration.capabilities import MissingCapabilityError, capabilities_of
from tapmesh.calibration.errors import CalibrationError

TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class Programmed:
    """What :func:`program_in_situ` did.

    Attributes:
        voltages: (H,) V, the best setting found (highest measured fidelity).
        phases: (H,) rad, the calibrated model's phases of that setting.
        measured_fidelity: the fidelity to the target measured at each setting read (the start first).
        frames: coherent readout frames used.
        bench_seconds: bench time at the chip's declared costs, s.
    """

    voltages: np.ndarray
    phases: np.ndarray
    measured_fidelity: list = field(default_factory=list)
    frames: int = 0
    bench_seconds: float = 0.0


def _operators(cal: Calibration):
    """Jitted ``U(p)`` and the JVP/VJP of ``p → [Re U, Im U]`` of the calibrated model (rad → matrix)."""
    import jax
    import jax.numpy as jnp

    topology = cal.topology

    def stacked(base, p, rot):
        u = circuits.unitary(topology, base.with_phases(p)) * rot
        return jnp.stack([u.real, u.imag])

    forward = jax.jit(lambda base, p: circuits.unitary(topology, base.with_phases(p)))
    jvp = jax.jit(lambda base, p, rot, t: jax.jvp(lambda q: stacked(base, q, rot), (p,), (t,))[1])
    vjp = jax.jit(lambda base, p, rot, c: jax.vjp(lambda q: stacked(base, q, rot), p)[1](c)[0])
    return forward, jvp, vjp


def _closest_scale(m: np.ndarray, u: np.ndarray) -> complex:
    """The complex c minimizing ‖u − c·m‖ (Frobenius)."""
    return complex(np.vdot(m, u) / np.vdot(m, m).real)


def _gauss_newton_step(cal, ops, base, p, u, measured, free, damping, lsqr_iterations):
    """Phase step Δp (rad) with c·J Δp ≈ u − c'·M (M measured; c, c' the complex scales of the model and of
    M that bring each closest to u)."""
    import jax.numpy as jnp
    from scipy.sparse.linalg import LinearOperator, lsqr

    forward, jvp, vjp = ops
    n = u.shape[0]
    model = np.asarray(forward(base, jnp.asarray(p)))
    # global phase and loss are not the phases' to fix: both matrices are scaled by the complex number
    # that brings them closest to u (the taps take ~2 % per heated segment, so |M| ≈ 0.5 at n = 32)
    rot = _closest_scale(model, u)
    target = u - _closest_scale(measured, u) * measured
    rhs = np.concatenate([target.real.ravel(), target.imag.ravel()])
    pj, rj = jnp.asarray(p), jnp.asarray(rot)
    h = p.size

    def matvec(t):
        t = np.where(free, np.ravel(t), 0.0)
        return np.asarray(jvp(base, pj, rj, jnp.asarray(t))).ravel()

    def rmatvec(c):
        g = np.asarray(vjp(base, pj, rj, jnp.asarray(np.ravel(c).reshape(2, n, n))))
        return np.where(free, g, 0.0)

    op = LinearOperator((2 * n * n, h), matvec=matvec, rmatvec=rmatvec, dtype=float)
    return lsqr(op, rhs, damp=damping, atol=1e-8, btol=1e-8, iter_lim=lsqr_iterations)[0]


def program_in_situ(
    chip,
    u,
    calibration: Calibration,
    *,
    iterations: int = 6,
    tolerance: float = 1e-4,
    repeat_frames: int = 1,
    power_mw: float = 1.0,
    damping: float = 1e-3,
    lsqr_iterations: int = 200,
    start: str = "local",
    max_voltage: float | None = None,
) -> Programmed:
    """Program the unitary ``u`` on ``chip`` against measured light; see :func:`program`.

    Args:
        chip: the chip (any :class:`tapmesh.calibration.Chip` with a coherent output readout).
        u: (n, n) target unitary.
        calibration: the chip's :class:`Calibration` (its model gives the start and the Jacobian).
        iterations: Gauss–Newton steps at most (each one reading of the transfer matrix).
        tolerance: stop once the measured infidelity 1 − F is below this.
        repeat_frames: coherent frames averaged per input port and reading.
        power_mw: optical power injected per port, mW.
        damping: Tikhonov damping of the step (LSQR ``damp``), in units of the Jacobian's entries.
        lsqr_iterations: LSQR iterations per step at most.
        start: ``"local"`` (local correction, default) or ``"polish"`` (plus the model's gradient polish).
        max_voltage: raise :class:`VoltageError` rather than set a heater above this, V.

    Raises:
        MissingCapabilityError: the chip declares (or shows on the first read) no coherent readout.
        CalibrationError: the target's size or the calibration does not match the chip, bad arguments.
    """
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a tapmesh.calibration.Calibration, got {type(calibration).__name__}")
    n, h = int(chip.n_modes), int(chip.n_heaters)
    if calibration.topology.n != n or calibration.n_heaters != h:
        raise CalibrationError(f"calibration is for {calibration.topology.n} modes / {calibration.n_heaters} "
                               f"heaters, the chip has {n} / {h}")
    u = circuits.check_unitary(u, tolerance=1e-6)
    if u.shape[0] != n:
        raise CalibrationError(f"target is {u.shape[0]}x{u.shape[0]}, the chip has {n} modes")
    if start not in ("local", "polish"):
        raise ValueError(f"start must be 'local' or 'polish', got {start!r}")
    for name, value in (("iterations", iterations), ("repeat_frames", repeat_frames), ("lsqr_iterations", lsqr_iterations)):
        if not (isinstance(value, (int, np.integer)) and value >= (0 if name == "iterations" else 1)):
            raise ValueError(f"{name} must be a non-negative integer (≥ 1 for repeat_frames, lsqr_iterations), got {value!r}")
    if not (np.isfinite(power_mw) and power_mw > 0):
        raise ValueError(f"power_mw must be a positive number of mW, got {power_mw!r}")
    if not capabilities_of(chip).coherent_readout:
        raise MissingCapabilityError("coherent_readout", "program()", "in-situ programming reads the transfer matrix coherently")

    bench = Bench(chip, n, h)
    bench.clock.step = "program"
    probe = np.tile(np.eye(n, dtype=np.complex128) * np.sqrt(power_mw), (repeat_frames, 1))

    def read(volts):
        try:
            y = bench.measure(volts, probe, "input", coherent=True)["coherent"]
        except NotImplementedError:
            raise MissingCapabilityError("coherent_readout", "program()", "the chip's read_outputs_coherent is not implemented") from None
        return y.reshape(repeat_frames, n, n).mean(0).T / np.sqrt(power_mw)  # column j: output of port j

    phases = np.asarray(calibration.correct(u, polish=start == "polish").phases, dtype=float)
    free = np.ones(h, dtype=bool)
    free[list(calibration.dead_heaters)] = False
    base = calibration.mesh_params(phases)
    ops = _operators(calibration) if iterations else None
    volts = calibration.voltages_for_phases(phases, max_voltage=max_voltage)
    measured = read(volts)
    history = [float(circuits.fidelity(u, measured))]
    best = (history[0], volts, phases)
    for _ in range(iterations):
        if 1 - best[0] < tolerance:
            break
        step = _gauss_newton_step(calibration, ops, base, best[2], u, measured, free, damping, lsqr_iterations)
        for scale in (1.0, 0.5):  # a full step, and half of it when the full one measured worse
            trial = np.mod(best[2] + scale * step, TWO_PI)
            v_trial = calibration.voltages_for_phases(trial, max_voltage=max_voltage)
            m_trial = read(v_trial)
            history.append(float(circuits.fidelity(u, m_trial)))
            if history[-1] > best[0]:
                best, measured = (history[-1], v_trial, trial), m_trial
                break
        else:
            break
    bench.set(best[1])
    return Programmed(voltages=best[1], phases=best[2], measured_fidelity=history, frames=bench.frames,
                      bench_seconds=bench.clock.total_seconds)


def program(chip, u, calibration: Calibration, **options) -> np.ndarray:
    """Voltages (H,) V that realize the unitary ``u`` on ``chip``, found against measured light.

    Starts from ``calibration.voltages_for(u)`` (local correction on the calibrated model), then reads the
    chip's transfer matrix (coherent readout, one frame per input port) and takes Gauss–Newton steps on the
    phases with the calibrated model's Jacobian, keeping the setting of highest measured fidelity; the chip
    is left at it. Options and errors: :func:`program_in_situ`, which also returns the measured fidelities
    and the bench time."""
    return program_in_situ(chip, u, calibration, **options).voltages
