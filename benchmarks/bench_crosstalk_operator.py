"""Cost of the crosstalk operator in ``Calibration``: ``voltages_for_phases`` and ``Calibration.nominal``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_crosstalk_operator.py [--n 64] [--reference OLD.py]

Times ``voltages_for_phases`` (random targets, crosstalk 0.01 between neighbouring heaters) and the memory
``Calibration.nominal`` allocates (tracemalloc peak). ``--reference`` takes a copy of an older
``calibration/calibration.py`` (e.g. ``git show 8b91260:calibration/calibration.py > /tmp/old.py``, the one
with a dense (H, H) crosstalk matrix) and times it in the same run, on the same chip and targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tapmesh import circuits  # noqa: E402
from tapmesh.calibration import AsBuilt  # noqa: E402
from tapmesh.calibration.calibration import Calibration  # noqa: E402


def load_reference(path: str):
    spec = importlib.util.spec_from_file_location("calibration_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibration_reference"] = module
    spec.loader.exec_module(module)
    return module.Calibration


def measure(cls, top, truth, targets, repeat):
    tracemalloc.start()
    t0 = time.perf_counter()
    cal = cls.nominal(top)
    t_nominal = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cal.phase_offsets, cal.alpha, cal.beta = truth.phase_offsets, truth.alpha, truth.beta
    cal.crosstalk = truth.crosstalk
    cal.voltages_for_phases(targets[0])  # warm-up
    times = []
    for _ in range(repeat):
        for t in targets:
            t0 = time.perf_counter()
            v = cal.voltages_for_phases(t)
            times.append(time.perf_counter() - t0)
    error = np.max(np.abs(np.angle(np.exp(1j * (truth.phases(v) - targets[-1])))))
    return {"nominal_mb": peak / 1e6, "nominal_ms": 1e3 * t_nominal, "median_ms": 1e3 * np.median(times),
            "min_ms": 1e3 * np.min(times), "error": error}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--reference", help="an older calibration.py to time beside the current one")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--beta", type=float, default=0.0, help="β spread of the chip (0: as the progressive calibration, which fits no β)")
    args = parser.parse_args()
    top = circuits.rectangular(args.n)
    truth = AsBuilt.random(top, seed=11, crosstalk=0.01, beta_sigma=args.beta)
    targets = np.random.default_rng(12).uniform(0, 2 * np.pi, (10, top.n_shifters))
    rows = [("current (sparse)", Calibration)]
    if args.reference:
        rows.insert(0, ("reference", load_reference(args.reference)))
    print(f"n = {args.n}: {top.n_shifters} heaters, {np.count_nonzero(truth.crosstalk)} crosstalk nonzeros, β spread {args.beta}")
    print(f"{'':18s} {'nominal MB':>10s} {'nominal ms':>10s} {'v4p median ms':>14s} {'v4p min ms':>10s} {'max phase err':>13s}")
    results = {}
    for name, cls in rows:
        r = measure(cls, top, truth, targets, args.repeat)
        results[name] = r
        print(f"{name:18s} {r['nominal_mb']:10.2f} {r['nominal_ms']:10.2f} {r['median_ms']:14.3f} {r['min_ms']:10.3f} {r['error']:13.2e}")
    if args.reference:
        a, b = results["reference"], results["current (sparse)"]
        print(f"voltages_for_phases speedup (median): {a['median_ms'] / b['median_ms']:.1f}x; "
              f"nominal memory {a['nominal_mb']:.1f} MB -> {b['nominal_mb']:.3f} MB")


if __name__ == "__main__":
    main()
