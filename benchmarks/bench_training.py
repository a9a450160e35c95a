"""Training benchmarks of tapmesh: in situ training on as-built chips, digits on 64 ports, equal-budget
comparison of gradient methods, and the cost of one in situ step against one autodiff step.

    python benchmarks/bench_training.py                      # everything (~8 min on 2 cores; digits ~6)
    python benchmarks/bench_training.py --only speed budget  # some sections
    python benchmarks/bench_training.py --out /tmp/bench     # also write the PNG plots there

Every section prints a Markdown table (the ones in docs/training.md come from this script).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import circuits  # noqa: E402
from calibration import AsBuilt, Calibration, Noise, VirtualChip, calibrate  # noqa: E402
from training import (  # noqa: E402
    FieldNoise,
    PhotonicNetwork,
    autodiff,
    cosine_similarity,
    data,
    insitu,
    insitu_analog,
    plot_decision_boundary,
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
    print(f"### 3-layer 4-port network, trained in situ on a calibrated as-built chip\n")
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
def section_budget(args):
    chip, cal, _ = calibrated_chip()
    ds = data.moons()
    budget = args.budget_epochs * len(ds.y_train) * 3 * 3  # what insitu spends in budget_epochs epochs
    print("### Gradient methods at an equal chip-pass budget (moons, same calibrated chip)\n")
    print(f"Budget: {budget:,} chip passes (= {args.budget_epochs} epochs of insitu; one pass = one sample "
          f"through one mesh); each method gets the epochs the budget buys. Adam with cosine decay from lr "
          f"{args.lr} (SPSA: 0.02, ε = 0.05 rad, one perturbation per batch); accuracy measured on the chip.\n")
    methods = [  # label, method, options, learning rate, chip passes per sample (3 layers)
        ("insitu (backprop)", "insitu", {}, args.lr, 9),
        ("insitu_analog", "insitu_analog", {}, args.lr, 12),
        ("two_pass (PEPITA), model mapping", "two_pass", {"mapping": "model"}, args.lr, 6),
        ("dfa, model mapping", "dfa", {"mapping": "model"}, args.lr, 3),
        ("spsa", "spsa", {"perturbation": 0.05}, 0.02, 6),
        ("autodiff on the twin (0 passes)", "autodiff", {}, args.lr, None),
    ]
    rows, histories = [], {}
    for label, method, options, lr, per_sample in methods:
        net = two_d_network(chip, cal)
        # as many epochs as the budget buys, with the cosine decay spread over them
        epochs = args.budget_epochs if per_sample is None else int(np.ceil(budget / (per_sample * len(ds.y_train))))
        run = train(net, ds, method, epochs=epochs, learning_rate=lr, schedule="cosine", seed=0, restore_best=True,
                    max_passes=None if per_sample is None else budget, method_options=options, progress=args.progress)
        h = run.history
        histories[label] = h
        acc = [net.evaluate(run.phases, ds.x_test, ds.y_test, on="chip")[1] for _ in range(args.eval_repeats)]
        rows.append([label, f"{h.passes[-1]:,}", h.epoch[-1], f"{100 * np.mean(acc):.1f} ± {100 * np.std(acc):.1f} %",
                     pct(max(h.test_acc)), f"{h.wall_time[-1]:.0f} s"])
    if args.out:
        plot_histories({k: v for k, v in histories.items() if "autodiff" not in k}, args.out / "budget_moons.png")
    table(["method", "chip passes", "epochs", "test acc on chip", "best epoch's test acc", "train time"], rows)
    print("Test accuracy as in the previous table (lowest-training-loss epoch, mean ± std of repeated chip "
          "evaluations).\n")


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


def section_speed(args):
    n, batch, layers = 64, 256, 2
    top = circuits.rectangular(n)
    ds = data.digits()
    x, y = ds.x_train[:batch], ds.y_train[:batch]
    print(f"### One training step: batch {batch}, n = {n}, {layers} layers ({jax.devices()[0].platform}, "
          f"median of {args.repeats})\n")
    rows = []
    chips = [TimedChip(VirtualChip(top, AsBuilt.ideal(top), Noise.none(), seed=i)) for i in range(layers)]
    results = {}
    for dtype in (jnp.complex64, jnp.complex128):
        net = PhotonicNetwork(top, layers, 10, chips=chips, calibrations=[Calibration.nominal(top)] * layers,
                              activation="abs", loss="softmax_ce", dtype=dtype)
        for name, method in (("autodiff", autodiff), ("insitu", insitu), ("insitu_analog", insitu_analog)):
            method(net, net.init(0), x, y)  # compile
            times, inside = [], []
            for r in range(args.repeats):
                phases = net.init(r + 1)  # new phases: the chips are reprogrammed as in a real step
                for c in chips:
                    c.seconds = 0.0
                start = time.perf_counter()
                result = method(net, phases, x, y)
                jax.block_until_ready(result.grads)
                times.append(time.perf_counter() - start)
                inside.append(sum(c.seconds for c in chips))
            step, chip_s = float(np.median(times)), float(np.median(inside))
            results[(name, str(jnp.dtype(dtype)))] = (step, chip_s)
            rows.append([name, str(jnp.dtype(dtype)), f"{1e3 * step:.0f} ms", f"{1e3 * chip_s:.0f} ms",
                         f"{1e3 * (step - chip_s):.0f} ms", f"{batch / step:,.0f}", result.passes])
    table(["method", "network dtype", "step (median)", "of which inside the VirtualChip", "training side",
           "samples/s", "chip passes"], rows)
    for dt in ("complex64", "complex128"):
        (s_in, c_in), (s_ad, _) = results[("insitu", dt)], results[("autodiff", dt)]
        print(f"insitu / autodiff ({dt} twin): {s_in / s_ad:.1f}× per step; "
              f"without the chip simulation: {(s_in - c_in) / s_ad:.1f}×  ")
    print("(the VirtualChip simulates every pass in complex128, recording every tap, whatever the network dtype)\n")


SECTIONS = {"2d": section_2d, "digits": section_digits, "budget": section_budget, "speed": section_speed}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), default=None)
    p.add_argument("--out", type=pathlib.Path, default=None, help="folder for PNG plots")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--budget-epochs", type=int, default=10)
    p.add_argument("--digits-epochs", type=int, default=12)
    p.add_argument("--digits-lr", type=float, default=0.02)
    p.add_argument("--digits-tap", type=float, default=1e-3)
    p.add_argument("--digits-methods", nargs="*", default=["autodiff", "insitu", "insitu_fwd", "insitu_analog"])
    p.add_argument("--repeats", type=int, default=5)
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
