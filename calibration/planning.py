"""What :func:`~tapmesh.calibration.calibrate` can do on this bench, decided before the first frame, and its first frames.

:func:`plan_steps` turns the chip's declared :class:`~tapmesh.calibration.Capabilities` into a
:class:`Plan` (the drive range each heater is swept over, which steps run, which fall back and how), or
raises :class:`~tapmesh.calibration.MissingCapabilityError`; :func:`measure_camera` takes the camera's dark
frames and noise floor; :func:`fine_sweep` picks the fine sweeps' range from the discovered heater laws.
The rules are set out in docs/calibration.md ("Capabilities and bench time").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from tapmesh.calibration.bench import Bench
from tapmesh.calibration.capabilities import Capabilities, MissingCapabilityError


@dataclass
class Plan:
    """The calibration's plan on one bench: drive limits, steps that run, fallbacks taken (recorded)."""

    low: np.ndarray
    high: np.ndarray
    x_top: np.ndarray  # (H,) largest drive² each heater is taken to (every heater there at once is allowed)
    backward: bool  # light injected at the output side is used
    refine: bool  # the global refinement runs
    coherent_gamma: bool  # the output phases γ are read coherently
    notes: list = field(default_factory=list)
    degraded: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


def plan_steps(caps: Capabilities, steps, method: str, topology, h: int, max_voltage: float | None) -> Plan:
    """The :class:`Plan` for ``steps`` on a bench declaring ``caps``; raises
    :class:`MissingCapabilityError` for what cannot be done at all (before any frame)."""
    low, high = caps.limits(h)
    unit = "V" if caps.drive == "voltage" else "mA"
    if np.any(low > 0) or np.any(high <= 0):
        raise MissingCapabilityError(
            "drive_min", "calibrate", f"every heater must accept 0 {unit} (its off state); declared range "
            f"[{low.max():.3g}, {high.min():.3g}] {unit}")
    top = high**2
    if max_voltage is not None:
        top = np.minimum(top, float(max_voltage) ** 2)
    if caps.max_total_power_mw is not None:
        # all heaters at the same drive² x at once: Σ x / R (V, → W ×1e3 mW) or Σ x R (mA, µW ×1e-3)
        r = np.broadcast_to(np.asarray(caps.heater_resistance_ohm, dtype=float), (h,))
        per_x = np.sum(1e3 / r) if caps.drive == "voltage" else np.sum(r * 1e-3)
        cap = caps.max_total_power_mw / per_x * (1 - 1e-6)
        if np.any(cap < top):
            top = np.minimum(top, cap)
    plan = Plan(low, high, top, backward=bool(caps.output_side_source), refine="refine" in steps,
                coherent_gamma=bool(caps.coherent_readout))
    if caps.max_total_power_mw is not None and np.any(top < high**2):
        plan.notes.append(f"drive capped at {np.sqrt(top.min()):.3g} {unit} on every heater so that all heaters "
                          f"at once stay within the declared {caps.max_total_power_mw:g} mW")
    if method == "sweeps" and not caps.output_side_source:
        raise MissingCapabilityError("output_side_source", "method='sweeps' (its θ sweeps use backward light)",
                                     "method='progressive' uses forward light only")
    if plan.refine and not caps.output_side_source:
        plan.refine = False
        plan.skipped.append("refine")
        plan.degraded.append("refine")
        plan.notes.append("refinement skipped: it reads backward light and the bench has no output-side source; "
                          "the progressive stages' estimates are kept (16 frames per setting)")
    if plan.refine and not (caps.coherent_readout or caps.output_detectors):
        plan.refine = False
        plan.skipped.append("refine")
        plan.degraded.append("refine")
        plan.notes.append("refinement skipped: it needs output detectors or a coherent readout")
    return plan


def without_backward_light(caps: Capabilities, plan: Plan, steps, method: str, topology, h: int,
                           max_voltage: float | None) -> tuple[Capabilities, Plan]:
    """The capabilities and plan of a bench whose output-side light reaches no backward grating (found by
    :func:`measure_camera`): planned as a bench with no output-side source, so the refinement, the γ fit
    from backward light and the θ sweeps take their documented fallbacks (or
    :class:`MissingCapabilityError`), and ``backward_taps`` is named degraded."""
    caps = replace(caps, output_side_source=False)
    again = plan_steps(caps, steps, method, topology, h, max_voltage)
    again.notes = list(dict.fromkeys([*plan.notes, "backward gratings all dark (no light from the output side "
                                      "reaches the camera): planned as a bench without an output-side source",
                                      *again.notes]))
    again.degraded = list(dict.fromkeys([*plan.degraded, "backward_taps", *again.degraded]))
    again.skipped = list(dict.fromkeys([*plan.skipped, *again.skipped]))
    return caps, again


BACKWARD_DARK_FRACTION = 0.9
"""When at least this fraction of the backward gratings sees no light (and the forward ones do), the bench's
backward readout is taken as broken: a bench fault named once, not that many dark taps."""


def measure_camera(bench: Bench, rng: np.random.Generator, power_mw: float, backward: bool,
                   dark_frames: int = 4, repeats: int = 8) -> dict:
    """Dark frames (offsets and read noise, mW), repeated frames of one lit field (the noise floor of a
    reading at signal level, mW) and random probe fields (dark taps). Without ``backward`` the
    backward gratings are not read (their offsets are set to the forward ones, unused)."""
    n, h = bench.n, bench.h
    zero_v = np.zeros(h)
    zeros = np.zeros((dark_frames, n))
    d_fwd = bench.measure(zero_v, zeros, "input", taps="forward")["taps"]
    d_bwd = bench.measure(zero_v, zeros, "output", taps="backward")["taps"] if backward else d_fwd
    offsets = np.stack([d_fwd.mean(0), d_bwd.mean(0)])
    read_sigma = float(np.sqrt(np.mean(np.concatenate([d_fwd.var(0, ddof=1), d_bwd.var(0, ddof=1)]))))
    probe = (rng.normal(size=(4, n)) + 1j * rng.normal(size=(4, n))) * np.sqrt(power_mw / 2)
    lit_f = bench.measure(zero_v, probe, "input", taps="forward")["taps"] - offsets[0]
    lit_b = bench.measure(zero_v, probe, "output", taps="backward")["taps"] - offsets[1] if backward else lit_f
    signal = np.stack([lit_f.max(0), lit_b.max(0)])
    floor = 10 * read_sigma + 1e-12
    typical = np.median(signal, axis=1, keepdims=True)
    dark_grating = signal < np.maximum(floor, 0.02 * typical)
    backward_dark = bool(backward and dark_grating[1].mean() >= BACKWARD_DARK_FRACTION
                         and dark_grating[0].mean() < BACKWARD_DARK_FRACTION)
    # a direction dark at (almost) every grating is a fault of the bench, not of each tap: its readings are
    # left out, and the taps count as dark only where the forward light does not reach them either
    dark_taps = tuple(int(i) for i in np.nonzero(dark_grating[0] if backward_dark else dark_grating.any(0))[0])
    if backward_dark:
        dark_grating[1] = True
    # one field, repeated: the spread of a reading at signal level (read noise and shot noise together)
    same = bench.measure(zero_v, np.repeat(probe[:1], repeats, axis=0), "input", taps="forward")["taps"]
    lit = ~dark_grating[0]
    spread = same[:, lit].std(0, ddof=1) if lit.any() else np.array([read_sigma])
    return {"offsets": offsets, "usable": ~dark_grating, "dark_taps": dark_taps, "backward_dark": backward_dark,
            "read_noise_mw": read_sigma,
            "noise_mw": float(max(read_sigma, np.median(spread)))}


def fine_sweep(stages, x_top: np.ndarray, points: int, hint: float) -> np.ndarray:
    """The fine sweeps' points (drive², uniform from 0) from column 0's discovered laws: 1.5 fringes of the
    median heater, at least 1.15 of the weakest, within the limits. Heaters not yet discovered start
    from the median law (``hint`` if none was found)."""
    found = np.array([a for a in stages.discovered.values() if a is not None])
    limit = float(np.min(x_top))
    if len(found):
        median, weakest = float(np.median(found)), float(np.min(found))
        x_max = min(limit, max(3 * np.pi / median, 2.3 * np.pi / weakest))
    else:
        median = max(hint, 2 * np.pi / limit)
        x_max = limit
    for i in range(len(stages.alpha_guess)):
        if stages.discovered.get(i) is None:
            stages.alpha_guess[i] = median
    return np.linspace(0.0, x_max, points)
