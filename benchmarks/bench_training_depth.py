"""Issue 14 item 3: the 64-port digits network trained in situ on one calibrated n = 64 as-built chip (both
layers time-multiplexed on it), next to the same network trained on the chip's calibrated twin. The
section ``digits-calibrated`` of bench_training.py (its options; results in the README's training table):

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_training.py --only digits-calibrated [--out DIR]
"""

from __future__ import annotations

import os
import pathlib
import time
from importlib.metadata import version

import jax.numpy as jnp
import numpy as np

from tapmesh import circuits
from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip, calibrate
from tapmesh.training import PhotonicNetwork, data, train

from bench_training import table

def calibrated_as_built(n: int = 64, seed: int = 5000, crosstalk: float = 0.01, cache: pathlib.Path | None = None):
    """One as-built rectangular n×n chip as in the depth bench (bench_calibration.py --depth: AsBuilt.random
    with σδ = 0.03 rad, tap spread 5 %, thermal crosstalk ``crosstalk``; Noise.realistic()) and its
    calibration from ``calibrate(chip, screen_crosstalk=False)``: the crosstalk pairs are the mesh's
    neighbour grid (where AsBuilt.random puts them, as a layout would say), not screened: the screening
    step drives every heater in turn (n = 16: 4,128 frames, 26 s; an n = 64 run had not finished it after
    27 min of CPU).

    ``cache``: a JSON file (Calibration.save/load). An existing file of the same n, seed, crosstalk and
    tapmesh version (its NAME.meta.json) is loaded instead of calibrating (a
    calibration whose verdict failed sits beside it, NAME.failed.json, and is loaded from there). Returns
    (chip, cal, info), the chip fresh (its noise stream from the start); info holds frames, bench hours and the calibration's wall seconds (those of the run
    that wrote the cache when loaded; ``cached`` says which)."""
    import json
    import warnings

    from tapmesh.calibration.quality import failed_path

    top = circuits.rectangular(n)
    truth = AsBuilt.random(top, seed=seed, delta_sigma=0.03, crosstalk=crosstalk, tap_spread=0.05)
    chip = VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=seed + 1)
    meta = None if cache is None else cache.with_suffix(".meta.json")
    asked = {"n": n, "seed": seed, "crosstalk": crosstalk, "tapmesh": version("tapmesh")}
    for path in ([] if cache is None else [cache, failed_path(cache)]):
        if path.exists() and meta.exists():
            held = json.loads(meta.read_text())
            if {k: held.get(k) for k in asked} != asked:  # another chip, or another tapmesh: calibrate again
                print(f"cache {cache} holds {held}, not {asked}: calibrating again", flush=True)
                break
            return chip, Calibration.load(path), dict(held, cached=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(chip, seed=seed + 2, progress=False, screen_crosstalk=False)
    info = {**asked, "frames": int(cal.n_measurements),
            "bench_h": float(cal.bench_seconds) / 3600, "wall_s": time.perf_counter() - start,
            "passed": bool(cal.quality.passed), "predicted_fidelity": float(cal.quality.predicted_fidelity)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cal.save(cache)
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(meta)
    # a fresh chip of the same truth: a rerun from the cache trains on the same noise draws as this one
    chip = VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=seed + 1)
    return chip, cal, dict(info, cached=False)


def _chip_acc(net, phases, ds, repeats):
    """Test accuracy measured on the chip ``repeats`` times (its readout noise moves a few images): mean, std."""
    acc = [net.evaluate(phases, ds.x_test, ds.y_test, on="chip")[1] for _ in range(repeats)]
    return float(np.mean(acc)), float(np.std(acc))


def section_digits_calibrated(args):
    """Issue 14 item 3: the digits network trained in situ on one calibrated n = 64 as-built chip (both
    layers time-multiplexed on it), next to the same network trained on the chip's calibrated twin."""
    import optax

    cache = (args.out or pathlib.Path(os.environ.get("TMPDIR", "/tmp"))) / "digits_calibration_n64_seed5000_xt0.01.json"
    chip, cal, info = calibrated_as_built(64, seed=5000, crosstalk=0.01, cache=cache)
    ds = data.digits()
    top = chip.topology
    steps = args.digits_epochs * int(np.ceil(len(ds.y_train) / 32))
    print("### 2-layer 64-port digits network on one calibrated n = 64 as-built chip\n")
    print(f"Chip: rectangular 64×64, AsBuilt.random(seed=5000, σδ 0.03 rad, tap 2 % ± 5 %, crosstalk 0.01), "
          f"Noise.realistic() (12-bit camera, 0.5 % shot, 2 % gain spread, offsets); no field noise. "
          f"calibrate(): {info['frames']:,} frames, {info['bench_h']:.2f} bench h, {info['wall_s']:.0f} s wall"
          f"{' (cached: ' + str(cache) + ')' if info['cached'] else ''}, verdict "
          f"{'passed' if info['passed'] else 'failed'}, predicted F {info['predicted_fidelity']:.4f}. The one chip "
          f"is time-multiplexed over both layers; |z| activation, softmax-CE (T = 20), Adam with cosine decay "
          f"from {args.digits_lr}, batch 32, {args.digits_epochs} epochs, final phases; test accuracy on the "
          f"held-out 360 images, on the chip {args.eval_repeats}× (mean ± std) or on the twin.\n", flush=True)
    common = dict(activation="abs", loss="softmax_ce", temperature=20.0, dtype=jnp.complex64)
    net = PhotonicNetwork(top, 2, 10, chips=chip, calibrations=cal, **common)
    rows, results = [], {}
    seeds = list(range(args.digits_seeds))
    for method in ["autodiff"] + [m for m in args.digits_methods if m in ("insitu", "insitu_fwd", "insitu_analog")]:
        where = "twin" if method == "autodiff" else "chip"
        # insitu_fwd: the adjoint's tap powers read forward (adjoint_power="forward", one more pass); with 2 %
        # taps on every heated arm over 64 columns the backward adjoint is not the time-reversed one
        options = {"adjoint_power": "forward"} if method == "insitu_fwd" else {}
        chip_acc, twin_acc, passes, eval_passes, bench, wall = [], [], [], [], [], []
        for seed in seeds:
            optimizer = optax.adam(optax.cosine_decay_schedule(args.digits_lr, steps))
            run = train(net, ds, "insitu" if method == "insitu_fwd" else method, optimizer, epochs=args.digits_epochs,
                        seed=seed, progress=args.progress, evaluate_on="model" if method == "autodiff" else "chip",
                        method_options=options)
            h = run.history
            print(f"  {method}, seed {seed}: test accuracy per epoch on the {where} {np.round(h.test_acc, 3).tolist()}",
                  flush=True)
            chip_acc.append(_chip_acc(net, run.phases, ds, args.eval_repeats)[0])
            twin_acc.append(net.evaluate(run.phases, ds.x_test, ds.y_test, on="model")[1])
            passes.append(h.passes[-1])
            eval_passes.append(h.eval_passes)
            bench.append((h.bench_seconds[-1] if h.bench_seconds else 0.0) + h.eval_bench_seconds)
            wall.append(h.wall_time[-1])
            if args.out and seed == 0:
                h.plot(args.out / f"digits_calibrated_{method}.png", title=f"digits on a calibrated n = 64 chip: {method}")
        results[method] = (float(np.mean(chip_acc)), float(np.mean(twin_acc)))
        label = {"autodiff": "autodiff on the calibrated twin", "insitu_fwd": "insitu (adjoint_power='forward'), "
                 "in situ on the chip"}.get(method, f"{method}, in situ on the chip")
        rows.append([label, f"{100 * np.mean(chip_acc):.1f} ± {100 * np.std(chip_acc):.1f} %",
                     f"{100 * np.mean(twin_acc):.1f} ± {100 * np.std(twin_acc):.1f} %",
                     " / ".join(f"{100 * a:.1f}" for a in (twin_acc if method == "autodiff" else chip_acc)),
                     f"{int(np.mean(passes)):,}", f"{int(np.mean(eval_passes)):,}", f"{np.mean(bench):,.0f} s",
                     f"{np.mean(wall):.0f} s"])
    table(["run", "test acc on chip", "test acc on twin", f"per seed (where trained)", "training chip passes",
           "evaluation chip passes", "bench time / run (train + eval)", "train time / run (wall)"], rows)
    twin_on_chip, twin_on_twin = results["autodiff"]
    for method, (acc, _) in results.items():
        if method != "autodiff":
            gap = 100 * (twin_on_twin - acc)
            print(f"twin-trained on the twin {100 * twin_on_twin:.1f} % − {method} on the chip {100 * acc:.1f} % = "
                  f"{gap:+.1f} points ({'within' if gap <= 2 else 'outside'} the 2-point target); twin-trained phases "
                  f"on the chip {100 * twin_on_chip:.1f} % ({100 * (twin_on_twin - twin_on_chip):+.1f} points from the twin)  ")
    print(f"Means over seeds {seeds} (initial phases and batch order); chip accuracies are each the mean of "
          f"{args.eval_repeats} chip evaluations of the final phases.\n")
