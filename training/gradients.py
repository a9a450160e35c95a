"""Gradient methods of a :class:`PhotonicNetwork`, all with one interface::

    method(net, phases, features, labels, **options) -> GradientResult(grads, passes, loss, info)

``grads`` holds one (n_phases,) array per layer: ∂loss/∂phase (or the method's estimate of it; the
optimizer steps against it), ``passes`` the chip passes used: one *pass* is one sample's field sent once through one mesh
(a batch of B through L layers forward is B·L passes). Measuring methods touch the chip only through
the :class:`tapmesh.calibration.Chip` protocol (set voltages, inject, read taps / outputs), with its noise.

=================  ===========================================================  ==================
method             what it measures on hardware                                  passes / sample
=================  ===========================================================  ==================
``autodiff``       nothing: ``jax.grad`` of the digital twin (calibrated model)   0
``insitu``         fwd taps + coherent output; bwd taps + coherent adjoint at      3 L
                   the layer input; fwd taps of the sum pass ``x − i·conj(a)``
``insitu_analog``  coherent output; coherent adjoint at the input; fwd taps of     4 L
                   ``x ∓ i·conj(a)`` (two relative phases; forward taps only)
``two_pass``       coherent outputs of two forward passes (x and x + F·e)         2 L
``dfa``            coherent outputs of one forward pass                            L
``spsa``           output powers at θ ± εΔ                                          2 L · (#perturbations)
=================  ===========================================================  ==================

``two_pass`` and ``dfa`` produce a field-space error per layer (a weight update ΔW); they map it to
phases through the digital twin's Jacobian (``mapping="model"``, no chip passes, O(n²·#phases) digital
work per layer) or measure the same projection in situ (``mapping="insitu"``: a backward and a sum pass
per layer, +2 L passes per sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from tapmesh.training.network import PhotonicNetwork
from tapmesh.training.twin import device_array


@dataclass
class GradientResult:
    """Phase gradients per layer, chip passes used, the batch loss seen by the method, extras."""

    grads: list
    passes: int
    loss: float
    info: dict = field(default_factory=dict)


def _as_list(grads, net):
    return [device_array(g, net.real_dtype) for g in grads]


# ------------------------------------------------------------------------------------------- autodiff


def autodiff(net: PhotonicNetwork, phases, features, labels, **_) -> GradientResult:
    """``jax.grad`` of the loss on the digital twin (the calibrated model). No chip passes."""
    loss, grads = net.model_value_and_grad(phases, features, labels)
    return GradientResult(_as_list(grads, net), 0, float(loss))


# -------------------------------------------------------------------------------- in-situ layer step


def measure_layer_gradient(
    net: PhotonicNetwork, layer: int, phases_l, x, c, *, fwd_taps=None, analog=False, adjoint_power="backward"
):
    """Measure ``∂/∂θ Re Σ_b c_b·(U_l x_b)`` on the chip at the taps of ``layer``.

    ``x`` (B, n) is the field the layer receives, ``c`` (B, n) the adjoint at its output. Each sample's
    adjoint is scaled to the norm of its input before injection (best interference contrast; the scale
    is divided out digitally).

    * ``analog=False`` (the seed protocol): inject ``c`` from the output side, read the backward taps
      ``P_adj`` and, coherently, the adjoint ``a`` leaving the input ports; inject ``x − i·conj(a)``
      forward and read the taps ``P_sum``. With ``P_fwd`` the forward taps of ``x`` (``fwd_taps``, read
      during the forward pass; measured here if not given), the gradient of heater i is
      ``√(1−tᵢ)/2 · (P̂_sum − P̂_fwd − P̂_adj)``, where ``P̂ = (P − dark)/ηᵢ`` is a reading converted to
      guide power with the calibrated camera efficiency ηᵢ (``Calibration.tap_efficiency``, forward or
      backward grating; ≈ tᵢ) and a dark frame, and tᵢ the calibrated tap fraction.
      ``adjoint_power="forward"`` replaces ``P_adj`` by the forward taps of ``−i·conj(a)`` sent alone
      (one more pass): exact for the interference term when taps or loss make the time-reversed adjoint
      weaker than the backward one (the seed protocol's error grows as tap fraction × mesh depth).
    * ``analog=True``: inject ``c`` backward and read only ``a`` coherently; inject ``x − i·conj(a)``
      and ``x + i·conj(a)`` forward and read the forward taps; gradient ``√(1−tᵢ)/(4ηᵢ)·(P₋ − P₊)``.

    Tap readings are dark-frame corrected (:meth:`PhotonicNetwork.dark_taps`, measured once per chip).

    Returns ``(grad (n_phases,), a_in (B, n) unscaled adjoint at the layer input, passes)``.
    """
    chip = net.chip(layer)
    net.program(layer, phases_l)
    x = np.asarray(x, dtype=net.dtype)
    c = np.asarray(c, dtype=net.dtype)
    batch = x.shape[0]
    passes = 0
    if not analog and fwd_taps is None:
        chip.inject(x, "input")
        fwd_taps = np.asarray(chip.read_taps("forward"))
        passes += batch
    x_norm = np.linalg.norm(x, axis=1)
    c_norm = np.linalg.norm(c, axis=1)
    ok = c_norm > 0
    scale = np.where(ok, x_norm / np.where(ok, c_norm, 1.0), 0.0)
    scale = np.where(ok & (scale == 0), 1.0 / np.where(ok, c_norm, 1.0), scale)  # dark input: unit adjoint
    chip.inject((c * scale[:, None]).astype(net.dtype), "output")
    passes += batch
    if adjoint_power not in ("backward", "forward"):
        raise ValueError(f"adjoint_power must be 'backward' or 'forward', got {adjoint_power!r}")
    adj_taps = None if (analog or adjoint_power == "forward") else np.asarray(chip.read_taps("backward"))
    a_scaled = np.asarray(chip.read_outputs_coherent())
    probe = (-1j * np.conj(a_scaled)).astype(net.dtype)
    if not analog and adjoint_power == "forward":
        chip.inject(probe, "input")
        adj_taps = np.asarray(chip.read_taps("forward"))
        passes += batch
    t = net.tap_fraction(layer)
    eff_fwd, eff_bwd = (np.where(e > 0, e, np.inf) for e in net.tap_efficiency(layer))  # dark taps: no gradient
    # Σ_b w_b · (per-sample reading): the batch sum of the gradient is linear in the readings, so each
    # (batch, taps) frame stack is reduced once (w @ frames) and the per-tap conversions act on (taps,)
    inv = np.where(ok, 1.0 / np.where(scale > 0, scale, 1.0), 0.0)  # undo the per-sample adjoint scale
    inv = inv.astype(np.float64)  # float32 for a complex64 network: a mixed-dtype einsum takes the slow path
    total = inv.sum()

    def weighted(frames):  # einsum, not BLAS: a threaded gemv stalls on a busy machine (50× measured)
        return np.einsum("b,bh->h", inv, np.asarray(frames, dtype=np.float64))

    if analog:
        chip.inject((x + probe).astype(net.dtype), "input")
        p_minus = weighted(chip.read_taps("forward"))
        chip.inject((x - probe).astype(net.dtype), "input")
        p_plus = weighted(chip.read_taps("forward"))
        passes += 2 * batch
        cross = (p_minus - p_plus) / (4.0 * eff_fwd)  # fixed offsets cancel in the difference
    else:
        chip.inject((x + probe).astype(net.dtype), "input")
        p_sum = weighted(chip.read_taps("forward"))
        passes += batch
        dark_fwd, dark_bwd = net.dark_taps(layer)
        # P̂_sum − P̂_fwd: the forward dark frame cancels
        power_sum_fwd = (p_sum - weighted(fwd_taps)) / eff_fwd
        if adjoint_power == "forward":
            power_adj = (weighted(adj_taps) - total * dark_fwd) / eff_fwd
        else:
            power_adj = (weighted(adj_taps) - total * dark_bwd) / eff_bwd
        cross = 0.5 * (power_sum_fwd - power_adj)  # = Σ_b w_b·(−Im(f·b)) at each tap
    grad = cross * np.sqrt(1.0 - t)  # tap field → heater: the backward wave crosses the tap first
    a_in = a_scaled * inv[:, None]
    return grad, a_in, passes


def _insitu(net: PhotonicNetwork, phases, features, labels, analog: bool, adjoint_power="backward") -> GradientResult:
    x0 = net.encode(features)
    fw = net.chip_forward(phases, x0, taps=not analog, coherent=True)
    passes = fw["passes"]
    loss, c = net.output_adjoint(fw["zs"][-1], labels)
    grads = [None] * net.n_layers
    for l in reversed(range(net.n_layers)):
        g, a_in, p = measure_layer_gradient(
            net, l, phases[l], fw["xs"][l], c, fwd_taps=None if analog else fw["taps"][l], analog=analog,
            adjoint_power=adjoint_power,
        )
        grads[l] = g
        passes += p
        if l > 0:
            c = net.activation_adjoint(fw["zs"][l - 1], a_in)
    return GradientResult(_as_list(grads, net), passes, loss)


def insitu(net: PhotonicNetwork, phases, features, labels, *, adjoint_power: str = "backward", **_) -> GradientResult:
    """In situ backpropagation (Hughes et al. 2018; Pai et al. 2023), every layer measured at its taps.

    Forward pass through all layers (forward taps, coherent outputs); the output error and every
    adjoint through a nonlinearity are computed digitally; per layer, last to first: backward pass of
    the adjoint (backward taps, adjoint field at the layer input read coherently) and the sum pass
    ``x − i·conj(a)`` (forward taps). 3 passes per sample and layer (4 with ``adjoint_power="forward"``,
    see :func:`measure_layer_gradient`)."""
    return _insitu(net, phases, features, labels, analog=False, adjoint_power=adjoint_power)


def insitu_analog(net: PhotonicNetwork, phases, features, labels, **_) -> GradientResult:
    """The analog-update variant: the conjugated adjoint ``conj(a)`` is sent forward interfering with x
    at relative phases −π/2 and +π/2; the gradient is the difference of the two forward-tap frames.
    Needs no backward gratings and no separate forward/adjoint tap frames (fixed tap offsets cancel).
    4 passes per sample and layer."""
    return _insitu(net, phases, features, labels, analog=True)


# ------------------------------------------------------------------------ feedback-based methods


_FEEDBACK_CACHE: dict = {}


def _feedback(kind, net, seed, scale=None):
    key = (kind, net.n, net.n_classes, net.n_layers, seed, scale)
    if key not in _FEEDBACK_CACHE:
        rng = np.random.default_rng(seed)
        if kind == "pepita":
            bound = scale * np.sqrt(6.0 / net.n)
            _FEEDBACK_CACHE[key] = rng.uniform(-bound, bound, (net.n_classes, net.n))
        else:  # dfa: one matrix per hidden layer, error (C) -> layer output (n)
            _FEEDBACK_CACHE[key] = [
                rng.normal(0.0, 1.0 / np.sqrt(net.n_classes), (net.n_classes, net.n)) for _ in range(net.n_layers)
            ]
    return _FEEDBACK_CACHE[key]


def _class_error(net, z_last, labels):
    """e = q − onehot(y): the output error in class space (q = normalized class powers)."""
    p = np.asarray(net.class_powers(z_last), dtype=np.float64)
    q = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-30)
    return q - np.eye(net.n_classes)[np.asarray(labels)]


def _map(net, layer, phases_l, x, c, mapping, fwd_taps=None):
    if mapping == "model":
        return np.asarray(net.local_model_gradient(layer, phases_l, x, c)), 0
    if mapping == "insitu":
        g, _, p = measure_layer_gradient(net, layer, phases_l, x, c, fwd_taps=fwd_taps)
        return g, p
    raise ValueError(f"mapping must be 'model' or 'insitu', got {mapping!r}")


def _modulation(net, e, feedback, seed, scale, rng):
    """The second pass's input offset ``F·e`` (B, n): PEPITA's fixed real F (``"fixed"``, drawn from
    ``seed``), or a fresh complex F for every sample (``"random"``: the error modulated with noise).
    ``feedback`` is checked by :func:`two_pass` before any chip pass."""
    if feedback == "fixed":
        return e @ _feedback("pepita", net, seed, scale)
    bound = scale * np.sqrt(6.0 / net.n)
    rng = rng if rng is not None else np.random.default_rng(seed)
    shape = (e.shape[0], net.n_classes, net.n)
    f = rng.uniform(-bound, bound, shape) + 1j * rng.uniform(-bound, bound, shape)
    return np.einsum("bc,bcn->bn", e, f)


def two_pass(
    net: PhotonicNetwork,
    phases,
    features,
    labels,
    *,
    seed: int = 0,
    feedback_scale: float = 0.05,
    feedback: str = "fixed",
    directional: bool = False,
    mapping: str = "model",
    activity: str = "auto",
    rng: np.random.Generator | None = None,
    **_,
) -> GradientResult:
    """Two-pass forward propagation (Ahmadnejad & Koohi 2024), the PEPITA rule (Dellaferrera & Kreiman 2022).

    Pass 1 on x gives the class error ``e = q − onehot(y)``; pass 2 on ``x + F·e`` (F fixed, uniform
    in ±``feedback_scale``·√(6/n), drawn from ``seed``; ``feedback="random"``: a fresh complex F for
    every sample, real and imaginary parts uniform in the same range, drawn from ``rng``). Field-space
    updates, no backward pass and no activation derivative: hidden layer l gets ``ΔW_l = δ_l·x'_lᴴ`` with ``δ_l = z_l − z'_l`` (the
    difference of the two passes' coherent mesh outputs), the last layer the output error of pass 2 at
    its ports (``e'`` through the power readout). A mesh cannot apply ΔW, so ΔW is mapped to phases by
    the projection ``g_i = Re⟨∂U/∂θ_i, ΔW⟩`` (the gradient of ``Re Σ_b c_b·U x'_b`` with
    ``c = conj(δ)/B``): through the digital twin's Jacobian (``mapping="model"``, default) or measured in
    situ (``mapping="insitu"``, +2 passes per sample and layer). ``activity``: ``"post"`` takes the
    difference of the post-nonlinearity activities ``f(z) − f(z')`` (PEPITA's h, as the rule is written),
    ``"pre"`` that of the mesh outputs ``z − z'``; ``"auto"`` (default) is ``"post"`` for activations
    that keep the field's phase (``eo``, ``linear``) and ``"pre"`` for ``abs``/``abs2``, whose real
    activities cannot steer a complex update (moons, EO, equal budget: post 89.7 %, pre 85.7 %), and
    ``"pre"`` with ``directional``.

    ``directional=True`` (a variant, not PEPITA as written): each sample's hidden updates are multiplied
    by ``−sign(ΔL_b)``, ``ΔL_b = Re Σ_m c_bm (y'_bm − y_bm)`` the first-order change of its loss from
    pass 1 to pass 2, read from the two passes' coherent outputs y, y' (c: the output adjoint of pass
    1). Moving a layer's pre-activation z toward z' changes the output by ∝ y' − y, so the signed
    update points downhill along the probe ``z' − z`` to first order whatever the feedback: a forward
    gradient in activity space whose probe is the error-scaled modulation. With a fixed F the probe of
    the first layer is one direction, ``U₁F(e₀ − e₁)``, for every sample; ``feedback="random"`` makes it
    a new one each sample. No extra passes.
    Needs, beyond forward passes: coherent
    readout of every layer's output and the input modulator to add F·e."""
    # every option is checked before the first chip pass
    if feedback not in ("fixed", "random"):
        raise ValueError(f"feedback must be 'fixed' or 'random', got {feedback!r}")
    if mapping not in ("model", "insitu"):
        raise ValueError(f"mapping must be 'model' or 'insitu', got {mapping!r}")
    if activity == "auto":
        activity = "pre" if net.activation.from_powers or directional else "post"
    if activity not in ("pre", "post"):
        raise ValueError(f"activity must be 'auto', 'pre' or 'post', got {activity!r}")
    x0 = net.encode(features)
    batch = x0.shape[0]
    first = net.chip_forward(phases, x0, coherent=True) if net.on_chip else None
    zs1 = first["zs"] if first else net.model_fields(phases, x0)
    loss, c_first = net.output_adjoint(zs1[-1], labels)
    e = _class_error(net, zs1[-1], labels)
    x_mod = (x0 + _modulation(net, e, feedback, seed, feedback_scale, rng)).astype(net.dtype)
    second = net.chip_forward(phases, x_mod, coherent=True, taps=mapping == "insitu") if net.on_chip else None
    if second:
        zs2, xs2 = second["zs"], second["xs"]
    else:
        zs2 = [np.asarray(z) for z in net.model_fields(phases, x_mod)]
        xs2 = [x_mod] + [np.asarray(net.activation(jnp.asarray(z))) for z in zs2[:-1]]
    passes = (first["passes"] + second["passes"]) if first else 0
    if directional:  # −sign of each sample's loss change from pass 1 to pass 2 (c_first is a batch mean)
        loss_change = batch * np.real(np.sum(c_first * (np.asarray(zs2[-1]) - np.asarray(zs1[-1])), axis=1))
        sample_weight = -np.sign(loss_change)[:, None]
    else:
        sample_weight = 1.0
    grads = []
    for l in range(net.n_layers):
        if l == net.n_layers - 1:
            _, c = net.output_adjoint(zs2[-1], labels)
        else:
            if activity == "pre":
                delta = np.asarray(zs1[l]) - np.asarray(zs2[l])
            else:  # post-activation activities, taken as the field-space error as they are
                delta = np.asarray(net.activation(jnp.asarray(zs1[l]))) - np.asarray(net.activation(jnp.asarray(zs2[l])))
            c = sample_weight * np.conj(delta) / batch
        g, p = _map(net, l, phases[l], xs2[l], c, mapping, second["taps"][l] if mapping == "insitu" else None)
        grads.append(g)
        passes += p
    return GradientResult(_as_list(grads, net), passes, loss)


def dfa(net: PhotonicNetwork, phases, features, labels, *, seed: int = 0, mapping: str = "model", **_) -> GradientResult:
    """Direct feedback alignment: one forward pass; the class error e is sent to every hidden layer's
    output through a fixed random matrix B_l (adjoint ``a_l = e·B_l`` at h_l, then through the
    activation's derivative); the last layer gets the exact output adjoint. Field-space errors are
    mapped to phases as in :func:`two_pass`. L passes per sample (``mapping="model"``)."""
    b = _feedback("dfa", net, seed)
    x0 = net.encode(features)
    if mapping not in ("model", "insitu"):
        raise ValueError(f"mapping must be 'model' or 'insitu', got {mapping!r}")
    out = net.chip_forward(phases, x0, coherent=True, taps=mapping == "insitu") if net.on_chip else None
    zs = out["zs"] if out else [np.asarray(z) for z in net.model_fields(phases, x0)]
    xs = out["xs"] if out else [x0] + [np.asarray(net.activation(jnp.asarray(z))) for z in zs[:-1]]
    passes = out["passes"] if out else 0
    loss, c_last = net.output_adjoint(zs[-1], labels)
    e = _class_error(net, zs[-1], labels) / x0.shape[0]
    grads = []
    for l in range(net.n_layers):
        c = c_last if l == net.n_layers - 1 else net.activation_adjoint(zs[l], (e @ b[l]).astype(net.dtype))
        g, p = _map(net, l, phases[l], xs[l], c, mapping, out["taps"][l] if mapping == "insitu" else None)
        grads.append(g)
        passes += p
    return GradientResult(_as_list(grads, net), passes, loss)


def spsa(
    net: PhotonicNetwork,
    phases,
    features,
    labels,
    *,
    rng: np.random.Generator | None = None,
    perturbation: float = 0.05,
    n_perturbations: int = 1,
    **_,
) -> GradientResult:
    """Simultaneous-perturbation stochastic approximation (zeroth order): every phase of every layer is
    perturbed by ±ε·Δ (Δ Rademacher), the loss is measured from output powers at both, and
    ``g = (L₊ − L₋)/(2ε)·Δ``, averaged over ``n_perturbations``. 2 L passes per sample and perturbation."""
    rng = rng if rng is not None else np.random.default_rng()
    grads = [np.zeros(net.n_phases) for _ in range(net.n_layers)]
    passes, losses = 0, []
    labels = np.asarray(labels)
    for _ in range(n_perturbations):
        deltas = [rng.choice([-1.0, 1.0], net.n_phases) for _ in range(net.n_layers)]
        values = []
        for sign in (1.0, -1.0):
            trial = [np.asarray(p) + sign * perturbation * d for p, d in zip(phases, deltas)]
            if net.on_chip:
                out = net.chip_forward(trial, net.encode(features), coherent=not net.activation.from_powers)
                passes += out["passes"]
                cp = np.asarray(out["powers"]) @ np.asarray(net.group_matrix, dtype=np.float64)
                values.append(net.loss_of_powers(cp, labels))
            else:
                values.append(net.model_loss(trial, features, labels))
        losses.extend(values)
        for g, d in zip(grads, deltas):
            g += (values[0] - values[1]) / (2 * perturbation) * d / n_perturbations
    return GradientResult(_as_list(grads, net), passes, float(np.mean(losses)))


METHODS = {
    "autodiff": autodiff,
    "insitu": insitu,
    "insitu_analog": insitu_analog,
    "two_pass": two_pass,
    "dfa": dfa,
    "spsa": spsa,
}


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two per-layer gradient lists (flattened together)."""
    va = np.concatenate([np.ravel(np.asarray(g)) for g in a])
    vb = np.concatenate([np.ravel(np.asarray(g)) for g in b])
    return float(va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-300))
