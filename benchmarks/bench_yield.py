"""Yield study throughput: chips per second, a plain loop against Dask with 1 and 2 workers, full and fast mode.

For each mesh size and mode the same chips are scored three ways in one run: a plain Python loop in this
process (:func:`tapmesh.yield_study.run_chunk`), and :func:`tapmesh.yield_dask.run` on a LocalCluster of 1
and of 2 single-threaded worker processes (results streamed to parquet as in a real study). Every
configuration first scores one warm-up chip on each of its processes (JIT compilation) that is not timed.
Printed: chips/s, Dask's overhead (loop ÷ 1 worker) and the 1 → 2 worker speed-up, whether the three tables
agree chip for chip, and, when both modes ran, the corrected fidelity of fast mode against full mode on the
same chips. ``--quick`` scores fewer chips.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_yield.py --n 8 --modes fast [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--modes", nargs="+", default=["full", "fast"], choices=["full", "fast"])
    parser.add_argument("--chips-full", type=int, default=4, help="chips per configuration, full mode")
    parser.add_argument("--chips-fast", type=int, default=24, help="chips per configuration, fast mode")
    parser.add_argument("--error-chips", type=int, default=2, help="full calibrations for the fast error model")
    parser.add_argument("--quick", action="store_true", help="2 full / 8 fast chips per configuration")
    args = parser.parse_args()
    if args.quick:
        args.chips_full, args.chips_fast = 2, 8

    from distributed import Client, LocalCluster

    from tapmesh import yield_dask
    from tapmesh.yield_study import Study, error_model_chip, pool_error_models, run_chunk

    rows, tables = [], {}
    for n in args.n:
        models = {}
        if "fast" in args.modes:
            study = Study(ns=(n,), sigmas=(0.02,), chips=1, mode="fast", error_chips=args.error_chips, k_targets=2)
            start = time.perf_counter()
            models = {n: pool_error_models(n, (error_model_chip(study, n, i) for i in range(args.error_chips)))[0]}
            print(f"n = {n}: error model from {args.error_chips} full calibrations in "
                  f"{time.perf_counter() - start:.1f} s: {models[n]}", flush=True)
        for mode in args.modes:
            chips = args.chips_full if mode == "full" else args.chips_fast
            study = Study(ns=(n,), sigmas=(0.02,), chips=chips, mode=mode, k_targets=2, seed=0)
            keys = study.keys()
            warm = [(n, 0.02, chips + 1)]  # a chip outside the timed set
            run_chunk(study, warm, models)
            start = time.perf_counter()
            loop = run_chunk(study, keys, models)
            loop_s = time.perf_counter() - start
            result = {"n": n, "mode": mode, "chips": chips, "loop": chips / loop_s}
            f_loop = np.array([r["f_mean"] for r in loop])
            agree = True
            for workers in (1, 2):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                       env=yield_dask.WORKER_ENV, silence_logs=logging.ERROR)
                client = Client(cluster)
                try:
                    client.run(run_chunk, study, warm, models)  # compile on every worker, untimed
                    with tempfile.TemporaryDirectory() as out:
                        start = time.perf_counter()
                        yield_dask.run(study, out, client=client, error_models=models, plots=False,
                                       echo=lambda line: None)
                        seconds = time.perf_counter() - start
                        table = yield_dask.read_table(Path(out))
                finally:
                    client.close()
                    cluster.close()
                result[f"dask{workers}"] = chips / seconds
                agree &= bool(np.array_equal(table["f_mean"].to_numpy(), f_loop))
            result["agree"] = agree
            tables[(n, mode)] = f_loop
            rows.append(result)
            print(f"n = {n} {mode}: loop {result['loop']:.3f} chips/s, Dask 1 worker {result['dask1']:.3f}, "
                  f"2 workers {result['dask2']:.3f}; tables equal: {agree}", flush=True)

    print("\n| n | mode | chips | loop chips/s | Dask 1 worker | Dask 2 workers | loop ÷ 1 worker (overhead) | "
          "2 ÷ 1 workers | tables equal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['mode']} | {r['chips']} | {r['loop']:.3f} | {r['dask1']:.3f} | {r['dask2']:.3f} | "
              f"{r['loop'] / r['dask1']:.2f} | {r['dask2'] / r['dask1']:.2f} | {r['agree']} |")
    for n in args.n:
        if (n, "full") in tables and (n, "fast") in tables:
            full, fast = tables[(n, "full")], tables[(n, "fast")][: len(tables[(n, "full")])]
            print(f"n = {n}, same chips: corrected 1 − F full {np.mean(1 - full):.2e}, fast {np.mean(1 - fast):.2e} "
                  f"(fast ÷ full {np.mean(1 - fast) / np.mean(1 - full):.2f})")


if __name__ == "__main__":
    main()
