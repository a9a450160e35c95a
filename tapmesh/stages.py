"""The stages of the tapmesh flow, each usable on its own: they read and write files in an output folder
and return a summary dict of the figures they report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tapmesh.circuits.io import atomic_write_bytes, atomic_write_json
from tapmesh.figures import save_figure, simulation_figure
from tapmesh.options import calibration_file

SAX_CHECK_MAX_N = 8
"""Largest mesh the CLI checks against SAX by default (the reference compile grows super-linearly)."""


def simulate(n: int, kind: str, out: Path, seed: int = 0, wl_span: float = 0.1, sax_check: bool = True) -> dict[str, Any]:
    """Engine vs SAX on a random as-built mesh, decomposition round trip, and a wavelength sweep."""
    import jax.numpy as jnp

    from tapmesh import circuits

    topology = circuits.topology(n, kind)
    params = circuits.MeshParams.random(topology, seed=seed, delta_sigma=0.02, loss_db_sigma=0.05, tap_fraction=0.02)
    u = np.asarray(circuits.unitary(topology, params))
    summary: dict[str, Any] = {"n": n, "kind": kind, "n_mzis": topology.n_mzis, "n_heaters": topology.n_shifters}
    summary["insertion_loss_db"] = float(-10 * np.log10(np.mean(np.sum(np.abs(u) ** 2, axis=0))))

    if sax_check and n <= SAX_CHECK_MAX_N:
        start = time.perf_counter()
        reference = np.asarray(circuits.reference_unitary(topology, params))
        summary["engine_vs_sax_max_error"] = float(np.abs(reference - u).max())
        summary["sax_seconds"] = round(time.perf_counter() - start, 2)
    else:
        summary["engine_vs_sax_max_error"] = None

    target = circuits.haar_unitary(n, seed)
    realized = np.asarray(circuits.unitary(topology, circuits.decompose(topology, target)))
    summary["decomposition_max_error"] = float(np.abs(realized - target).max())

    wavelengths = np.linspace(1.55 - wl_span / 2, 1.55 + wl_span / 2, 101)
    sweep = np.abs(np.asarray(circuits.unitary(topology, params, wl=jnp.asarray(wavelengths)))) ** 2
    summary["wl_span_um"] = wl_span
    # the worst input over the sweep: the least total output power of any input at any wavelength
    summary["worst_insertion_loss_db"] = float(-10 * np.log10(max(sweep.sum(axis=1).min(), 1e-30)))
    atomic_write_json(out / "simulation.json", summary)

    fig = simulation_figure(u, wavelengths, sweep, kind)
    save_figure(fig, out / "simulation.png")
    summary["files"] = [str(out / "simulation.json"), str(out / "simulation.png")]
    return summary


# ------------------------------------------------------------------------------------------ layout
def _build_chip(n: int | None, kind: str, demo: bool, pads: str = "direct", pdk: str = "generic",
                pad_stagger: float | str | None = None, balanced_taps: bool = False):
    from tapmesh import pcells

    pcells.use_pdk(pdk)
    if demo:
        return pcells.demo_chip()
    extra = {"balanced_taps": True} if balanced_taps else {}  # the default chip keeps its cell names
    return pcells.chip(n=n, kind=kind, pads=pads, pdk=pdk, pad_stagger=pad_stagger, **extra)


def layout(
    out: Path, n: int | None = None, kind: str = "triangular", demo: bool = True, png: bool = True, name: str = "chip",
    pads: str = "direct",
    pdk: str = "generic",
    pad_stagger: float | str | None = None,
    replace_chip: bool = False,
    balanced_taps: bool = False,
) -> dict[str, Any]:
    """Lay out the chip on ``pdk``: ``{name}.gds``, ``{name}.png`` (the layout with the chip map overlaid) and
    chip_map.json in ``out``. ``pad_stagger``: edge pads only, as :func:`tapmesh.pcells.chip`.
    ``replace_chip``: the folder's other chip is forgotten (:func:`forget_chip`) once the new one is built, so
    a layout that fails to build (a rule, the reticle) leaves the old chip's files as they were.
    ``balanced_taps``: a dummy tap beside every monitor tap (:func:`tapmesh.pcells.mesh`); the folder's
    fabricated chip and its calibration then follow that design."""
    from tapmesh import pcells

    start = time.perf_counter()
    component = _build_chip(n, kind, demo, pads, pdk, pad_stagger, balanced_taps)
    if replace_chip:
        forget_chip(out)
    mapping = pcells.chip_map(component)
    gds = out / f"{name}.gds"
    tmp = out / f".{name}.gds.tmp.gds"
    component.write_gds(tmp)
    tmp.replace(gds)  # atomic: a failed write leaves the previous GDS in place
    atomic_write_bytes(out / "chip_map.json", mapping.to_json().encode())
    files = [str(gds), str(out / "chip_map.json")]
    if png:
        fig = pcells.plot_layout(component, None, chip_map=mapping)
        save_figure(fig if hasattr(fig, "savefig") else fig.figure, out / f"{name}.png")
        files.append(str(out / f"{name}.png"))
    info = component.info
    summary = {
        "chip": "demo" if demo else f"{kind} n={n}",
        "n": int(info["n"]),
        "kind": str(info["kind"]),
        "n_heaters": int(info["n_heaters"]),
        "n_taps": len(mapping.taps),
        "n_pads": len(mapping.pads),
        "pdk": pdk,
        "pad_stagger": "none" if pad_stagger is None else str(pad_stagger),
        "balanced_taps": bool(mapping.balanced_taps),
        "die_um": [round(float(v), 1) for v in info["die_size"]] if "die_size" in info else None,
        "gds_bytes": gds.stat().st_size,
        "layout_seconds": round(time.perf_counter() - start, 2),
        "files": files,
    }
    atomic_write_json(out / "layout.json", {"demo": demo, "n": summary["n"], "kind": summary["kind"], "pads": pads,
                                            "pdk": pdk, "pad_stagger": summary["pad_stagger"],
                                            "balanced_taps": summary["balanced_taps"], "summary": summary})
    return summary


CHIP_FILES = (
    "fabrication.json", "calibration.json", "calibration_summary.json", "calibration_residuals.png", "calibration_fits.png",
    "training.json", "training_curves.png", "decision_boundary.png",
)
"""Files that belong to one fabricated chip: :func:`forget_chip` removes them when the chip is replaced."""


def forget_chip(out: Path) -> list[str]:
    """Remove the files of the chip ``out`` holds (before another chip replaces it); returns their names."""
    removed = []
    for name in CHIP_FILES:
        path = Path(out) / name
        if path.exists():
            path.unlink()
            removed.append(name)
    return removed


def read_layout(out: Path) -> dict[str, Any]:
    """What ``layout`` recorded (which chip), or the demo chip if no layout was made."""
    import json

    path = out / "layout.json"
    if not path.exists():
        return {"demo": True, "n": 6, "kind": "triangular"}
    return json.loads(path.read_text())


def extract(out: Path, png: bool = True) -> dict[str, Any]:
    """Extract the SAX model from the laid-out chip's own netlist and check it against the engine."""
    from tapmesh import circuits

    chosen = read_layout(out)
    balanced = bool(chosen.get("balanced_taps", False))
    component = _build_chip(chosen["n"], chosen["kind"], chosen["demo"], chosen.get("pads", "direct"),
                            balanced_taps=balanced)
    start = time.perf_counter()
    extracted = circuits.sax_circuit(component)
    topology = circuits.topology(chosen["n"], chosen["kind"])
    rng = np.random.default_rng(0)
    phases = rng.uniform(0, 2 * np.pi, topology.n_shifters)
    drawn = np.asarray(extracted.matrix(phases=phases))
    tap = float(extracted.options.get("tap_fraction", 0.02)) if hasattr(extracted, "options") else 0.02
    from tapmesh.calibration import Calibration

    engine = Calibration.nominal(topology, tap_fraction=tap, balanced_taps=balanced).unitary(phases)
    # The fiber fan-in/out routes add a phase and a loss per port (their drawn lengths differ; the mesh's
    # own paths are length-matched): fold them into input/output port factors, then compare.
    out_factors, in_factors = fit_port_factors(drawn, engine)
    folded = out_factors[:, None] * engine * in_factors[None, :]
    summary = {
        "extract_seconds": round(time.perf_counter() - start, 2),
        "mean_fiber_to_fiber_loss_db": float(-20 * np.log10(np.mean(np.abs(out_factors)) * np.mean(np.abs(in_factors)))),
        "magnitude_max_error": float(np.abs(np.abs(folded) - np.abs(drawn)).max() / np.abs(drawn).max()),
        "matrix_max_error": float(np.abs(folded - drawn).max() / np.abs(drawn).max()),
        "port_phases_rad": {"in": np.angle(in_factors).round(4).tolist(), "out": np.angle(out_factors).round(4).tolist()},
    }
    atomic_write_json(out / "extraction.json", summary)
    return summary


def fit_port_factors(drawn: np.ndarray, model: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Complex per-port factors a (outputs), b (inputs) minimizing ‖drawn − diag(a)·model·diag(b)‖ (ALS).

    They are the fiber-to-mesh routes' path-length phases and losses; b's phases fold into the φ of the
    first MZIs (and a's into the output phases γ) when the chip is programmed."""
    a = np.ones(model.shape[0], dtype=complex)
    b = np.ones(model.shape[1], dtype=complex)
    for _ in range(iterations):
        mb = model * b[None, :]
        a = np.sum(drawn * mb.conj(), axis=1) / np.maximum(np.sum(np.abs(mb) ** 2, axis=1), 1e-300)
        am = a[:, None] * model
        b = np.sum(drawn * am.conj(), axis=0) / np.maximum(np.sum(np.abs(am) ** 2, axis=0), 1e-300)
    return a, b


# ------------------------------------------------------------------------------------- fabrication
FABRICATION_DEFAULTS = {"delta_sigma": 0.03, "alpha": 0.5, "alpha_spread": 0.05, "crosstalk": 0.01, "tap_fraction": 0.02, "tap_spread": 0.1}


def fabricate(out: Path, seed: int, noise: str = "realistic") -> dict[str, Any]:
    """Record the as-built chip to simulate (a VirtualChip drawn from ``seed``) in fabrication.json."""
    chosen = read_layout(out)
    record = {"seed": seed, "n": chosen["n"], "kind": chosen["kind"], "noise": noise, **FABRICATION_DEFAULTS,
              "balanced_taps": bool(chosen.get("balanced_taps", False))}
    atomic_write_json(out / "fabrication.json", record)
    return record


def virtual_chip(out: Path, seed: int | None = None, keyed_noise: bool = False):
    """The VirtualChip recorded in fabrication.json (made with ``seed`` if none was recorded);
    ``keyed_noise``: its noise keyed by frame, so a resumed run sees what an uninterrupted one would."""
    import json

    from tapmesh import circuits
    from tapmesh.calibration import AsBuilt, Noise, VirtualChip

    path = out / "fabrication.json"
    if path.exists():
        record = json.loads(path.read_text())
    else:
        record = fabricate(out, seed if seed is not None else 0)
    topology = circuits.topology(record["n"], record["kind"])
    errors = AsBuilt.random(topology, seed=record["seed"], **{key: record[key] for key in FABRICATION_DEFAULTS},
                            balanced_taps=bool(record.get("balanced_taps", False)))
    noise = Noise.realistic() if record["noise"] == "realistic" else Noise.none()
    return VirtualChip(topology, errors=errors, noise=noise, seed=record["seed"] + 1, keyed_noise=keyed_noise)


def load_driver(name: str):
    """A Chip driver registered under the ``tapmesh.chips`` entry-point group (a lab's bench driver)."""
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="tapmesh.chips") if e.name == name]
    if not found:
        available = ", ".join(sorted(e.name for e in entry_points(group="tapmesh.chips"))) or "none installed"
        raise LookupError(f"no chip driver named {name!r} in entry points 'tapmesh.chips' ({available})")
    return found[0].load()()


# -------------------------------------------------------------------------------------- calibration
def calibrate(out: Path, seed: int, chip=None, targets: int = 3, progress: bool = True, png: bool = True,
              archive: Path | None = None, resume: bool = False, archive_images: bool = False) -> dict[str, Any]:
    """Calibrate the chip, save calibration.json (+ plots), and report fidelity before/after correction.

    ``archive``: record every chip call into this HDF5 file (``resume``: continue the run it holds); the
    VirtualChip of ``out`` then keys its noise by frame, so a resumed run equals an uninterrupted one."""
    from tapmesh import calibration
    from tapmesh import circuits

    chip = chip if chip is not None else virtual_chip(out, seed, keyed_noise=archive is not None)
    start = time.perf_counter()
    extra = {"archive": archive, "resume": resume, "archive_images": archive_images} if archive is not None else {}
    try:
        result = calibration.calibrate(chip, seed=seed + 1000, progress=progress,
                                       balanced_taps=bool(read_layout(out).get("balanced_taps", False)), **extra)
    except calibration.CalibrationQualityError as failed:  # the partial result goes beside, never over, a good file
        where = failed.save(out / "calibration.json")
        failed.args = (f"{failed.args[0]}; partial calibration saved to {where}",)
        raise
    seconds = time.perf_counter() - start
    result.save(out / "calibration.json")
    files = [str(out / "calibration.json")]
    if png:
        calibration.plot_residuals(result, out / "calibration_residuals.png")
        calibration.plot_fits(result, out / "calibration_fits.png")
        files += [str(out / "calibration_residuals.png"), str(out / "calibration_fits.png")]
    fidelities = []
    for k in range(targets):
        u = circuits.haar_unitary(chip.n_modes, seed=10_000 + seed * 100 + k)
        correction = result.correct(u)
        row = {"target": k, "model_corrected": correction.fidelity, "model_uncorrected": correction.fidelity_uncorrected}
        if hasattr(chip, "unitary"):  # a VirtualChip: evaluate on the hidden truth, as a test would
            row["chip_corrected"] = float(circuits.fidelity(u, chip.unitary(correction.voltages)))
            row["chip_uncorrected"] = float(circuits.fidelity(u, chip.unitary(result.voltages_uncorrected(u))))
        fidelities.append(row)
    bench = getattr(result, "bench_seconds", None)
    summary = {
        **result.summary(),
        "calibration_seconds": round(seconds, 1),
        "bench_seconds": None if bench is None else float(bench),
        "fidelity": fidelities,
        "mean_fidelity_corrected": float(np.mean([r.get("chip_corrected", r["model_corrected"]) for r in fidelities])),
        "mean_fidelity_uncorrected": float(np.mean([r.get("chip_uncorrected", r["model_uncorrected"]) for r in fidelities])),
        "files": files,
    }
    if hasattr(chip, "truth"):  # recovery errors against the hidden truth (report only)
        truth = chip.truth
        wrap = lambda a: (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
        live = [i for i in range(chip.n_heaters) if i not in result.dead_heaters]
        summary["phase_offset_rms_error"] = float(np.sqrt(np.mean(wrap(result.phase_offsets - truth.phase_offsets)[live] ** 2)))
        summary["delta_rms_error"] = float(np.sqrt(np.mean((result.delta - truth.delta) ** 2)))
        summary["alpha_rms_relative_error"] = float(np.sqrt(np.mean(((result.alpha - truth.alpha) / truth.alpha)[live] ** 2)))
    atomic_write_json(out / "calibration_summary.json", summary)
    return summary


# ----------------------------------------------------------------------------------------- training
def train(
    out: Path,
    seed: int,
    task: str = "moons",
    method: str = "insitu",
    layers: int = 3,
    epochs: int = 20,
    chip=None,
    progress: bool = True,
    png: bool = True,
    archive: Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train a network in situ on the calibrated chip next to its digital twin; curves and boundary.

    ``archive``: record every chip call of the run on the chip into this HDF5 file (``resume``: continue
    the run it holds); the VirtualChip of ``out`` then keys its noise by frame (``keyed_noise``)."""
    from tapmesh import calibration
    from tapmesh import training

    cal = calibration.Calibration.load(calibration_file(out))
    chip = chip if chip is not None else virtual_chip(out, seed, keyed_noise=archive is not None)
    if chip.n_modes != cal.topology.n:
        raise ValueError(f"calibration is for {cal.topology.n} modes, the chip has {chip.n_modes}")
    dataset = training.data.load(task, seed=seed)
    results = {}
    preset = training.IN_SITU  # the settings measured in docs/training.md (and the README's API tour)
    for name, kwargs in ((method, {"chips": chip, "calibrations": cal}), ("autodiff", {"calibrations": cal})):
        net = training.PhotonicNetwork(cal.topology, n_layers=layers, n_classes=dataset.n_classes, **kwargs, **preset.network)
        start = time.perf_counter()
        on_chip = {"archive": archive, "resume": resume} if archive is not None and "chips" in kwargs else {}
        run = training.train(net, dataset, method=name, epochs=epochs, seed=seed, progress=progress, **preset.train, **on_chip)
        results["twin" if name == "autodiff" else "chip"] = (net, run, time.perf_counter() - start)
    files = []
    if png:
        chip_run, twin_run = results["chip"][1], results["twin"][1]
        labels = {f"{method} on chip": chip_run, "autodiff on twin": twin_run}
        training.plot_training(
            {label: run.history for label, run in labels.items()}, out / "training_curves.png",
            marks={label: run.epoch for label, run in labels.items()},
        )
        files.append(str(out / "training_curves.png"))
        if dataset.n_features == 2:
            net, result, _ = results["chip"]
            fig = training.plot_decision_boundary(
                net, result.phases, dataset, None, on="chip", accuracy=result.test_acc,
                title=f"{task}: test accuracy {result.test_acc:.1%} on chip (epoch {result.epoch})",
            )
            save_figure(fig, out / "decision_boundary.png")
            files.append(str(out / "decision_boundary.png"))
    summary = {"task": task, "method": method, "layers": layers, "epochs": epochs, "preset": preset.name,
               "n_train": len(dataset.y_train), "n_test": len(dataset.y_test), "files": files}
    if results["chip"][1].archive is not None:
        summary["archive"] = results["chip"][1].archive
    for key, (net, result, seconds) in results.items():
        history = result.history
        summary[key] = {
            "method": history.method,
            "test_accuracy": result.test_acc,
            "epoch_kept": result.epoch,
            "best_test_accuracy": history.best_test_acc,
            "best_test_epoch": history.best_test_epoch,
            "final_test_accuracy": history.final_test_acc,
            "chip_passes": int(history.passes[-1]) if history.passes else 0,
            "bench_seconds": float(history.bench_seconds[-1]) if history.bench_seconds else 0.0,
            "seconds": round(seconds, 1),
            "history": history.as_dict(),
        }
    atomic_write_json(out / "training.json", summary)
    return {k: (v if k not in ("chip", "twin") else {kk: vv for kk, vv in v.items() if kk != "history"}) for k, v in summary.items()}


# --------------------------------------------------------------------------------------------- flow
def flow(
    out: Path,
    seed: int,
    n: int | None = None,
    kind: str = "triangular",
    task: str = "moons",
    method: str = "insitu",
    epochs: int = 20,
    fast: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Every stage in order, with a line per stage; returns the headline figures of each (``command``:
    the command line, for the report)."""
    from tapmesh import report

    demo = n is None
    steps = [
        ("layout", lambda: layout(out, n=n, kind=kind, demo=demo)),
        ("extract", lambda: extract(out)),
        ("simulate", lambda: simulate(n=6 if demo else n, kind=kind, out=out, seed=seed, sax_check=not fast)),
        ("fabricate", lambda: fabricate(out, seed)),
        ("calibrate", lambda: calibrate(out, seed, targets=2 if fast else 3)),
        ("train", lambda: train(out, seed, task=task, method=method, epochs=epochs)),
        ("report", lambda: {"report": str(report.build(out, command=command)[0])}),
    ]
    summary: dict[str, Any] = {}
    times: dict[str, float] = {}
    total = time.perf_counter()
    for index, (name, step) in enumerate(steps, 1):
        print(f"[{index}/{len(steps)}] {name} ...", flush=True)
        start = time.perf_counter()
        if name == "report":  # the flow's own record first, so that the report shows the stage times
            atomic_write_json(out / "flow.json", {"command": command, "seconds": round(start - total, 1), "stage_seconds": times})
        result = step()
        summary[name] = {k: v for k, v in result.items() if k not in ("files",)}
        times[name] = round(time.perf_counter() - start, 1)
        print(f"[{index}/{len(steps)}] {name} done in {times[name]:.1f} s", flush=True)
    summary["seconds"] = round(time.perf_counter() - total, 1)
    return summary
