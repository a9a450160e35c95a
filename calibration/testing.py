"""A conformance kit for Chip drivers: one call that exercises a driver through every protocol member.

:func:`check_driver` runs a bench driver (any :class:`tapmesh.calibration.Chip`) through sizes, its declared
:class:`~tapmesh.calibration.Capabilities`, voltage limits and the errors it must raise (NaN, out of range,
wrong shape), field injection and the shapes and units of every reading, what it must refuse, and the
repeatability of frames within their noise; it returns a :class:`DriverReport` whose failures are written
in a lab's words. Usable from pytest (``check_driver(chip).assert_ok()``). See the README ("Writing a Chip
driver").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tapmesh.calibration.bench import Bench
from tapmesh.calibration.capabilities import CapabilitiesError, capabilities_of


@dataclass
class DriverReport:
    """What :func:`check_driver` found: ``passed`` and ``failures`` (one sentence each), ``ok`` if none failed."""

    passed: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [f"driver check: {len(self.passed)} passed, {len(self.failures)} failed"]
        lines += [f"  FAIL {f}" for f in self.failures] + [f"  ok   {p}" for p in self.passed]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` listing every failure (for pytest)."""
        if self.failures:
            raise AssertionError(str(self))


def _raises(call) -> Exception | None:
    try:
        call()
    except Exception as err:  # noqa: BLE001 — any refusal counts; which one is reported
        return err
    return None


def _check_directions(chip, x, forward_lit, backward_lit, fail, ok) -> None:
    """Light from the output side must reach the backward gratings (about as much tapped power as light
    from the input side gives the forward ones) and not the forward ones: a driver that ignores ``side``
    fails here. Powers are taken above each direction's dark reading (no light injected)."""
    dark = np.zeros_like(x)
    chip.inject(dark, side="input")
    dark_f = np.asarray(chip.read_taps("forward")).mean(0)
    chip.inject(dark, side="output")
    dark_b = np.asarray(chip.read_taps("backward")).mean(0)
    chip.inject(x, side="output")
    crossed = np.asarray(chip.read_taps("forward"))
    total_f = float(np.sum(forward_lit - dark_f) / len(x))
    total_b = float(np.sum(backward_lit - dark_b) / len(x))
    total_x = float(np.sum(crossed - dark_f) / len(x))
    if total_b < 0.1 * total_f:
        fail(f"light at the output side reaches the backward gratings with {total_b:.3g} mW in all (above dark), "
             f"against {total_f:.3g} mW at the forward gratings for light at the input side: the backward "
             "readout sees no light (source, switch or the camera's backward spots)")
    elif total_x > 0.5 * total_b:
        fail(f"with light at the output side the forward gratings read {total_x:.3g} mW (backward {total_b:.3g} "
             "mW): light from the output side travels backward; does the driver ignore inject(side=...)?")
    else:
        ok(f"light at the output side lights the backward gratings ({total_b:.3g} mW in all, forward light "
           f"gives {total_f:.3g} mW) and not the forward ones")


def check_driver(chip, topology=None, power_mw: float = 1.0, repeats: int = 8, seed: int = 0) -> DriverReport:
    """Exercise ``chip`` through every member of the Chip protocol under its declared capabilities.

    Args:
        chip: the driver.
        topology: the mesh (default ``chip.topology`` if it has one), to check the heater count.
        power_mw: total optical power of the test fields, mW.
        repeats: frames of one field per repeatability check.
        seed: seeds the test fields.

    The deliberate error probes (NaN, a value above the declared maximum, a wrong shape) are the only
    settings sent outside the declared limits: the driver must refuse each before it reaches the DAC."""
    rep = DriverReport()
    ok, fail = rep.passed.append, rep.failures.append
    rng = np.random.default_rng(seed)
    try:
        n, h = int(chip.n_modes), int(chip.n_heaters)
    except Exception as err:  # noqa: BLE001
        fail(f"the driver must report n_modes and n_heaters as integers ({err})")
        return rep
    if n < 2 or h < 1:
        fail(f"n_modes={n}, n_heaters={h}: a mesh has at least 2 modes and 1 heater")
        return rep
    top = topology if topology is not None else getattr(chip, "topology", None)
    if top is not None:
        if top.n == n and top.n_shifters == h:
            ok(f"sizes match the {top.kind} mesh: {n} modes, {h} heaters (θ, φ, γ order)")
        else:
            fail(f"the chip reports {n} modes and {h} heaters, the {top.kind} mesh has {top.n} and {top.n_shifters}")
    try:
        caps = capabilities_of(chip)
        ok(f"capabilities: {caps.drive} drive, range [{np.min(caps.limits(h)[0]):g}, {np.max(caps.limits(h)[1]):g}]")
    except CapabilitiesError as err:
        fail(f"the capabilities member is malformed: {err}")
        return rep
    unit = "V" if caps.drive == "voltage" else "mA"
    bench = Bench(chip, n, h, caps)
    low, high = bench.low, bench.high
    zero = np.clip(np.zeros(h), low, high)
    # ---------------------------------------------------------------- the DAC
    for label, value in (("NaN", np.full(h, np.nan)), (f"{high.max() * 1.5 + 1:g} {unit} (above the declared range)",
                                                       np.full(h, high.max() * 1.5 + 1.0)),
                         ("a setting of the wrong length", np.zeros(h + 1))):
        err = _raises(lambda v=value: chip.set_voltages(v))
        if err is None:
            fail(f"set_voltages accepted {label}: a driver must refuse it before it reaches the DAC")
        else:
            ok(f"set_voltages refuses {label} ({type(err).__name__})")
    err = _raises(lambda: chip.set_voltages(zero))
    if err is not None:
        fail(f"set_voltages refused the off state {zero[:3]}… {unit} inside the declared range: {err}")
        return rep
    # ---------------------------------------------------------------- a frame, single and batched
    def fields(b):
        z = rng.normal(size=(b, n)) + 1j * rng.normal(size=(b, n))
        return z * np.sqrt(power_mw / np.sum(np.abs(z) ** 2, axis=1, keepdims=True))

    x = fields(3)
    try:
        chip.inject(x, side="input")
        taps = np.asarray(chip.read_taps("forward"))
    except Exception as err:  # noqa: BLE001
        fail(f"a batch of 3 fields could not be injected and read at the taps: {err}")
        return rep
    if taps.shape != (3, h):
        fail(f"read_taps after a batch of 3 fields returned shape {taps.shape}; it must be (3, {h}): one camera "
             "frame per field, one reading per heater's grating")
    elif not np.all(np.isfinite(taps)):
        fail("read_taps returned NaN or infinity")
    else:
        ok(f"read_taps: one frame per field, shape (3, {h})")
        if np.max(taps) > power_mw:
            fail(f"a tap reads {np.max(taps):.3g} mW with {power_mw} mW injected: readings must be mW at the "
                 "grating (a small fraction of the guide's power), not counts or volts")
        else:
            ok("tap readings are in mW, below the injected power")
    try:
        chip.inject(x[0], side="input")
        single = np.asarray(chip.read_taps("forward"))
        if single.shape != (h,):
            fail(f"read_taps after one field of shape ({n},) returned {single.shape}, expected ({h},)")
        else:
            ok("a single field gives a single frame")
    except Exception as err:  # noqa: BLE001
        fail(f"a single field of shape ({n},) could not be injected and read: {err}")
    for bad, label in ((np.full(n, np.nan), "a field with NaN"), (np.ones(n + 1), f"a field of {n + 1} modes")):
        if _raises(lambda b=bad: chip.inject(b, side="input")) is None:
            fail(f"inject accepted {label}: the source must refuse it")
        else:
            ok(f"inject refuses {label}")
    # ---------------------------------------------------------------- outputs
    chip.inject(x, side="input")
    if caps.output_detectors:
        out = np.asarray(chip.read_outputs())
        if out.shape != (3, n):
            fail(f"read_outputs returned shape {out.shape}, expected (3, {n})")
        else:
            total = out.sum(1)
            if np.any(total > 1.05 * power_mw) or np.any(total < 0.05 * power_mw):
                fail(f"the output detectors sum to {total.round(4).tolist()} mW for {power_mw} mW in: a passive chip "
                     "gives out less than goes in but not nothing; check the units (mW, not √mW)")
            else:
                ok("read_outputs: mW, within what went in")
    elif _raises(chip.read_outputs) is None:
        fail("the capabilities declare no output detectors, yet read_outputs returned readings")
    else:
        ok("read_outputs refused, as declared")
    chip.inject(x, side="input")
    if caps.coherent_readout:
        y = np.asarray(chip.read_outputs_coherent())
        if y.shape != (3, n) or not np.iscomplexobj(y):
            fail(f"read_outputs_coherent returned {y.dtype} of shape {y.shape}, expected complex (3, {n})")
        else:
            total = np.sum(np.abs(y) ** 2, axis=1)
            if np.any(total > 1.05 * power_mw) or np.any(total < 0.05 * power_mw):
                fail(f"coherent output powers sum to {total.round(4).tolist()} mW for {power_mw} mW in (units: √mW)")
            else:
                ok("read_outputs_coherent: complex fields in √mW")
    elif _raises(chip.read_outputs_coherent) is None:
        fail("the capabilities declare no coherent readout, yet read_outputs_coherent returned fields")
    else:
        ok("read_outputs_coherent refused, as declared")
    # ---------------------------------------------------------------- the output side
    if caps.output_side_source:
        try:
            chip.inject(x, side="output")
            back = np.asarray(chip.read_taps("backward"))
            if back.shape != (3, h):
                fail(f"read_taps('backward') after light at the output side returned {back.shape}, expected (3, {h})")
            else:
                _check_directions(chip, x, taps, back, fail, ok)
        except Exception as err:  # noqa: BLE001
            fail(f"the capabilities declare an output-side source, but injecting there failed: {err}")
    elif _raises(lambda: chip.inject(x, side="output")) is None:
        fail("the capabilities declare no output-side source, yet inject(side='output') was accepted")
    else:
        ok("inject(side='output') refused, as declared")
    # ---------------------------------------------------------------- repeatability and the heaters
    chip.set_voltages(zero)
    same = np.repeat(x[:1], repeats, axis=0)
    chip.inject(same, side="input")
    a = np.asarray(chip.read_taps("forward"))
    chip.inject(same, side="input")
    b = np.asarray(chip.read_taps("forward"))
    sigma = np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2) + 1e-15
    z = np.abs(a.mean(0) - b.mean(0)) / (sigma * np.sqrt(2 / repeats))
    if np.median(z) > 3:
        fail(f"the same field at the same setting reads differently from one injection to the next (median "
             f"{np.median(z):.1f}σ of the frame noise): the chip drifts or keeps state between frames")
    else:
        ok("frames repeat within their noise")
    if caps.tap_noise_mw is not None:
        dark = np.zeros((repeats, n))
        chip.inject(dark, side="input")
        d = np.asarray(chip.read_taps("forward"))
        measured = float(np.sqrt(np.mean(d.var(0, ddof=1))))
        if measured > 3 * caps.tap_noise_mw:
            fail(f"dark frames scatter by {measured:.3g} mW rms, {measured / caps.tap_noise_mw:.0f}× the declared "
                 f"tap_noise_mw={caps.tap_noise_mw:g}")
        else:
            ok(f"dark-frame noise {measured:.3g} mW is within 3× the declared {caps.tap_noise_mw:g} mW")
    mid = np.sqrt(0.25) * high  # a quarter of the range's power on every heater
    if bench.violation(mid) is None:
        chip.set_voltages(mid)
        chip.inject(same, side="input")
        moved = np.asarray(chip.read_taps("forward")).mean(0)
        if np.max(np.abs(moved - a.mean(0)) / (sigma / np.sqrt(repeats))) < 5:
            fail("the tap readings do not change when every heater is driven: the DAC does not reach the heaters")
        else:
            ok("driving the heaters changes the tap readings")
        chip.set_voltages(zero)
    return rep
