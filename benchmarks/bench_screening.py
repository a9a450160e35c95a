"""Crosstalk screening (issue 13): frames, bench time and F on the chip with and without it, given no chip map.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_screening.py            # n = 4, 6, 8, both benches
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_screening.py --n 4 --quick

Chips: the lab bench of tests/lab_chip.py (its own numpy physics; heaters placed by its own layout, so
side by side where the mesh grid does not list them; α = 1.5 rad/V², 0–9 V, crosstalk 0.02 at 0 µm,
70 µm decay), forward-only (no output-side source, no coherent readout: no refinement) and with both
(the refinement runs, with the screened pairs); and a VirtualChip whose crosstalk is the grid's
(``AsBuilt.random(crosstalk=0.01)``), where screening should find little. ``calibrate(chip)`` with no
map, ``screen_crosstalk`` False / True. F: mean and min on 5 Haar targets on the true chip (up to output
phases where the bench cannot calibrate them); "pred": the verdict's predicted F ± σ; pairs: found beyond
the model / coupled pairs the grid misses (truth, θ/φ receivers above 20 % of the strongest) / found where
the truth has none.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import numpy as np  # noqa: E402

from tapmesh import circuits  # noqa: E402
from tapmesh.calibration import AsBuilt, Noise, VirtualChip, calibrate  # noqa: E402
from tapmesh.calibration.crosstalk import neighbour_pairs  # noqa: E402
from tapmesh.calibration.quality import fidelity_up_to_output_phases  # noqa: E402


def make(kind: str, top, seed: int):
    """(chip, true unitary function, true crosstalk (H, H))."""
    if kind.startswith("lab"):
        from lab_chip import LabChip

        both = kind == "lab+source"
        chip = LabChip(top, seed=seed, alpha=1.5, v_max=9.0, xt_strength=0.02, output_side=both, coherent=both)
        return chip, chip.true_unitary, chip.xt
    truth = AsBuilt.random(top, seed=seed, delta_sigma=0.03, crosstalk=0.01, tap_spread=0.05)
    chip = VirtualChip(top, errors=truth, noise=Noise.realistic(), seed=seed + 1)
    return chip, chip.unitary, np.asarray(truth.crosstalk)


def row(kind: str, n: int, screen: bool, seed: int = 6100, targets: int = 5) -> dict:
    top = circuits.rectangular(n)
    chip, unitary, xt = make(kind, top, seed + n)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(chip, topology=top, progress=False, seed=seed, screen_crosstalk=screen, strict=False)
    wall = time.perf_counter() - start
    q = cal.quality
    score = fidelity_up_to_output_phases if q.up_to_output_phases else (lambda u, v: float(circuits.fidelity(u, v)))
    f = np.array([score(u, unitary(cal.voltages_for(u)))
                  for u in (circuits.haar_unitary(n, seed=seed + 50 + t) for t in range(targets))])
    grid = {tuple(p) for p in neighbour_pairs(top)}
    k2 = 2 * top.n_mzis
    unlisted = {(int(i), int(j)) for i, j in zip(*np.nonzero(xt)) if i < k2 and (i, j) not in grid
                and xt[i, j] > 0.2 * xt.max()} if xt.max() > 0 else set()
    s = cal.info.get("screening", {})
    found = {tuple(p) for p in s.get("pairs", [])}
    return {"kind": kind, "n": n, "screen": screen, "frames": cal.n_measurements,
            "screen_frames": s.get("frames", 0), "settings": s.get("settings", 0),
            "bench_s": cal.bench_seconds, "screen_bench_s": cal.info["bench_seconds"].get("screening", 0.0),
            "wall_s": wall, "F_mean": float(f.mean()), "F_min": float(f.min()), "pred": q.predicted_fidelity,
            "pred_sigma": q.fidelity_sigma, "new": len(s.get("new_pairs", [])), "unlisted": len(unlisted),
            "unlisted_found": len(unlisted & found), "false": sum(xt[p] == 0 for p in found),
            "refined": "refine" in cal.info["timings_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[4, 6, 8])
    parser.add_argument("--quick", action="store_true", help="the forward-only lab bench only")
    parser.add_argument("--kinds", nargs="*", choices=["lab", "lab+source", "virtual"], default=None,
                        help="benches to run (default: all three; --quick: lab)")
    args = parser.parse_args()
    kinds = args.kinds or (["lab"] if args.quick else ["lab", "lab+source", "virtual"])
    print("| bench | n | screening | frames (screening) | bench s (screening) | wall s | F mean / min | "
          "predicted F | pairs new / unlisted found of | false |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for n in args.n:
            for screen in (False, True):
                r = row(kind, n, screen)
                print(f"| {kind}{' (refined)' if r['refined'] else ''} | {n} | {'on' if screen else 'off'} | "
                      f"{r['frames']} ({r['screen_frames']}) | {r['bench_s']:.0f} ({r['screen_bench_s']:.0f}) | "
                      f"{r['wall_s']:.1f} | {r['F_mean']:.5f} / {r['F_min']:.5f} | {r['pred']:.5f} ± "
                      f"{r['pred_sigma']:.5f} | {r['new']} / {r['unlisted_found']} of {r['unlisted']} | "
                      f"{r['false'] if screen else '–'} |", flush=True)


if __name__ == "__main__":
    main()
