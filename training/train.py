"""The training loop (optax), its history, and plots (training curves, decision boundaries)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from tapmesh.calibration.bench_time import BenchClock, ClockedChip
from tapmesh.circuits.arguments import check_float, check_int
from tapmesh.training.data import Dataset
from tapmesh.training.gradients import METHODS, GradientResult
from tapmesh.training.network import PhotonicNetwork


@dataclass
class History:
    """Per-epoch record of a run. ``passes`` is the cumulative number of chip passes the gradient method
    used for training (evaluation passes are counted apart in ``eval_passes``); ``wall_time`` is
    cumulative seconds of training steps (evaluation excluded). ``bench_seconds`` is the cumulative bench
    time of the training steps at the chips' declared :class:`~tapmesh.calibration.BenchCosts` (summed over
    chips; empty for a model-only network), ``eval_bench_seconds`` that of the evaluations."""

    method: str = ""
    epoch: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    passes: list = field(default_factory=list)
    wall_time: list = field(default_factory=list)
    bench_seconds: list = field(default_factory=list)
    eval_passes: int = 0
    eval_bench_seconds: float = 0.0
    stopped_early: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def best_test_acc(self) -> float:
        return max(self.test_acc) if self.test_acc else float("nan")

    @property
    def final_test_acc(self) -> float:
        return self.test_acc[-1] if self.test_acc else float("nan")

    @property
    def best_test_epoch(self) -> int:
        """The epoch of the best test accuracy (the first, if tied); 0 before any epoch."""
        return self.epoch[int(np.argmax(self.test_acc))] if self.test_acc else 0

    def plot(self, path=None, title: str | None = None):
        """Training curves: loss and accuracy per epoch, and test accuracy against chip passes.
        Saves a PNG when ``path`` is given; returns the matplotlib figure."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        axes[0].plot(self.epoch, self.train_loss, label="train (method's batches)")
        axes[0].plot(self.epoch, self.test_loss, label="test")
        axes[0].set(xlabel="epoch", ylabel="loss")
        axes[1].plot(self.epoch, self.train_acc, label="train")
        axes[1].plot(self.epoch, self.test_acc, label="test")
        axes[1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
        axes[2].plot(self.passes, self.test_acc, marker=".")
        axes[2].set(xlabel="chip passes (training)", ylabel="test accuracy", ylim=(0, 1.02))
        for ax in axes[:2]:
            ax.legend()
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.suptitle(title or f"training with {self.method}")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


@dataclass
class TrainResult:
    """The trained phases, the history, and which epoch they come from.

    ``best_epoch`` is the best epoch by ``monitor`` (``"train_loss"`` unless asked otherwise: the test set
    stays out of model selection); ``epoch`` is the epoch whose phases are returned: ``best_epoch`` with
    ``restore_best`` or early stopping, the last epoch otherwise. ``test_acc`` is the test accuracy of the
    returned phases (the number to report), which need not be ``history.best_test_acc``."""

    phases: list
    history: History
    best_epoch: int
    monitor: str = "train_loss"
    epoch: int = 0
    archive: dict | None = None
    """With ``train(..., archive=path)``: ``path``, ``calls`` and ``readings`` recorded per chip (and
    ``resumed_at_calls`` per chip for a resumed run)."""

    @property
    def test_acc(self) -> float:
        """Test accuracy of the returned phases (as measured in that epoch)."""
        return self.history.test_acc[self.epoch - 1] if self.epoch else float("nan")

    def __repr__(self) -> str:
        h = self.history
        return (
            f"TrainResult({h.method}, {len(h.epoch)} epochs, returned epoch {self.epoch} "
            f"(best by {self.monitor}: {self.best_epoch}), test accuracy {self.test_acc:.1%} "
            f"(final {h.final_test_acc:.1%}, best {h.best_test_acc:.1%} in epoch {h.best_test_epoch}))"
        )


MONITORS = ("train_loss", "test_loss", "test_acc")


class TrainingArgumentError(ValueError):
    """An argument of :func:`train` is out of range or of the wrong kind (the message names it)."""


def _resolve(method):
    if callable(method):
        return method, getattr(method, "__name__", "custom")
    try:
        return METHODS[method], method
    except KeyError:
        raise ValueError(f"unknown gradient method {method!r}; choose from {sorted(METHODS)}") from None


def _check_method_options(fn, name: str, options: dict | None) -> None:
    """Every key of ``method_options`` is a keyword the method takes (the built-in methods swallow
    others with ``**_``, so a misspelt option would be ignored silently); a custom method with its own
    ``**kwargs`` is taken at its word."""
    import inspect

    params = inspect.signature(fn).parameters
    named = {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values()) and fn not in METHODS.values()
    unknown = sorted(set(options or {}) - named - {"rng"})
    if unknown and not open_ended:
        raise TrainingArgumentError(f"method_options {unknown} are not options of method {name!r}; it takes "
                                    f"{sorted(named - {'net', 'phases', 'features', 'labels', 'rng'})}")


def train(
    net: PhotonicNetwork,
    dataset: Dataset,
    method="insitu",
    optimizer: optax.GradientTransformation | None = None,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 0.05,
    schedule: str | None = None,
    seed: int = 0,
    phases=None,
    patience: int | None = None,
    min_delta: float = 1e-4,
    monitor: str = "train_loss",
    restore_best: bool = False,
    max_passes: int | None = None,
    evaluate_on: str | None = None,
    method_options: dict | None = None,
    progress: bool = True,
    archive=None,
    resume: bool = False,
) -> TrainResult:
    """Train ``net`` on ``dataset`` with a gradient ``method`` and an optax optimizer.

    Args:
        method: a name in :data:`tapmesh.training.gradients.METHODS` or a callable with their interface.
        optimizer: default ``optax.adam(learning_rate)``, or with ``schedule="cosine"`` Adam whose rate
            decays from ``learning_rate`` to 0 over ``epochs`` (steadier ends on noisy chips).
        seed: seeds the initial phases (unless ``phases`` is given), batch order and the method's rng.
        patience: early stopping after this many epochs without improving ``monitor`` by ``min_delta``
            (``"train_loss"``, ``"test_loss"`` or ``"test_acc"``); the best phases are returned.
        restore_best: return the phases of the best epoch by ``monitor`` even without early stopping
            (monitor a training quantity to keep the test set out of model selection).
        max_passes: stop once the training chip passes reach this budget (equal-budget comparisons).
        evaluate_on: ``"chip"`` (default when the network has chips) or ``"model"``.
        method_options: extra keyword arguments of the method (``mapping``, ``perturbation``, …).
        archive: path of a training archive (HDF5, :mod:`tapmesh.training.archive`): every call of every
            chip of the network, with its result, is appended as it is taken (one group per physical
            chip); the result's ``archive`` names it. Refused if the file exists, unless ``resume``.
        resume: continue the run recorded in ``archive``: each chip's record is replayed (checked call by
            call), then the run goes on live; with the same options (else ``ArchiveError``) and chips
            whose noise is keyed by frame (``VirtualChip(keyed_noise=True)``, a bench) it equals the
            uninterrupted run. ``resume`` with no archive at the path is an ``ArchiveError``.
    """
    if resume and archive is None:
        raise TrainingArgumentError("resume=True needs archive= (the archive of the run to continue)")
    fn, name = _resolve(method)
    epochs = check_int(epochs, "epochs", minimum=1, error=TrainingArgumentError)
    batch_size = check_int(batch_size, "batch_size", minimum=1, error=TrainingArgumentError)
    learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0, strict_minimum=True, error=TrainingArgumentError)
    check_int(seed, "seed", minimum=0, error=TrainingArgumentError)
    min_delta = check_float(min_delta, "min_delta", minimum=0.0, error=TrainingArgumentError)
    if patience is not None:
        patience = check_int(patience, "patience", minimum=1, error=TrainingArgumentError)
    if max_passes is not None:
        max_passes = check_int(max_passes, "max_passes", minimum=1, error=TrainingArgumentError)
    if monitor not in MONITORS:
        raise TrainingArgumentError(f"monitor must be one of {', '.join(MONITORS)}, got {monitor!r}")
    if evaluate_on not in (None, "chip", "model"):
        raise TrainingArgumentError(f"evaluate_on must be None, 'chip' or 'model', got {evaluate_on!r}")
    if evaluate_on == "chip" and not net.on_chip:
        raise TrainingArgumentError("evaluate_on='chip' needs a network with chips")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a training.Dataset (e.g. training.data.moons()), got {type(dataset).__name__}")
    _check_method_options(fn, name, method_options)
    if phases is not None and [np.shape(p) for p in phases] != [np.shape(p) for p in net.init(0)]:
        raise TrainingArgumentError(f"phases must be {net.n_layers} arrays of shape ({net.n_phases},), got "
                                    f"{[np.shape(p) for p in phases]}")
    if optimizer is None and schedule not in (None, "cosine"):
        raise TrainingArgumentError(f"schedule must be None or 'cosine', got {schedule!r}")
    if archive is not None:  # the same run, on chips that record it (or replay it, then go on)
        if not net.on_chip:
            raise TrainingArgumentError("archive= records chip calls: it needs a network with chips")
        from tapmesh.training.archive import archived_training

        return archived_training(train, locals())
    if optimizer is None:
        if schedule == "cosine":
            steps = epochs * int(np.ceil(len(dataset.y_train) / batch_size))
            optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
        else:
            optimizer = optax.adam(learning_rate)
    evaluate_on = evaluate_on or ("chip" if net.on_chip else "model")
    rng = np.random.default_rng(seed)
    phases = [jnp.asarray(p, dtype=net.real_dtype) for p in (phases if phases is not None else net.init(seed))]
    opt_state = optimizer.init(phases)
    options = dict(method_options or {})
    history = History(method=name)
    total_passes, wall, steps = 0, 0.0, 0
    best_score, best_phases, best_epoch, waited = None, phases, 0, 0
    sign = -1.0 if monitor == "test_acc" else 1.0

    def apply(phases, grads, opt_state):  # eager: a jit here would recompile for every optimizer
        updates, opt_state = optimizer.update(grads, opt_state, phases)
        phases = optax.apply_updates(phases, updates)
        return [jnp.mod(p, 2 * jnp.pi) for p in phases], opt_state

    # every chip operation is charged at the bench's costs (a wrapper that forwards everything else; the
    # network keys its chip state by the wrapped chip, so a run that raises leaves nothing inconsistent)
    clock, chips = None, net.chips
    if chips is not None:
        clock = BenchClock.for_chip(chips[0], step="train")
        net.chips = tuple(ClockedChip(chip, clock) for chip in chips)
    bar = tqdm(range(1, epochs + 1), desc=f"{name}", disable=not progress, leave=False)
    for epoch in bar:
        if clock is not None:
            clock.step = "train"
        losses = []
        out_of_budget = False
        for xb, yb in dataset.batches(batch_size, rng):
            start = time.perf_counter()
            result: GradientResult = fn(net, phases, xb, yb, rng=rng, **options)
            grads = [jnp.asarray(g, dtype=net.real_dtype) for g in result.grads]
            phases, opt_state = apply(phases, grads, opt_state)
            jax.block_until_ready(phases)
            wall += time.perf_counter() - start
            total_passes += result.passes
            steps += 1
            losses.append(result.loss)
            if max_passes is not None and total_passes >= max_passes:
                out_of_budget = True
                break
        if clock is not None:
            history.bench_seconds.append(clock.step_seconds().get("train", 0.0))
            clock.step = "evaluate"
        test_loss, test_acc = net.evaluate(phases, dataset.x_test, dataset.y_test, on=evaluate_on)
        _, train_acc = net.evaluate(phases, dataset.x_train, dataset.y_train, on=evaluate_on)
        if evaluate_on == "chip":
            history.eval_passes += (len(dataset.y_test) + len(dataset.y_train)) * net.n_layers
        history.epoch.append(epoch)
        history.steps.append(steps)
        history.train_loss.append(float(np.mean(losses)))
        history.train_acc.append(train_acc)
        history.test_loss.append(test_loss)
        history.test_acc.append(test_acc)
        history.passes.append(total_passes)
        history.wall_time.append(wall)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", test=f"{test_acc:.3f}", passes=total_passes)

        score = sign * {"train_loss": history.train_loss[-1], "test_loss": test_loss, "test_acc": test_acc}[monitor]
        if best_score is None or score < best_score - min_delta:
            best_score, best_phases, best_epoch, waited = score, phases, epoch, 0
        else:
            waited += 1
        if out_of_budget:
            break
        if patience is not None and waited >= patience:
            history.stopped_early = True
            break
    bar.close()
    if clock is not None:
        history.eval_bench_seconds = clock.step_seconds().get("evaluate", 0.0)
        net.chips = chips
    keep = patience is not None or restore_best
    return TrainResult(
        phases=best_phases if keep else phases, history=history, best_epoch=best_epoch, monitor=monitor,
        epoch=best_epoch if keep else history.epoch[-1],
    )


# ------------------------------------------------------------------------------------------- plots


def plot_decision_boundary(
    net: PhotonicNetwork, phases, dataset: Dataset, path=None, on: str = "model", resolution: int = 120, title=None,
    accuracy: float | None = None,
):
    """Predicted class over the feature square [0, 1]² of a 2-D task, with the test points on top.

    ``on="model"`` evaluates the digital twin (no chip passes); ``"chip"`` measures every grid point.
    ``accuracy``: the test accuracy to print (e.g. the one recorded in training, so that a report shows
    one number everywhere); by default the test set is measured again, which on a noisy chip differs."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if dataset.n_features != 2:
        raise ValueError("decision boundaries are drawn for 2-D data sets only")
    g = np.linspace(0.0, 1.0, resolution)
    gx, gy = np.meshgrid(g, g)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    pred = net.predict(phases, grid, on=on).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.contourf(gx, gy, pred, levels=np.arange(dataset.n_classes + 1) - 0.5, cmap="coolwarm", alpha=0.35)
    ax.scatter(dataset.x_test[:, 0], dataset.x_test[:, 1], c=dataset.y_test, cmap="coolwarm", s=10, edgecolors="k", linewidths=0.3)
    acc = accuracy if accuracy is not None else float(np.mean(net.predict(phases, dataset.x_test, on=on) == dataset.y_test))
    ax.set(xlabel="feature 1 (scaled to [0, 1])", ylabel="feature 2 (scaled to [0, 1])",
           title=title or f"{dataset.name}: test accuracy {acc:.1%} ({on})")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_histories(histories: dict, path=None, x: str = "passes", title: str = "test accuracy"):
    """Test accuracy of several runs against ``x`` (``"passes"``, ``"epoch"`` or ``"wall_time"``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, h in histories.items():
        ax.plot(getattr(h, x), h.test_acc, marker=".", label=label)
    ax.set(xlabel={"passes": "chip passes (training)", "epoch": "epoch", "wall_time": "s"}[x], ylabel="test accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_training(histories: dict, path=None, marks: dict | None = None):
    """Training curves of several runs side by side: loss and accuracy per epoch, and test accuracy
    against the chip passes spent on training (runs that used none, e.g. autodiff on the twin, are left
    out of that panel). ``marks``: label → epoch to mark (the epoch whose phases were kept)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax, pass_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, h), color in zip(histories.items(), colors):
        loss_ax.plot(h.epoch, h.train_loss, "-", color=color, label=f"{label}: train")
        loss_ax.plot(h.epoch, h.test_loss, "--", color=color, label=f"{label}: test")
        acc_ax.plot(h.epoch, 100 * np.asarray(h.train_acc), "-", color=color, label=f"{label}: train")
        acc_ax.plot(h.epoch, 100 * np.asarray(h.test_acc), "--", color=color, label=f"{label}: test")
        epoch = (marks or {}).get(label)
        if epoch:
            acc_ax.plot([epoch], [100 * h.test_acc[epoch - 1]], "*", color=color, ms=11, mec="k", mew=0.5)
        if h.passes and h.passes[-1] > 0:
            pass_ax.plot(np.asarray(h.passes) / 1e3, 100 * np.asarray(h.test_acc), ".-", color=color, label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss (cross-entropy)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy (★ epoch kept)" if marks else "accuracy")
    pass_ax.set(xlabel="chip passes spent on training (thousands)", ylabel="test accuracy (%)", title="accuracy vs chip passes")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (loss_ax, acc_ax, pass_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
