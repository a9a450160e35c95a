"""How well the yield study's fast mode stands in for full calibration: the same chips scored both ways.

For each mesh size one study is run twice through :func:`tapmesh.yield_dask.run` on a LocalCluster (2
workers by default): ``mode="full"`` (every chip calibrated by ``calibrate``) and ``mode="fast"`` (its error
model measured on ``--error-chips`` other chips, then stand-ins drawn from it). On the same chips it also
scores, in this process, the fast mode's first form (independent draws at the measured RMS, scale 1) and
the truth itself (no calibration error: the floor that correction reaches with a calibration's nominal
loss and taps). Printed per n: the error model, mean / median / p10 / p90 of corrected 1 − F per way, the
ratio to full, the chip-by-chip correlation with full, a two-sample Kolmogorov–Smirnov test against full,
and the yield each way at specs placed at full mode's quartiles.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_yield_fast.py --n 8 16 --chips 24
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--chips", type=int, default=24, help="chips scored both ways per mesh size")
    parser.add_argument("--error-chips", type=int, default=4, help="full calibrations for the error model")
    parser.add_argument("--sigma", type=float, default=0.02, help="σδ of the process, rad")
    parser.add_argument("--k-targets", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-polish", action="store_true", help="local correction without the gradient polish")
    args = parser.parse_args()

    from scipy.stats import ks_2samp

    from tapmesh import yield_dask
    from tapmesh.calibration.surrogate import ErrorModel, load_error_models
    from tapmesh.yield_study import Study, run_chunk

    for n in args.n:
        study = Study(ns=(n,), sigmas=(args.sigma,), chips=args.chips, seed=0, k_targets=args.k_targets,
                      error_chips=args.error_chips, polish=not args.no_polish)
        f, seconds = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            for mode in ("full", "fast"):
                out = Path(tmp) / mode
                start = time.perf_counter()
                yield_dask.run(replace(study, mode=mode), out, workers=args.workers, plots=False,
                               echo=lambda line: None)
                seconds[mode] = time.perf_counter() - start
                f[mode] = 1 - yield_dask.read_table(out)["f_mean"].to_numpy()
            model = load_error_models((Path(tmp) / "fast" / "error_model.json").read_text())[n]
        first_form = ErrorModel(n=n, chips=model.chips, theta_rad=model.theta_rad, phi_rad=model.phi_rad,
                                gamma_rad=model.gamma_rad, alpha_rel=model.alpha_rel, delta_rad=model.delta_rad,
                                crosstalk=model.crosstalk, tap_guess=model.tap_guess)
        fast_study = replace(study, mode="fast")
        f["fast, first form"] = 1 - np.array([r["f_mean"] for r in run_chunk(fast_study, study.keys(), {n: first_form})])
        truth = model.with_excess(0.0, 1.0)  # scale 0: the true parameters
        f["truth (no error)"] = 1 - np.array([r["f_mean"] for r in run_chunk(fast_study, study.keys(), {n: truth})])

        print(f"\nn = {n}, σδ {args.sigma}, {args.chips} chips, {args.k_targets} targets, polish {study.polish}: "
              f"full {seconds['full']:.0f} s, fast {seconds['fast']:.0f} s (its error model included) on "
              f"{args.workers} workers")
        print(f"error model ({model.chips} chips): φ0 θ/φ/γ {model.theta_rad:.4f}/{model.phi_rad:.4f}/"
              f"{model.gamma_rad:.4f} rad, α {model.alpha_rel:.2%}, φ0–α correlation θ/φ/γ "
              f"{model.theta_alpha_corr:+.2f}/{model.phi_alpha_corr:+.2f}/{model.gamma_alpha_corr:+.2f}, depth gain "
              f"θ/φ {model.theta_depth_gain:+.2f}/{model.phi_depth_gain:+.2f}; infidelity added by the real errors "
              f"{model.excess_full:.2e}, by draws at the RMS {model.excess_draw:.2e}: scale {model.effective_scale:.3f}")
        print("| way | mean 1 − F | median | p10 | p90 | ÷ full | correlation with full | KS D (p) |")
        print("|---|---|---|---|---|---|---|---|")
        full = f["full"]
        for way, v in f.items():
            test = ks_2samp(full, v) if way != "full" else None
            ks = f"{test.statistic:.2f} ({test.pvalue:.2g})" if test else "—"
            print(f"| {way} | {v.mean():.3e} | {np.median(v):.3e} | {np.percentile(v, 10):.3e} | "
                  f"{np.percentile(v, 90):.3e} | {v.mean() / full.mean():.2f} | {np.corrcoef(full, v)[0, 1]:.2f} | {ks} |")
        for q in (25, 50, 75):
            spec = 1 - np.percentile(full, q)
            print(f"spec F ≥ {spec:.5f}: yield " + ", ".join(f"{way} {np.mean(1 - v >= spec):.2f}" for way, v in f.items()))


if __name__ == "__main__":
    main()
