"""Import time of each tapmesh package, in fresh processes (``python -X importtime``).

For each of ``tapmesh``, ``tapmesh.pcells``, ``tapmesh.circuits``, ``tapmesh.calibration`` and
``tapmesh.training``, starts ``--runs`` fresh interpreters outside the repository that import only that
package, and reports the median over runs of: the total import time (everything the import statement
pulls in, interpreter start-up excluded), the part spent in tapmesh's own modules, and the third-party
packages that cost most (self time of all their modules). The reference, measured in the same run, is
the import of the package's heaviest third-party dependency alone (``jax`` or ``gdsfactory``): the ratio
says how much a tapmesh package adds to what its libraries cost anyway.

    python benchmarks/bench_imports.py            # 5 runs per package
    python benchmarks/bench_imports.py --quick    # 2 runs per package
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict

PACKAGES = ("tapmesh", "tapmesh.pcells", "tapmesh.circuits", "tapmesh.calibration", "tapmesh.training")
REFERENCES = ("jax", "gdsfactory")
MARK = "--tapmesh-bench-imports--"
LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def measure(module: str, cwd: str) -> dict:
    """One fresh process importing ``module``: total and per-root-package self time, in ms."""
    code = f"import sys; sys.stderr.write({MARK!r} + '\\n'); sys.stderr.flush(); import {module}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    lines = lines[lines.index(MARK) + 1:]
    total_us, by_root = 0, defaultdict(int)
    for line in lines:
        match = LINE.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = int(match[1]), int(match[2]), match[3], match[4]
        if len(indent) <= 1:  # a top-level entry of this import statement: its cumulative time counts once
            total_us += cumulative_us
        by_root[name.split(".")[0]] += self_us
    return {"total": total_us / 1e3, "roots": {k: v / 1e3 for k, v in by_root.items()}}


def summarize(samples: list[dict]) -> dict:
    roots = {name for s in samples for name in s["roots"]}
    return {
        "total": statistics.median(s["total"] for s in samples),
        "roots": {name: statistics.median(s["roots"].get(name, 0.0) for s in samples) for name in roots},
    }


def third_party(roots: dict, top: int) -> list[tuple[str, float]]:
    stdlib = set(sys.stdlib_module_names) | {"_distutils_hack", "__editable___tapmesh_0_1_0_finder"}
    items = [(name, ms) for name, ms in roots.items()
             if name not in stdlib and name != "tapmesh" and not name.startswith("_")]
    return sorted(items, key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per package (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 runs per package")
    parser.add_argument("--top", type=int, default=3, help="third-party contributors shown (default 3)")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    if runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory() as cwd:  # outside the repository: the installed packages only
        results = {}
        for module in PACKAGES + REFERENCES:
            results[module] = summarize([measure(module, cwd) for _ in range(runs)])
    ref = {name: results[name]["total"] for name in REFERENCES}
    print(f"median of {runs} fresh processes per package (python -X importtime); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"reference: import jax alone {ref['jax']:.0f} ms, import gdsfactory alone {ref['gdsfactory']:.0f} ms")
    print()
    print("| package | total ms | tapmesh's own ms | × its heaviest library alone | top third-party (self ms) |")
    print("|---|---:|---:|---:|---|")
    for module in PACKAGES:
        r = results[module]
        roots = r["roots"]
        heaviest = "gdsfactory" if roots.get("gdsfactory", 0) > 0 else "jax" if roots.get("jax", 0) > 0 else None
        ratio = f"{r['total'] / ref[heaviest]:.2f} ({heaviest})" if heaviest else "–"
        top = ", ".join(f"{name} {ms:.0f}" for name, ms in third_party(roots, args.top)) or "–"
        print(f"| `{module}` | {r['total']:.0f} | {roots.get('tapmesh', 0.0):.0f} | {ratio} | {top} |")


if __name__ == "__main__":
    main()
