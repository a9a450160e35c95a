"""Wall time, chip frames and accuracy of calibrate() on as-built virtual chips (rectangular meshes).

    python benchmarks/bench_calibration.py            # n = 4, 8, 16, 32 (all steps), 64 (sweeps only)
    python benchmarks/bench_calibration.py --n 4 8    # a subset

Each chip: AsBuilt.random(delta_sigma=0.03, crosstalk=0.01, tap_spread=0.05), Noise.realistic(). The
baseline is the seed lab's per-heater sweep, ~1000 frames per heater (2 heaters per MZI + γ).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

import circuits  # noqa: E402
from calibration import STEPS, AsBuilt, Noise, VirtualChip, calibrate  # noqa: E402

BASELINE_PER_HEATER = 1000


def run(n: int, steps, seed: int = 5000) -> dict:
    top = circuits.rectangular(n)
    truth = AsBuilt.random(top, seed=seed, delta_sigma=0.03, crosstalk=0.01, tap_spread=0.05)
    chip = VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=seed + 1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(chip, steps=steps, seed=seed + 2, progress=False)
    wall = time.perf_counter() - start
    wrap = np.angle(np.exp(1j * (cal.phase_offsets - truth.phase_offsets)))
    fidelity = {}
    if n <= 32:
        u = circuits.haar_unitary(n, seed + 3)
        fidelity["corrected"] = float(circuits.fidelity(u, chip.unitary(cal.voltages_for(u))))
        fidelity["uncorrected"] = float(circuits.fidelity(u, chip.unitary(cal.voltages_uncorrected(u))))
    k = top.n_mzis
    return {
        "n": n,
        "steps": "+".join(s[:5] for s in steps),
        "wall_s": wall,
        "frames": cal.n_measurements,
        "per_mzi": cal.n_measurements / k,
        "baseline_per_mzi": BASELINE_PER_HEATER * top.n_shifters / k,
        "phi0_rms": float(np.sqrt(np.mean(wrap**2))),
        "alpha_rms": float(np.sqrt(np.mean((cal.alpha / truth.alpha - 1) ** 2))),
        "delta_rms": float(np.sqrt(np.mean((cal.delta - truth.delta) ** 2))),
        "timings": cal.info["timings_s"],
        **{f"F_{k}": v for k, v in fidelity.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[4, 8, 16, 32, 64])
    args = parser.parse_args()
    rows = []
    header = (f"{'n':>3} {'steps':<24} {'wall s':>7} {'frames':>7} {'frames/MZI':>10} {'baseline/MZI':>12} "
              f"{'φ0 rms':>8} {'α rms':>7} {'δ rms':>7} {'F corr':>7} {'F uncorr':>8}")
    print(header, flush=True)
    for n in args.n:
        steps = STEPS if n <= 32 else ("phase_voltage", "couplers")
        r = run(n, steps)
        rows.append(r)
        print(f"{r['n']:>3} {r['steps']:<24} {r['wall_s']:>7.1f} {r['frames']:>7d} {r['per_mzi']:>10.1f} "
              f"{r['baseline_per_mzi']:>12.0f} {r['phi0_rms']:>8.4f} {r['alpha_rms']:>7.2%} {r['delta_rms']:>7.4f} "
              f"{r.get('F_corrected', float('nan')):>7.4f} {r.get('F_uncorrected', float('nan')):>8.4f}",
              flush=True)
        print(f"    step timings: {', '.join(f'{k} {v:.1f} s' for k, v in r['timings'].items())}", flush=True)


if __name__ == "__main__":
    main()
