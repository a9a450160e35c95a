"""Wall time, chip frames and accuracy of calibrate() on as-built virtual chips (rectangular meshes).

    python benchmarks/bench_calibration.py              # n = 4, 8, 16, 64
    python benchmarks/bench_calibration.py --n 32 64    # any sizes
    python benchmarks/bench_calibration.py --quick      # n = 4, 8 (about a minute)
    python benchmarks/bench_calibration.py --crosstalk 0.01 --n 8
    python benchmarks/bench_calibration.py --alpha-sweep --quick   # α = 0.1 … 3 rad/V², n = 6, no hints
    python benchmarks/bench_calibration.py --depth --balanced --n 32 64 --crosstalk 0.01   # balanced-tap chips

The α sweep (``--alpha-sweep``): chips with α ∈ {0.1, 0.33, 1, 3} rad/V² (±5 %), β ~ N(0, 0.003·α) rad/V³,
0–10 V, crosstalk 0.01, calibrated with no hint (``calibrate(chip)``): frames, wall time, F per α, and what the
heater-law discovery costs: its frames over those of the other steps (today's frames).

Each chip: AsBuilt.random(seed, delta_sigma=0.03, tap_spread=0.05, crosstalk=--crosstalk (default 0, as
AsBuilt.random), balanced_taps=--balanced), Noise.realistic(); calibrate() with its defaults (and
balanced_taps=--balanced; the progressive method; the global refinement where it is small enough, n ≤ 16). Errors are RMS against the hidden truth over every heater
(φ0 in rad, α relative) and every coupler (δ in rad). F is the fidelity on the true chip for one
Haar-random target: corrected (``voltages_for``: local correction, plus the gradient polish for n ≤ 16)
and plain decomposition. The baseline is the seed lab's per-heater sweep, ~1000 frames per heater
(2 heaters per MZI + the n output heaters).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from tapmesh import circuits  # noqa: E402
from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip, calibrate  # noqa: E402

BASELINE_PER_HEATER = 1000


def run(n: int, crosstalk: float = 0.0, seed: int = 5000, balanced_taps: bool = False) -> dict:
    top = circuits.rectangular(n)
    truth = AsBuilt.random(top, seed=seed, delta_sigma=0.03, crosstalk=crosstalk, tap_spread=0.05,
                           balanced_taps=balanced_taps)
    chip = VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=seed + 1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(chip, seed=seed + 2, progress=False, balanced_taps=balanced_taps)
    wall = time.perf_counter() - start
    wrap = np.angle(np.exp(1j * (cal.phase_offsets - truth.phase_offsets)))
    u = circuits.haar_unitary(n, seed + 3)
    polish = n <= 16
    start = time.perf_counter()
    corrected = float(circuits.fidelity(u, chip.unitary(cal.voltages_for(u, polish=polish))))
    correct_s = time.perf_counter() - start
    uncorrected = float(circuits.fidelity(u, chip.unitary(cal.voltages_uncorrected(u))))
    k = top.n_mzis
    return {
        "n": n,
        "wall_s": wall,
        "frames": cal.n_measurements,
        "per_mzi": cal.n_measurements / k,
        "baseline_per_mzi": BASELINE_PER_HEATER * top.n_shifters / k,
        "phi0_rms": float(np.sqrt(np.mean(wrap**2))),
        "alpha_rms": float(np.sqrt(np.mean((cal.alpha / truth.alpha - 1) ** 2))),
        "delta_rms": float(np.sqrt(np.mean((cal.delta - truth.delta) ** 2))),
        "F_corrected": corrected,
        "F_uncorrected": uncorrected,
        "polish": polish,
        "correct_s": correct_s,
        "refined": "refine" in cal.info["timings_s"] and not any("refinement skipped" in s for s in cal.info["notes"]),
        "timings": cal.info["timings_s"],
        "_cal": cal, "_chip": chip, "_u": u,
    }


def run_depth(n: int, crosstalk: float, seed: int = 5000, iterations: int = 6, balanced_taps: bool = False) -> dict:
    """One row of the depth table (issue 14): :func:`run`, then in-situ programming of the same target
    (``calibration.program``: measured transfer matrix, the calibrated model's Jacobian), its fidelity on
    the true chip, frames and bench seconds; bench hours of the calibration at the default BenchCosts."""
    from tapmesh.calibration.program import program_in_situ

    r = run(n, crosstalk=crosstalk, seed=seed, balanced_taps=balanced_taps)
    cal, chip, u = r.pop("_cal"), r.pop("_chip"), r.pop("_u")
    start = time.perf_counter()
    programmed = program_in_situ(chip, u, cal, iterations=iterations)
    r["program_s"] = time.perf_counter() - start
    r["F_program"] = float(circuits.fidelity(u, chip.unitary(programmed.voltages)))
    exact = Calibration.nominal(cal.topology)  # the reference: the true errors known (benchmark only)
    truth = chip.truth
    for name in ("phase_offsets", "alpha", "beta", "delta", "tap_fraction", "loss_db"):
        setattr(exact, name, np.asarray(getattr(truth, name)).copy())
    exact.crosstalk = truth.crosstalk
    if truth.idle_loss_db is not None:
        exact.idle_loss_db = np.asarray(truth.idle_loss_db).copy()
    r["F_true_errors"] = float(circuits.fidelity(u, chip.unitary(exact.voltages_for(u, polish=n <= 16))))
    r["program_frames"] = programmed.frames
    r["program_bench_s"] = programmed.bench_seconds
    r["bench_h"] = cal.bench_seconds / 3600
    r["crosstalk"] = crosstalk
    return r


def depth_table(sizes, crosstalks, balanced_taps: bool = False, seeds=(5000,)) -> None:
    """Print the depth table: calibration and both correction paths for every size, crosstalk and chip seed."""
    if balanced_taps:
        print("balanced-tap chips: a dummy tap on every MZI's bottom input and arm, two on every idle segment", flush=True)
    print("| n | crosstalk | seed | wall s (calibrate) | frames | bench h | φ0 rms (rad) | α rms | δ rms (rad) | "
          "F model (path) | F in situ (frames, bench s, wall s) | F true errors known | F uncorrected |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for xt, n, seed in ((xt, n, seed) for xt in crosstalks for n in sizes for seed in seeds):
        r = run_depth(n, xt, seed=seed, balanced_taps=balanced_taps)
        path = "local + polish" if r["polish"] else "local"
        print(f"| {n} | {xt:g} | {seed} | {r['wall_s']:.0f} | {r['frames']} | {r['bench_h']:.2f} | {r['phi0_rms']:.4f} | "
              f"{r['alpha_rms']:.2%} | {r['delta_rms']:.4f} | {r['F_corrected']:.4f} ({path}"
              f"{', refined' if r['refined'] else ''}) | **{r['F_program']:.4f}** ({r['program_frames']}, "
              f"{r['program_bench_s']:.1f}, {r['program_s']:.0f}) | {r['F_true_errors']:.4f} | {r['F_uncorrected']:.4f} |",
              flush=True)


def run_alpha(n: int, alpha: float, v_max: float = 10.0, seed: int = 5100, targets: int = 3) -> dict:
    top = circuits.rectangular(n)
    truth = AsBuilt.random(top, seed=seed, delta_sigma=0.03, alpha=alpha, beta_sigma=0.003 * alpha,
                           crosstalk=0.01, tap_spread=0.05)
    chip = VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=seed + 1, max_voltage=v_max, min_voltage=0.0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(chip, seed=seed + 2, progress=False, strict=False)
    wall = time.perf_counter() - start
    scores = [float(circuits.fidelity(u, chip.unitary(cal.voltages_for(u))))
              for u in (circuits.haar_unitary(n, seed + 3 + t) for t in range(targets))]
    discovery = cal.info["frames"]["discovery"]
    return {"alpha": alpha, "wall_s": wall, "discovery_s": cal.info["timings_s"]["discovery"],
            "frames": cal.n_measurements, "discovery_frames": discovery,
            "overhead": discovery / max(cal.n_measurements - discovery, 1), "F_min": min(scores),
            "F_mean": float(np.mean(scores)), "predicted": cal.quality.predicted_fidelity,
            "predicted_low": cal.quality.fidelity_low, "passed": cal.quality.passed}


def alpha_sweep(quick: bool) -> None:
    n = 6 if quick else 8
    print(f"α sweep at n = {n}: realistic noise, δσ = 0.03 rad, β ~ N(0, 0.003 α), 0–10 V, crosstalk 0.01, no hints; "
          "loaded shared machine (wall times noisy)", flush=True)
    print(f"{'α rad/V²':>9} {'wall s':>7} {'disc. s':>7} {'frames':>7} {'disc. frames':>12} {'disc./rest':>10} "
          f"{'F min':>7} {'F mean':>7} {'pred.':>7} {'pred. 5%':>8} {'verdict':>7}", flush=True)
    for alpha in (0.1, 0.33, 1.0, 3.0):
        r = run_alpha(n, alpha)
        print(f"{r['alpha']:>9.2f} {r['wall_s']:>7.1f} {r['discovery_s']:>7.1f} {r['frames']:>7d} "
              f"{r['discovery_frames']:>12d} {r['overhead']:>10.2f} {r['F_min']:>7.4f} {r['F_mean']:>7.4f} "
              f"{r['predicted']:>7.4f} {r['predicted_low']:>8.4f} {'pass' if r['passed'] else 'FAIL':>7}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=None, help="mesh sizes (default 4 8 16 64)")
    parser.add_argument("--quick", action="store_true", help="n = 4 and 8 only")
    parser.add_argument("--crosstalk", type=float, default=None,
                        help="thermal crosstalk of the chips (default 0; with --depth: 0 and 0.01)")
    parser.add_argument("--depth", action="store_true",
                        help="the depth table (issue 14): --n sizes (default 8 16 32 64) at crosstalk 0 and 0.01, "
                             "with in-situ programming and bench hours; --quick: n = 8, 16")
    parser.add_argument("--balanced", action="store_true",
                        help="with --depth: balanced-tap chips (AsBuilt.random(balanced_taps=True))")
    parser.add_argument("--seeds", type=int, nargs="*", default=[5000],
                        help="with --depth: chip seeds (default 5000; each seed is another as-built chip and target)")
    parser.add_argument("--alpha-sweep", action="store_true", help="α = 0.1 … 3 rad/V² with no hint (n = 8; 6 with --quick)")
    args = parser.parse_args()
    if args.depth:
        depth_table(args.n or ([8, 16] if args.quick else [8, 16, 32, 64]),
                    [0.0, 0.01] if args.crosstalk is None else [args.crosstalk], balanced_taps=args.balanced,
                    seeds=args.seeds)
        return
    if args.alpha_sweep:
        alpha_sweep(args.quick)
        return
    sizes = args.n if args.n else ([4, 8] if args.quick else [4, 8, 16, 64])
    print(f"realistic noise, δσ = 0.03 rad, tap spread 5 %, crosstalk {args.crosstalk}; 2 shared cores", flush=True)
    header = (f"{'n':>3} {'refined':>7} {'wall s':>7} {'frames':>7} {'frames/MZI':>10} {'baseline/MZI':>12} "
              f"{'φ0 rms':>8} {'α rms':>7} {'δ rms':>7} {'F corr':>7} {'F uncorr':>8}")
    print(header, flush=True)
    for n in sizes:
        r = run(n, crosstalk=args.crosstalk or 0.0)
        print(f"{r['n']:>3} {'yes' if r['refined'] else 'no':>7} {r['wall_s']:>7.1f} {r['frames']:>7d} "
              f"{r['per_mzi']:>10.1f} {r['baseline_per_mzi']:>12.0f} {r['phi0_rms']:>8.4f} {r['alpha_rms']:>7.2%} "
              f"{r['delta_rms']:>7.4f} {r['F_corrected']:>7.4f} {r['F_uncorrected']:>8.4f}", flush=True)
        print(f"    step timings: {', '.join(f'{k} {v:.1f} s' for k, v in r['timings'].items())}; correction "
              f"{'with' if r['polish'] else 'without'} polish {r['correct_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
