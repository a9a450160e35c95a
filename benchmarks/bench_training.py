"""Training benchmarks of tapmesh: in situ training on as-built chips, digits on 64 ports, equal-budget
comparison of gradient methods, and the cost of one in situ step against one autodiff step.

    python benchmarks/bench_training.py                      # everything (~8 min on 2 cores; digits ~6)
    python benchmarks/bench_training.py --only speed budget  # some sections
    python benchmarks/bench_training.py --out /tmp/bench     # also write the PNG plots there
    python benchmarks/bench_training.py --only digits-calibrated   # digits on a calibrated n = 64 chip
                      # (bench_training_depth.py; not in the default run: calibrate() at n = 64 first, ~2 min,
                      # cached under --out or $TMPDIR)

Every section prints a Markdown table (the ones in docs/training.md come from this script).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from tapmesh import circuits  # noqa: E402
from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip, calibrate  # noqa: E402
from tapmesh.training import (  # noqa: E402
    FieldNoise,
    PhotonicNetwork,
    autodiff,
    cosine_similarity,
    data,
    insitu,
    insitu_analog,
    plot_decision_boundary,
    two_pass,
    plot_histories,
    train,
)


def table(headers, rows):
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print(flush=True)


def pct(x):
    return f"{100 * x:.1f} %"


# --------------------------------------------------------------------------------------- the 2-D chip
_CHIP = {}


def calibrated_chip(seed=2):
    """One as-built 4-mode chip (random φ0, α spread 5 %, δ σ = 0.03 rad, 2 % taps, realistic camera),
    calibrated once with calibration.calibrate, time-multiplexed over the three layers."""
    if seed not in _CHIP:
        top = circuits.rectangular(4)
        chip = VirtualChip(top, AsBuilt.random(top, seed=seed), Noise.realistic(), seed=seed)
        start = time.perf_counter()
        cal = calibrate(chip, progress=False)
        _CHIP[seed] = (chip, cal, time.perf_counter() - start)
    return _CHIP[seed]


def two_d_network(chip, cal):
    return PhotonicNetwork(
        chip.topology, 3, 2, chips=chip, calibrations=cal, activation="eo", encoding="amplitude_phase", loss="ce"
    )


def section_2d(args):
    chip, cal, cal_s = calibrated_chip()
    print("### 3-layer 4-port network, trained in situ on a calibrated as-built chip\n")
    print(f"Chip: rectangular 4×4, AsBuilt.random(seed=2), Noise.realistic(); calibrate(): {cal_s:.0f} s, "
          f"{cal.n_measurements} frames. One chip time-multiplexed over 3 layers, EO activation, "
          f"amplitude+phase encoding, Adam lr {args.lr} with cosine decay, batch 32, {args.epochs} epochs; test "
          f"accuracy measured on the chip; gradient cosines on the whole test set at the initial phases.\n")
    rows = []
    for name in ("moons", "circles", "ring"):
        ds = data.load(name)
        net = two_d_network(chip, cal)
        phases = net.init(0)
        x, y = ds.x_test, ds.y_test
        reference = autodiff(net, phases, x, y).grads
        cos_sum = cosine_similarity(reference, insitu(net, phases, x, y).grads)
        cos_analog = cosine_similarity(reference, insitu_analog(net, phases, x, y).grads)
        run = train(net, ds, "insitu", epochs=args.epochs, learning_rate=args.lr, schedule="cosine", seed=0,
                    restore_best=True, progress=args.progress)
        twin = train(net, ds, "autodiff", epochs=args.epochs, learning_rate=args.lr, schedule="cosine", seed=0,
                     restore_best=True, progress=args.progress)
        h = run.history
        acc = [net.evaluate(run.phases, ds.x_test, ds.y_test, on="chip")[1] for _ in range(args.eval_repeats)]
        acc_twin = [net.evaluate(twin.phases, ds.x_test, ds.y_test, on="chip")[1] for _ in range(args.eval_repeats)]
        rows.append([name, f"{cos_sum:.3f}", f"{cos_analog:.3f}", f"{100 * np.mean(acc):.1f} ± {100 * np.std(acc):.1f} %",
                     pct(max(h.test_acc)), f"{h.passes[-1]:,}", f"{h.wall_time[-1]:.0f} s",
                     f"{100 * np.mean(acc_twin):.1f} ± {100 * np.std(acc_twin):.1f} %"])
        if args.out:
            h.plot(args.out / f"insitu_{name}_curves.png", title=f"{name}: in situ on a calibrated chip")
            plot_decision_boundary(net, run.phases, ds, args.out / f"insitu_{name}_boundary.png", on="model")
    table(["task", "cos(insitu, model)", "cos(analog, model)", "test acc on chip", "best epoch's test acc",
           "chip passes", "train time", "autodiff on the twin, on chip"], rows)
    print(f"Test accuracy: the phases of the epoch with the lowest training loss, measured on the chip "
          f"{args.eval_repeats}× (mean ± std: the chip's readout noise moves a few boundary points).\n")


# ------------------------------------------------------------------------------------------ digits
def section_digits(args):
    import optax

    ds = data.digits()
    top = circuits.rectangular(64)
    t = args.digits_tap
    guide_mw = float(np.mean(ds.x_train**2))  # mean power per guide of the encoded images, mW
    print("### 2-layer 64-port network on load_digits (8×8 → 64 ports)\n")
    print(f"Ideal as-built chips (one per layer), nominal calibration, tap fraction {t}. Seed noise: field "
          f"amplitude 0.05 and phase 0.05π (`FieldNoise`, on every injected field and every coherent "
          f"readout), tap shot noise 0.02 (`Noise(shot=0.02, full_scale_mw=t·{guide_mw:.2f} mW)`: σ/P = 2 % at "
          f"the mean tap power). |z| activation, softmax-CE (T = 20), Adam with cosine decay from "
          f"{args.digits_lr}, batch 32, {args.digits_epochs} epochs; accuracy on the held-out 20 % (360 images), "
          f"measured on the chip.\n")
    rows = []
    configs = [
        ("autodiff, ideal model (no noise)", None, "autodiff", {}),
        ("insitu, seed noise", "noisy", "insitu", {}),
        ("insitu (adjoint_power='forward'), seed noise", "noisy", "insitu_fwd", {"adjoint_power": "forward"}),
        ("insitu_analog, seed noise", "noisy", "insitu_analog", {}),
    ]
    steps = args.digits_epochs * int(np.ceil(len(ds.y_train) / 32))
    common = dict(activation="abs", loss="softmax_ce", temperature=20.0, dtype=jnp.complex64)

    def noisy_network():
        chips = [FieldNoise(VirtualChip(top, AsBuilt.ideal(top, tap_fraction=t),
                                        Noise(shot=0.02, full_scale_mw=t * guide_mw), seed=i),
                            0.05, 0.05 * np.pi, seed=i) for i in range(2)]
        return PhotonicNetwork(top, 2, 10, chips=chips, calibrations=[Calibration.nominal(top, tap_fraction=t)] * 2, **common)

    for label, noise, key, options in configs:
        if key not in args.digits_methods:
            continue
        net = PhotonicNetwork(top, 2, 10, **common) if noise is None else noisy_network()
        optimizer = optax.adam(optax.cosine_decay_schedule(args.digits_lr, steps))
        method = "insitu" if key == "insitu_fwd" else key
        run = train(net, ds, method, optimizer, epochs=args.digits_epochs, seed=0, progress=args.progress,
                    method_options=options)
        h = run.history
        rows.append([label, pct(h.final_test_acc), pct(max(h.test_acc)), f"{h.passes[-1]:,}", f"{h.wall_time[-1]:.0f} s"])
        print(f"  {label}: test accuracy per epoch {np.round(h.test_acc, 3).tolist()}", flush=True)
        if noise is None:  # the same phases read out on the noisy chip: what inference noise alone costs
            _, acc = noisy_network().evaluate(run.phases, ds.x_test, ds.y_test, on="chip")
            rows.append(["… its phases evaluated on the noisy chip (inference noise only)", pct(acc), "", "", ""])
        if args.out:
            h.plot(args.out / f"digits_{key}.png", title=f"digits: {label}")
    print()
    table(["run", "test acc (final)", "test acc (best epoch)", "chip passes", "train time"], rows)


# ------------------------------------------------------------------------------------ equal budgets
def _hidden_frozen(net, phases, features, labels, **options):
    """Control for two_pass: its passes and its last-layer update, with the hidden layers' updates zeroed."""
    result = two_pass(net, phases, features, labels, **options)
    result.grads = [0.0 * g for g in result.grads[:-1]] + [result.grads[-1]]
    return result


DIRECTIONAL = {"mapping": "model", "feedback": "random", "feedback_scale": 0.2, "directional": True}


def section_budget(args):
    chip, cal, _ = calibrated_chip()
    ds = data.moons()
    budget = args.budget_epochs * len(ds.y_train) * 3 * 3  # what insitu spends in budget_epochs epochs
    seeds = list(range(args.seeds))
    print("### Gradient methods at an equal chip-pass budget (moons, same calibrated chip)\n")
    print(f"Budget: {budget:,} chip passes (= {args.budget_epochs} epochs of insitu; one pass = one sample "
          f"through one mesh); each method gets the epochs the budget buys, Adam with cosine decay over them, "
          f"batch 32. Seeds {seeds} (initial phases, batch order, and the feedback matrices of two_pass/dfa); "
          f"test accuracy on the chip at the epoch of lowest training loss, mean ± std over seeds. Learning "
          f"rates: the best mean training accuracy over seeds on a grid (0.02/0.05/0.1/0.2 for insitu, "
          f"two_pass, its directional variant and autodiff; 0.05/0.1 for insitu_analog and the control, "
          f"0.05/0.1/0.2 for dfa, 0.02/0.05/0.1 for spsa; the two ablations at 0.1, untuned; the variant also on feedback_scale 0.1/0.2), see "
          f"docs/training.md.\n")
    methods = [  # label, method, options, learning rate, chip passes per sample (3 layers)
        ("insitu (backprop)", "insitu", {}, 0.05, 9),
        ("insitu_analog", "insitu_analog", {}, 0.1, 12),
        ("two_pass (PEPITA), model mapping", "two_pass", {"mapping": "model"}, 0.1, 6),
        ("two_pass, pre-activation activities", "two_pass", {"mapping": "model", "activity": "pre"}, 0.1, 6),
        ("two_pass, hidden layers frozen (control)", _hidden_frozen, {"mapping": "model"}, 0.1, 6),
        ("two_pass + directional sign, random modulation", "two_pass", DIRECTIONAL, 0.1, 6),
        ("  ablation: fixed F + directional sign", "two_pass", {"mapping": "model", "directional": True}, 0.1, 6),
        ("  ablation: random modulation, no sign", "two_pass", {**DIRECTIONAL, "directional": False}, 0.1, 6),
        ("dfa, model mapping", "dfa", {"mapping": "model"}, 0.1, 3),
        ("spsa (ε = 0.05 rad)", "spsa", {"perturbation": 0.05}, 0.05, 6),
        ("autodiff on the twin (0 passes)", "autodiff", {}, 0.2, None),
    ]
    rows, histories = [], {}
    for label, method, options, lr, per_sample in methods:
        if args.budget_methods and not any(k in label for k in args.budget_methods):
            continue
        # as many epochs as the budget buys, with the cosine decay spread over them
        epochs = args.budget_epochs if per_sample is None else int(np.ceil(budget / (per_sample * len(ds.y_train))))
        acc, passes, wall = [], [], []
        for seed in seeds:
            net = two_d_network(chip, cal)
            opts = dict(options, seed=seed) if method in ("two_pass", "dfa", _hidden_frozen) else options
            run = train(net, ds, method, epochs=epochs, learning_rate=lr, schedule="cosine", seed=seed,
                        restore_best=True, max_passes=None if per_sample is None else budget, method_options=opts,
                        progress=args.progress)
            h = run.history
            acc.append(h.test_acc[run.best_epoch - 1])
            passes.append(h.passes[-1])
            wall.append(h.wall_time[-1])
            if seed == 0:
                histories[label] = h
        rows.append([label, lr, f"{int(np.mean(passes)):,}", epochs, f"{100 * np.mean(acc):.1f} ± {100 * np.std(acc):.1f} %",
                     " / ".join(f"{100 * a:.1f}" for a in acc), f"{np.mean(wall):.0f} s"])
        print(f"  {label}: {rows[-1][4]}", flush=True)
    if args.out:
        plot_histories({k: v for k, v in histories.items() if "autodiff" not in k}, args.out / "budget_moons.png")
    print()
    table(["method", "lr", "chip passes", "epochs", "test acc on chip (mean ± std)", "per seed", "train time / run"], rows)


# --------------------------------------------------------------------------------------------- speed
class TimedChip:
    """A Chip wrapper that accumulates the seconds spent inside the chip (the simulation of the light)."""

    def __init__(self, chip):
        self.inner, self.seconds = chip, 0.0

    def _timed(self, name, *a):
        start = time.perf_counter()
        out = getattr(self.inner, name)(*a)
        self.seconds += time.perf_counter() - start
        return out

    n_modes = property(lambda self: self.inner.n_modes)
    n_heaters = property(lambda self: self.inner.n_heaters)

    def set_voltages(self, v):
        return self._timed("set_voltages", v)

    def inject(self, x, side="input"):
        return self._timed("inject", x, side)

    def read_taps(self, direction="forward"):
        return self._timed("read_taps", direction)

    def read_outputs(self):
        return self._timed("read_outputs")

    def read_outputs_coherent(self):
        return self._timed("read_outputs_coherent")


class TimedCalibration:
    """A Calibration proxy that accumulates the seconds spent converting phases to heater voltages."""

    def __init__(self, cal):
        self.inner, self.seconds = cal, 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def voltages_for_phases(self, *a, **k):
        start = time.perf_counter()
        out = self.inner.voltages_for_phases(*a, **k)
        self.seconds += time.perf_counter() - start
        return out


def section_speed(args):
    n, batch, layers = 64, 256, 2
    top = circuits.rectangular(n)
    ds = data.digits()
    x, y = ds.x_train[:batch], ds.y_train[:batch]
    print(f"### One training step: batch {batch}, n = {n}, {layers} layers ({jax.devices()[0].platform}, "
          f"median of {args.repeats}, methods interleaved)\n")
    print("Ideal chips (one per layer, no noise), nominal calibrations, |z| activation, softmax-CE. Precision: "
          "the network's dtype (the twin autodiff runs on) / the VirtualChip's simulation precision; the last "
          "rows run the chip eagerly (a full tapped complex128 pass at every inject, as before lazy evaluation).\n")
    configs = [  # label, network dtype, chip precision, lazy chip, methods
        ("complex64", jnp.complex64, "complex64", True, ("autodiff", "insitu", "insitu_analog")),
        ("complex128", jnp.complex128, "complex128", True, ("autodiff", "insitu", "insitu_analog")),
        ("complex128 net / complex64 chip", jnp.complex128, "complex64", True, ("autodiff", "insitu")),
        ("complex64 net, eager complex128 chip (before)", jnp.complex64, "complex128", False, ("autodiff", "insitu")),
    ]
    methods = {"autodiff": autodiff, "insitu": insitu, "insitu_analog": insitu_analog}
    rows, ratios = [], {}
    print(f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} (the heater-law "
          f"inversion uses dense BLAS products; on a busy 2-core machine threaded BLAS stalls).\n")
    for label, dtype, precision, lazy, names in configs:
        chips = [TimedChip(VirtualChip(top, AsBuilt.ideal(top), Noise.none(), seed=i, precision=precision, lazy=lazy))
                 for i in range(layers)]
        cals = [TimedCalibration(Calibration.nominal(top)) for _ in range(layers)]
        net = PhotonicNetwork(top, layers, 10, chips=chips, calibrations=cals, activation="abs", loss="softmax_ce",
                              dtype=dtype)
        for name in names:
            methods[name](net, net.init(0), x, y)  # compile
        times = {name: [] for name in names}
        inside = {name: [] for name in names}
        program = {name: [] for name in names}
        passes = {}
        for r in range(args.repeats):
            for k, name in enumerate(names):
                phases = net.init(1 + r * len(names) + k)  # new phases every step: the chips are reprogrammed
                for c in chips + cals:
                    c.seconds = 0.0
                start = time.perf_counter()
                result = methods[name](net, phases, x, y)
                jax.block_until_ready(result.grads)
                times[name].append(time.perf_counter() - start)
                inside[name].append(sum(c.seconds for c in chips))
                program[name].append(sum(c.seconds for c in cals))
                passes[name] = result.passes
        base = np.asarray(times["autodiff"])
        for name in names:
            step = float(np.median(times[name]))
            ratio = float(np.median(np.asarray(times[name]) / base))  # per repeat: load drifts hit both
            ratios[(label, name)] = ratio
            rows.append([name, label, f"{1e3 * step:.1f} ms", f"{ratio:.1f}×", f"{batch / step:,.0f}",
                         f"{1e3 * np.median(inside[name]):.1f} ms", f"{1e3 * np.median(program[name]):.1f} ms",
                         f"{1e3 * (step - np.median(inside[name]) - np.median(program[name])):.1f} ms", passes[name]])
    table(["method", "precision (network / chip)", "step (median)", "÷ autodiff step", "samples/s",
           "inside the VirtualChip", "phases → voltages (Calibration)", "rest (digital)", "chip passes"], rows)
    for label, *_ in configs:
        print(f"insitu / autodiff ({label}): {ratios[(label, 'insitu')]:.1f}×  ")
    print("(÷ autodiff step: the median over repeats of the ratio of the two steps timed back to back)\n")


def section_digits_calibrated(args):
    from bench_training_depth import section_digits_calibrated as run  # its own module: issue 14's depth case

    run(args)


SECTIONS = {"2d": section_2d, "digits": section_digits, "digits-calibrated": section_digits_calibrated, "budget": section_budget, "speed": section_speed}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), default=None)
    p.add_argument("--out", type=pathlib.Path, default=None, help="folder for PNG plots")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--budget-epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=8, help="seeds of the budget comparison")
    p.add_argument("--budget-methods", nargs="*", default=None, help="only budget rows whose label contains one")
    p.add_argument("--digits-epochs", type=int, default=12)
    p.add_argument("--digits-lr", type=float, default=0.02)
    p.add_argument("--digits-tap", type=float, default=1e-3)
    p.add_argument("--digits-seeds", type=int, default=3, help="seeds of the digits-calibrated section")
    p.add_argument("--digits-methods", nargs="*", default=["autodiff", "insitu", "insitu_fwd", "insitu_analog"])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--eval-repeats", type=int, default=5)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or ("speed", "2d", "budget", "digits"):
        start = time.perf_counter()
        SECTIONS[name](args)
        print(f"_(section {name}: {time.perf_counter() - start:.0f} s)_\n", flush=True)


if __name__ == "__main__":
    main()
