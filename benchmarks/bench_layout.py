"""Build + write-GDS time, connectivity and DRC time, die size and GDS size of tapped rectangular chips.

Run:  python benchmarks/bench_layout.py [--sizes 8 16 32 64] [--pads bumps] [--checks] [--quick] [--out DIR]
      python benchmarks/bench_layout.py --stagger [--pad-pitch 100] [--pad-size 50 50] [--checks]   (edge pads:
      aligned rows against staggered rows, pad_stagger="auto": rows, field height, die size and area)
      .venv-ubcpdk/bin/python benchmarks/bench_layout.py --pdk ubcpdk [--checks] [--quick]   (a foundry PDK, in
      its own environment: planar fan-out pads, one signal and one return pad a heater, against direct drive on
      the same PDK; DRC = the foundry's rules)

Each size is built in a fresh process (gdsfactory's cell cache starts empty) and timed in parts: building the chip
(mesh, taps, dense heater tracks, pad/bump field, fiber gratings and routes, die outline), writing the GDS,
and with ``--checks`` the connectivity extraction (``chip_map``: KLayout ``LayoutToNetlist`` over the metal) and
the DRC deck (hierarchical KLayout Region checks). The reference is the direct-drive chip (``pads="direct"``,
one pad per heater on a 100 µm track zone) at the sizes where it still fits a reticle (n ≤ 16), built in the same
run; ``--quick`` runs n = 8 and 16 only.
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
n, kind, pads, path, checks = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
pdk = sys.argv[6]
extra = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
if "pad_size" in extra:
    extra["pad_size"] = tuple(extra["pad_size"])
if pdk == "generic":
    try:
        c = pcells.chip(n=n, kind=kind, pads=pads, **extra)
    except (pcells.RuleError, pcells.ReticleError) as e:  # a named error: report it as the row
        print(json.dumps({"n": n, "kind": kind, "pads": pads, "pdk": pdk, "extra": extra, "error": str(e)}))
        sys.exit(0)
else:  # overlap-contact processes: report the die even where it exceeds a reticle
    c = pcells.chip(n=n, kind=kind, pdk=pdk, pads=pads, check_reticle=False)
t2 = time.perf_counter()
c.write_gds(path)
t3 = time.perf_counter()
import os
row = {
    "n": n, "kind": kind, "pads": pads, "pdk": pdk, "import_s": t1 - t0, "build_s": t2 - t1, "write_s": t3 - t2,
    "total_s": t3 - t1, "gds_mb": os.path.getsize(path) / 1e6, "heaters": c.info["n_heaters"],
    "n_pads": c.info["n_pads"], "taps": 2 * c.info["n_heaters"],
    "die_mm": [v / 1e3 for v in c.info["die_size"]], "extra": extra, "pad_rows": c.info.get("pad_rows"),
    "pad_field_um": c.info.get("pad_field_height"), "pad_row_pitch_um": c.info.get("pad_row_pitch"),
    "pad_columns": c.info.get("pad_columns"),
    "fits_reticle": pcells.die.fits(c.info["die_size"], pcells.get_process(c.info["process"]).reticle),
}
if checks:
    t4 = time.perf_counter()
    cm = pcells.chip_map(c)
    t5 = time.perf_counter()
    if pdk == "generic":
        res = pcells.drc(c)
    else:
        from tapmesh.pcells import foundry_drc
        res = foundry_drc.run_deck(c, pdk)
    t6 = time.perf_counter()
    row.update(connectivity_s=t5 - t4, drc_s=t6 - t5, drc_violations=sum(res.values()), mapped_pads=len(cm.pads))
print(json.dumps(row))
"""


def run_one(n: int, kind: str, pads: str, out: str, checks: bool, env: dict, pdk: str = "generic",
            extra: dict | None = None) -> dict:
    tag = "_staggered" if extra and extra.get("pad_stagger") else ""
    path = os.path.join(out, f"chip_{pdk}_{kind}_{pads}{tag}_{n}.gds")
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CHILD, str(n), kind, pads, path, "1" if checks else "0", pdk,
                          json.dumps(extra or {})], env=env, capture_output=True, text=True, check=True)
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - t
    return row


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--kind", default="rectangular")
    ap.add_argument("--pads", default=None, choices=("bumps", "edge", "direct", "fanout"),
                    help="default: bumps on the generic PDK, fanout on a foundry PDK")
    ap.add_argument("--checks", action="store_true", help="also time chip_map (connectivity) and DRC")
    ap.add_argument("--quick", action="store_true", help="n = 8 and 16 only")
    ap.add_argument("--pdk", default="generic", help="generic | ubcpdk | cspdk (run with that PDK's environment)")
    ap.add_argument("--out", default=None, help="folder for the GDS files (default: a temporary one)")
    ap.add_argument("--stagger", action="store_true", help="edge pads: aligned against staggered rows")
    ap.add_argument("--pad-pitch", type=float, default=100.0, help="--stagger: pad pitch, µm")
    ap.add_argument("--pad-size", type=float, nargs=2, default=(50.0, 50.0), help="--stagger: pad w h, µm")
    args = ap.parse_args(argv)
    if args.stagger:
        return stagger_table(args)
    sizes = [8, 16] if args.quick else args.sizes
    if args.pads is None:
        args.pads = "bumps" if args.pdk == "generic" else "fanout"
    out = args.out or tempfile.mkdtemp(prefix="tapmesh_bench_")
    os.makedirs(out, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows = []
    print(f"{'n':>4} {'pdk':>7} {'pads':>6} {'heaters':>8} {'pads#':>6} {'build s':>8} {'write s':>8} {'total s':>8} "
          f"{'conn s':>7} {'DRC s':>7} {'DRC':>4} {'GDS MB':>7} {'die mm':>13} {'reticle':>7}")
    for n in sizes:
        if args.pdk == "generic":
            plan = [("generic", args.pads)] + ([("generic", "direct")] if args.pads != "direct" and n <= 16 else [])
        else:  # the references: direct drive on the same PDK and on the generic PDK, same n, same run
            plan = [(args.pdk, args.pads)] + ([(args.pdk, "direct"), ("generic", "direct")]
                                              if n <= 16 and args.pads != "direct" else [])
        for pdk, pads in plan:
            row = run_one(n, args.kind, pads, out, args.checks, env, pdk)
            rows.append(row)
            if "error" in row:
                print(f"{n:>4} {pdk:>7} {pads:>6}  {row['error']}", flush=True)
                continue
            conn = (f"{row['connectivity_s']:>7.2f} {row['drc_s']:>7.2f} {row['drc_violations']:>4}" if args.checks
                    else f"{'-':>7} {'-':>7} {'-':>4}")
            w, h = row["die_mm"]
            print(f"{n:>4} {pdk:>7} {pads:>6} {row['heaters']:>8} {row['n_pads']:>6} {row['build_s']:>8.2f} "
                  f"{row['write_s']:>8.2f} {row['total_s']:>8.2f} {conn} {row['gds_mb']:>7.2f} "
                  f"{w:>5.1f} x {h:<5.1f} {'fits' if row['fits_reticle'] else 'no':>7}", flush=True)
    for n in sizes:
        ref = [r for r in rows if r["n"] == n and r["pads"] == "direct" and r["pdk"] == "generic"]
        new = [r for r in rows if r["n"] == n and r["pads"] == args.pads and r["pdk"] == "generic"]
        mine = [r for r in rows if r["n"] == n and r["pdk"] == args.pdk != "generic" and "error" not in r]
        for a in mine:
            for b, what in ((r, f"{r['pdk']} direct") for r in rows if r["n"] == n and r["pads"] == "direct"
                            and r is not a and "error" not in r):
                print(f"n={n}: {args.pdk} {a['pads']} / {what}: build+write time ratio "
                      f"{a['total_s'] / b['total_s']:.2f}, die area ratio "
                      f"{a['die_mm'][0] * a['die_mm'][1] / (b['die_mm'][0] * b['die_mm'][1]):.2f}")
        if ref and new and args.pads != "direct" and args.pdk == "generic":
            print(f"n={n}: {args.pads}/direct build+write time ratio {new[0]['total_s'] / ref[0]['total_s']:.2f}, "
                  f"die area ratio {new[0]['die_mm'][0] * new[0]['die_mm'][1] / (ref[0]['die_mm'][0] * ref[0]['die_mm'][1]):.2f}")
    print(json.dumps(rows))
    return rows


def stagger_table(args) -> list[dict]:
    """Edge pads, aligned rows against staggered rows (``pad_stagger="auto"``), per n: rows, field height, die."""
    sizes = [8, 16] if args.quick else args.sizes
    out = args.out or tempfile.mkdtemp(prefix="tapmesh_bench_")
    os.makedirs(out, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base = {"pad_pitch": args.pad_pitch, "pad_size": list(args.pad_size)}
    rows = []
    print(f"pad pitch {args.pad_pitch} µm, pads {args.pad_size[0]} × {args.pad_size[1]} µm")
    print(f"{'n':>4} {'rows':>9} {'cols':>5} {'row pitch':>10} {'field µm':>9} {'die mm':>13} {'area mm²':>9} "
          f"{'build s':>8} {'conn s':>7} {'DRC s':>7} {'DRC':>4}")
    for n in sizes:
        for label, extra in (("aligned", base), ("staggered", {**base, "pad_stagger": "auto"})):
            row = run_one(n, args.kind, "edge", out, args.checks, env, "generic", extra)
            row["rows_kind"] = label
            rows.append(row)
            if "error" in row:
                print(f"{n:>4} {label:>9}  {row['error']}", flush=True)
                continue
            w, h = row["die_mm"]
            chk = (f"{row['connectivity_s']:>7.2f} {row['drc_s']:>7.2f} {row['drc_violations']:>4}" if args.checks
                   else f"{'-':>7} {'-':>7} {'-':>4}")
            print(f"{n:>4} {label:>9} {row['pad_rows']:>2} {row['pad_columns'] or '':>5} "
                  f"{row['pad_row_pitch_um'] or args.pad_pitch:>10.1f} {row['pad_field_um']:>9.1f} "
                  f"{w:>5.2f} x {h:<5.2f} {w * h:>9.2f} {row['build_s']:>8.2f} {chk}", flush=True)
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
