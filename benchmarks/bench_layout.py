"""Build + write-GDS time of tapped rectangular meshes with pads (pcells.chip), n = 8, 16, 32, 64.

Run:  python benchmarks/bench_layout.py [--sizes 8 16 32 64] [--kind rectangular] [--out DIR]

Each size is built in a fresh process (so gdsfactory's cell cache starts empty) and timed in two parts:
building the chip (mesh, taps, heater tracks, pads, fiber gratings and routes) and writing the GDS file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
from tapmesh import pcells
t1 = time.perf_counter()
n, kind, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = pcells.chip(n=n, kind=kind)
t2 = time.perf_counter()
c.write_gds(path)
t3 = time.perf_counter()
import os
print(json.dumps({
    "n": n, "kind": kind, "import_s": t1 - t0, "build_s": t2 - t1, "write_s": t3 - t2,
    "total_s": t3 - t1, "gds_mb": os.path.getsize(path) / 1e6, "heaters": c.info["n_heaters"],
    "pads": c.info["n_pads"], "taps": 2 * c.info["n_heaters"],
    "width_mm": c.dbbox().width() / 1e3, "height_mm": c.dbbox().height() / 1e3,
}))
"""


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--kind", default="rectangular")
    ap.add_argument("--out", default=None, help="folder for the GDS files (default: a temporary one)")
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="tapmesh_bench_")
    os.makedirs(out, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = []
    print(f"{'n':>4} {'heaters':>8} {'pads':>6} {'taps':>6} {'build s':>8} {'write s':>8} {'total s':>8} "
          f"{'GDS MB':>7} {'chip mm':>14}")
    for n in args.sizes:
        path = os.path.join(out, f"chip_{args.kind}_{n}.gds")
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", CHILD, str(n), args.kind, path], env=env, capture_output=True,
                             text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        print(f"{n:>4} {row['heaters']:>8} {row['pads']:>6} {row['taps']:>6} {row['build_s']:>8.2f} "
              f"{row['write_s']:>8.2f} {row['total_s']:>8.2f} {row['gds_mb']:>7.2f} "
              f"{row['width_mm']:>6.1f} x {row['height_mm']:<5.1f}", flush=True)
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
