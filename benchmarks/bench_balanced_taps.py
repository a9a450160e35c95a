"""The fidelity ceiling of a tapped mesh, one-arm taps against balanced (dummy) taps (issue 14).

    python benchmarks/bench_balanced_taps.py               # n = 16, 32, 64
    python benchmarks/bench_balanced_taps.py --n 8 16

Each chip: ``AsBuilt.random(seed, delta_sigma=0.03, crosstalk=0.01, tap_spread=0.05)`` with and without
``balanced_taps`` (a dummy tap of the same fraction on every MZI's bottom input and bottom arm, two on every
idle segment), and with no taps at all as the reference. The true errors are given to the fit (benchmark only):
every phase of a rectangular mesh is fitted to one Haar target by L-BFGS on the true chip's model (the engine's
gradient), from the plain Clements decomposition. What is left is what no phase setting can undo: the
unbalanced loss. Prints F plain (decomposition), F after the fit, iterations and wall time per row.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

from tapmesh import circuits  # noqa: E402
from tapmesh.calibration import AsBuilt  # noqa: E402


def ceiling(n: int, design: str, seed: int = 5000) -> dict:
    """F plain and F after a global phase fit with the true errors known, for one design."""
    top = circuits.rectangular(n)
    truth = AsBuilt.random(top, seed=seed, delta_sigma=0.03, crosstalk=0.01, tap_spread=0.05,
                           balanced_taps=design == "balanced")
    taps = np.zeros(top.n_shifters) if design == "no taps" else truth.tap_fraction
    u = circuits.haar_unitary(n, seed + 3)
    start_params = circuits.clements(u)
    x0 = np.asarray(start_params.phases)

    def infidelity(phases):
        params = circuits.MeshParams.assemble(top, phases, delta=truth.delta, loss_db=truth.loss_db,
                                              output_loss_db=truth.output_loss_db, tap_fraction=taps,
                                              idle_loss_db=truth.idle_loss_db)
        return 1.0 - circuits.fidelity(u, circuits.unitary(top, params))

    value_and_grad = jax.jit(jax.value_and_grad(infidelity))
    plain = 1.0 - float(infidelity(jnp.asarray(x0)))
    start = time.perf_counter()
    fit = scipy.optimize.minimize(lambda x: tuple(np.asarray(a, dtype=float) for a in value_and_grad(x)), x0,
                                  jac=True, method="L-BFGS-B", options={"maxiter": 3000})
    return {"n": n, "design": design, "F_plain": plain, "F_fit": 1.0 - float(fit.fun), "iterations": int(fit.nit),
            "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args()
    print("| n | design | F plain | F, true errors known, global fit | iterations | wall s |")
    print("|---|---|---|---|---|---|")
    for n in args.n:
        rows = {d: ceiling(n, d) for d in ("one-arm taps", "balanced", "no taps")}
        for r in rows.values():
            print(f"| {n} | {r['design']} | {r['F_plain']:.5f} | {r['F_fit']:.6f} | {r['iterations']} | {r['wall_s']:.1f} |",
                  flush=True)
        gain = (1 - rows["one-arm taps"]["F_fit"]) / max(1 - rows["balanced"]["F_fit"], 1e-16)
        print(f"| {n} | infidelity ratio one-arm / balanced | | {gain:.1f}× | | |", flush=True)


if __name__ == "__main__":
    main()
