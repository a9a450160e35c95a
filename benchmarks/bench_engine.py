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
import os
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

from tapmesh import circuits
from tapmesh.circuits import MeshParams, propagate, unitary
from tapmesh.circuits.reference import instance_settings, sax_circuit


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
    from tapmesh.circuits import engine

    columns, _, _, post = engine._fused_columns(top, params, jnp.asarray(1.55, jnp.float32), x.dtype)
    field, _ = jax.lax.scan(engine._column_step, x.T, (columns, jnp.asarray(engine._placement(top).partner)))
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


def measure_case(model: str, n: int, wavelengths: int, gradient: bool) -> tuple[float, float]:
    """Compile time (s) and time per call (s) of one case: the mesh's full transfer matrix from the SAX
    reference circuit (``model="sax"``) or the engine, forward or the gradient of a fidelity-like loss."""
    top = circuits.rectangular(n)
    params = MeshParams.random(top, seed=n, delta_sigma=0.02)
    target = jnp.asarray(circuits.haar_unitary(n, 1))
    wl = 1.55 if wavelengths == 1 else jnp.linspace(1.5, 1.6, wavelengths)
    if model == "sax":
        circuit = sax_circuit(top, taps=False)

        def transfer(phases):
            s = circuit(wl=wl, **instance_settings(top, params.with_phases(phases), taps=False))
            return jnp.stack([jnp.stack([s[(f"in{j}", f"out{i}")] for j in range(n)], -1) for i in range(n)], -2)
    else:

        def transfer(phases):
            return unitary(top, params.with_phases(phases), wl=wl)

    fn = jax.grad(lambda p: jnp.sum(jnp.abs(transfer(p) - target) ** 2)) if gradient else transfer
    fn, phases = jax.jit(fn), params.phases
    return first_call(lambda: fn(phases)), timeit(lambda: fn(phases), repeat=5, min_time=0.1)


# XLA's CPU JIT splits a large module into parts and compiles them as tasks that dispatch one another
# recursively on its compile threads, whose stacks are ~512 KiB whatever the ulimit: SAX's n = 32 circuit
# overflowed them (segfault; gdb: llvm::orc::ExecutionSession::dispatchOutstandingMUs, dozens deep).
# One part per module avoids the recursion; it changes how the code is compiled, not the code.
ONE_CODEGEN_PART = "--xla_cpu_parallel_codegen_split_count=1"


def _measure_in_child(model: str, n: int, wavelengths: int, gradient: bool) -> tuple[float, float] | str:
    """:func:`measure_case` in a fresh process, with the same XLA flags for SAX and the engine
    (:data:`ONE_CODEGEN_PART`) and a 1 GiB main-thread stack (tracing SAX's unrolled circuit recurses
    deeply); returns the reason instead if the child dies, so one crash does not end the benchmark."""
    import json

    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {ONE_CODEGEN_PART}".strip())
    # through a shell: a preexec_fn would fork the multithreaded JAX process
    command = ["bash", "-c", 'ulimit -S -s 1048576 2>/dev/null; exec "$0" "$@"', sys.executable, __file__,
               "--case", model, str(n), str(wavelengths), str(int(gradient))]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return f"crashed (exit {result.returncode})"
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def bench_vs_sax(sizes, wavelengths: int = 100) -> None:
    """Each case runs in its own process, so a crash in SAX is reported and the rest still runs."""
    print("\n## Engine vs SAX reference circuit (klu, flat netlist of analytic MZI models), complex128")
    widths = (40, 14, 14, 14)
    row("case", "SAX", "engine", "SAX/engine", widths=widths)
    for n in sizes:
        for waves in (1, wavelengths) if n <= 16 else (1,):
            for gradient in (False, True) if waves == 1 else (False,):
                label = f"n={n} {waves} wl {'gradient' if gradient else 'forward'}"
                sax = _measure_in_child("sax", n, waves, gradient)
                engine = _measure_in_child("engine", n, waves, gradient)
                for i, (what, scale, unit) in enumerate((("compile", 1, "s"), ("per call", 1e3, "ms"))):
                    cells = [f"{r[i] * scale:.3f}" if isinstance(r, tuple) else r for r in (sax, engine)]
                    ratio = f"{sax[i] / engine[i]:.0f}" if isinstance(sax, tuple) and isinstance(engine, tuple) else "-"
                    row(f"{label} {what} ({unit})", *cells, ratio, widths=widths)
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
    parser.add_argument("--case", nargs=4, metavar=("MODEL", "N", "WAVELENGTHS", "GRADIENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # one SAX/engine case, run by bench_vs_sax in a child process
        import json

        model, n, waves, gradient = args.case
        print(json.dumps(measure_case(model, int(n), int(waves), bool(int(gradient)))))
        return
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    bench_forward()
    if not args.skip_sax:
        bench_vs_sax([8, 16] if args.quick else [8, 16, 32])
    if args.gpu:
        bench_gpu()


if __name__ == "__main__":
    main()
