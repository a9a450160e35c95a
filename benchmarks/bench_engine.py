"""Benchmark of the JAX mesh engine against neurophox, a dense matmul and the SAX reference circuit.

Run:  python benchmarks/bench_engine.py            (everything; SAX at n=32 takes several minutes)
      python benchmarks/bench_engine.py --quick    (skips SAX at n=32)
      python benchmarks/bench_engine.py --gpu      (adds the n=256, batch 65536 case; needs a GPU)

Every ratio is measured in the same run. neurophox is installed with ``--no-deps`` into a temporary
folder (it would pull TensorFlow otherwise); its ``config`` module imports TensorFlow only for dtype
constants, which a stub provides.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import circuits
from circuits import MeshParams, propagate, unitary
from circuits.reference import instance_settings, sax_circuit


def timeit(fn, repeat: int = 20, min_time: float = 0.2) -> float:
    """Median wall time of ``fn()`` in seconds (results blocked until ready)."""
    jax.block_until_ready(fn())
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
        if len(times) > 2000:
            break
    return statistics.median(times)


def first_call(fn) -> float:
    """Wall time of the first call (compile + run), seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def load_neurophox():
    """neurophox's numpy RMNumpy, installed --no-deps into a temporary folder; None if unavailable."""
    target = tempfile.mkdtemp(prefix="neurophox-")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, "neurophox"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print("neurophox could not be installed:", result.stderr.strip().splitlines()[-1:])
        return None
    stub = types.ModuleType("tensorflow")
    stub.complex64, stub.float32 = "complex64", "float32"
    stub.Tensor = stub.Variable = type("Tensor", (), {})
    sys.modules.setdefault("tensorflow", stub)
    sys.path.insert(0, target)
    from neurophox.numpy import RMNumpy

    return RMNumpy


@partial(jax.jit, static_argnames="top")
def layer_by_layer(top, params, x):
    """A plain layer-by-layer forward pass (the batch scanned column by column, nothing recorded): the
    reference against which recording every tap costs extra."""
    from circuits import engine

    columns, _, _, post = engine._fused_columns(top, params, jnp.asarray(1.55, jnp.float32), x.dtype)
    field, _ = jax.lax.scan(lambda f, c: (engine._mix(c, f), None), x.T, jax.tree_util.tree_map(lambda c: c[..., None], columns))
    return (field * post[:, None]).T


@jax.jit
def _scale(z):
    return z * 2


def row(*cells, widths=(34, 14, 14, 14)):
    print("".join(str(c).ljust(w) for c, w in zip(cells, widths)))


def bench_forward(n: int = 64, batch: int = 1024) -> None:
    print(f"\n## Forward pass, n={n}, batch={batch}, complex64 ({jax.devices()[0].platform})")
    top = circuits.rectangular(n)
    params = MeshParams.random(top, seed=0, delta_sigma=0.02).astype(jnp.float32)
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.normal(size=(batch, n)) + 1j * rng.normal(size=(batch, n))).astype(np.complex64))

    compile_plain = first_call(lambda: propagate(top, params, x))
    compile_taps = first_call(lambda: propagate(top, params, x, taps=True))
    plain = timeit(lambda: propagate(top, params, x))
    taps = timeit(lambda: propagate(top, params, x, taps=True))
    powers = timeit(lambda: propagate(top, params, x, taps="power"))
    z = jnp.zeros((batch, top.n_shifters), jnp.float32)
    one_pass = timeit(lambda: _scale(z))  # read + write the tap powers once: the memory floor
    u = unitary(top, params, dtype=jnp.complex64)
    dense_fn = jax.jit(lambda x, u: jnp.matmul(x, u.T, precision=jax.lax.Precision.HIGHEST))
    dense = timeit(lambda: dense_fn(x, u))
    compose = timeit(lambda: unitary(top, params, dtype=jnp.complex64))
    layered = timeit(lambda: layer_by_layer(top, params, x))

    RMNumpy = load_neurophox()
    neuro = None
    if RMNumpy is not None:
        mesh = RMNumpy(n)
        x_np = np.asarray(x)
        neuro = timeit(lambda: mesh.transform(x_np), repeat=10)

    row("case", "time (ms)", "vs engine", "")
    row("engine forward (compose + matmul)", f"{plain * 1e3:.3f}", "1.00")
    row("  of which compose U", f"{compose * 1e3:.3f}", f"{compose / plain:.2f}")
    row("dense x @ U.T", f"{dense * 1e3:.3f}", f"{dense / plain:.2f}")
    if neuro is not None:
        row("neurophox RMNumpy.transform", f"{neuro * 1e3:.3f}", f"{neuro / plain:.2f}")
    row("layer-by-layer scan forward", f"{layered * 1e3:.3f}", f"{layered / plain:.2f}")
    row("engine forward + all tap fields", f"{taps * 1e3:.3f}", f"{taps / plain:.2f}")
    row("engine forward + all tap powers", f"{powers * 1e3:.3f}", f"{powers / plain:.2f}")
    row("  one pass over the tap powers", f"{one_pass * 1e3:.3f}", f"{one_pass / plain:.2f}")
    print(f"compile: forward {compile_plain:.2f} s, with taps {compile_taps:.2f} s")
    print("ratios (targets): ", end="")
    if neuro is not None:
        print(f"neurophox/engine = {neuro / plain:.1f}x (>= 20x), ", end="")
    print(f"engine/dense = {plain / dense:.2f}x (<= 3x), taps/plain = {taps / plain:.2f}x (<= 2x), "
          f"tap powers/plain = {powers / plain:.2f}x, taps/layer-by-layer = {taps / layered:.2f}x, "
          f"tap powers/layer-by-layer = {powers / layered:.2f}x")
    print(f"tap fields written: {batch} x {top.n_shifters} complex64 = {batch * top.n_shifters * 8 / 1e6:.1f} MB "
          f"(the plain output is {batch * n * 8 / 1e6:.2f} MB)")


def bench_vs_sax(sizes, wavelengths: int = 100) -> None:
    print("\n## Engine vs SAX reference circuit (klu, flat netlist of analytic MZI models), complex128")
    row("case", "SAX", "engine", "SAX/engine", widths=(40, 14, 14, 14))
    for n in sizes:
        top = circuits.rectangular(n)
        params = MeshParams.random(top, seed=n, delta_sigma=0.02)
        target = jnp.asarray(circuits.haar_unitary(n, 1))
        circuit = sax_circuit(top, taps=False)

        def sax_u(phases, wl):
            s = circuit(wl=wl, **instance_settings(top, params.with_phases(phases), taps=False))
            return jnp.stack([jnp.stack([s[(f"in{j}", f"out{i}")] for j in range(n)], -1) for i in range(n)], -2)

        def engine_u(phases, wl):
            return unitary(top, params.with_phases(phases), wl=wl)

        for label, wl in (("1 wl", 1.55), (f"{wavelengths} wl", jnp.linspace(1.5, 1.6, wavelengths))):
            if n > 16 and label != "1 wl":
                continue
            results = {}
            for name, fn in (("sax", sax_u), ("engine", engine_u)):
                forward = jax.jit(lambda p, fn=fn, wl=wl: fn(p, wl))
                loss = jax.jit(jax.grad(lambda p, fn=fn, wl=wl: jnp.sum(jnp.abs(fn(p, wl) - target) ** 2)))
                phases = params.phases
                results[name] = (
                    first_call(lambda: forward(phases)),
                    timeit(lambda: forward(phases), repeat=5, min_time=0.1),
                    first_call(lambda: loss(phases)) if label == "1 wl" else float("nan"),
                    timeit(lambda: loss(phases), repeat=5, min_time=0.1) if label == "1 wl" else float("nan"),
                )
            (sc, sf, sgc, sg), (ec, ef, egc, eg) = results["sax"], results["engine"]
            row(f"n={n} {label} forward compile (s)", f"{sc:.2f}", f"{ec:.2f}", f"{sc / ec:.1f}", widths=(40, 14, 14, 14))
            row(f"n={n} {label} forward per call (ms)", f"{sf * 1e3:.3f}", f"{ef * 1e3:.3f}", f"{sf / ef:.0f}", widths=(40, 14, 14, 14))
            if label == "1 wl":
                row(f"n={n} {label} gradient compile (s)", f"{sgc:.2f}", f"{egc:.2f}", f"{sgc / egc:.1f}", widths=(40, 14, 14, 14))
                row(f"n={n} {label} gradient per call (ms)", f"{sg * 1e3:.3f}", f"{eg * 1e3:.3f}", f"{sg / eg:.0f}", widths=(40, 14, 14, 14))
            sys.stdout.flush()


def bench_gpu(n: int = 256, batch: int = 65536) -> None:
    print(f"\n## GPU case n={n}, batch={batch}, complex64 at precision=HIGHEST")
    top = circuits.rectangular(n)
    params = MeshParams.random(top, seed=0).astype(jnp.float32)
    key = jax.random.PRNGKey(0)
    x = (jax.random.normal(key, (batch, n)) + 1j * jax.random.normal(key, (batch, n))).astype(jnp.complex64)
    plain = timeit(lambda: propagate(top, params, x))
    u = unitary(top, params, dtype=jnp.complex64)
    dense_fn = jax.jit(lambda x, u: jnp.matmul(x, u.T, precision=jax.lax.Precision.HIGHEST))
    dense = timeit(lambda: dense_fn(x, u))
    taps = timeit(lambda: propagate(top, params, x, taps=True), repeat=5)
    powers = timeit(lambda: propagate(top, params, x, taps="power"), repeat=5)
    row("engine forward", f"{plain * 1e3:.2f} ms", f"{plain / dense:.2f}x dense (<= 3x)")
    row("dense x @ U.T", f"{dense * 1e3:.2f} ms")
    row("forward + tap fields", f"{taps * 1e3:.2f} ms")
    row("forward + tap powers", f"{powers * 1e3:.2f} ms", "(<= 10 ms; reference scan 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the SAX n=32 case")
    parser.add_argument("--gpu", action="store_true", help="run the n=256, batch 65536 case")
    parser.add_argument("--skip-sax", action="store_true")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    bench_forward()
    if not args.skip_sax:
        bench_vs_sax([8, 16] if args.quick else [8, 16, 32])
    if args.gpu:
        bench_gpu()


if __name__ == "__main__":
    main()
