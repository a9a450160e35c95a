"""Fabricated chips from a wafer: correlated maps of width and thickness in nm → an :class:`AsBuilt` per die.

Each geometric quantity varies on four scales a fab reports: wafer to wafer, across the wafer (a radial
bowl, a linear tilt and a Gaussian random field with a correlation length), die to die, and device to
device (local mismatch). The nm at every coupler and heated segment of a die go through
:class:`tapmesh.circuits.variation.Sensitivities` to δ, φ0, loss and tap fraction, so dies close together
on a wafer come out alike. :class:`IndependentModel` keeps the simple case (independent per-device draws,
:meth:`AsBuilt.random`). Derivation and numbers: ``docs/yield.md``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.asbuilt import AsBuilt
from tapmesh.circuits.variation import Sensitivities

FEATURES = 512
"""Random Fourier features per Gaussian random field (its covariance is exact to ~1/√FEATURES)."""

CHIP_STREAM, WAFER_STREAM = 0, 1
"""First element of the ``spawn_key`` of the chip's and the wafer's ``numpy.random.SeedSequence``."""


class WaferModelError(ValueError):
    """A wafer or variation model parameter out of range (negative σ, a die larger than the wafer, ...)."""


def chip_seed(seed: int, chip: int) -> np.random.SeedSequence:
    """The seed sequence of chip ``chip`` of a study seeded ``seed``: ``SeedSequence(seed).spawn`` child
    (CHIP_STREAM, chip), so a chip's draws do not depend on which worker makes it, or in which order."""
    return np.random.SeedSequence(int(seed), spawn_key=(CHIP_STREAM, int(chip)))


def _non_negative(obj, names) -> None:
    """Raise :class:`WaferModelError` naming the first of ``names`` that is negative (or NaN)."""
    for name in names:
        if not getattr(obj, name) >= 0:
            raise WaferModelError(f"{type(obj).__name__}.{name} must be ≥ 0, got {getattr(obj, name)}")


@dataclass(frozen=True)
class Variation:
    """The variation of one geometric quantity (nm) on every scale; each term is zero-mean over a wafer.

    Attributes:
        wafer_sigma: σ of the wafer-to-wafer offset, nm.
        radial: centre-to-edge bowl, nm: ``radial·((r/R)² − ½)``.
        tilt: linear gradient across the wafer, nm: ``tilt·(r·u)/R`` with a direction u drawn per wafer.
        field_sigma: σ of a Gaussian random field with a squared-exponential correlation, nm.
        correlation_mm: its correlation length ℓ (covariance ``exp(−d²/2ℓ²)``), mm.
        die_sigma: σ of a per-die offset, nm.
        local_sigma: σ of the device-to-device mismatch within a die, nm.
    """

    wafer_sigma: float = 0.0
    radial: float = 0.0
    tilt: float = 0.0
    field_sigma: float = 0.0
    correlation_mm: float = 30.0
    die_sigma: float = 0.0
    local_sigma: float = 0.0

    def __post_init__(self):
        _non_negative(self, ("wafer_sigma", "field_sigma", "die_sigma", "local_sigma"))
        if not self.correlation_mm > 0:
            raise WaferModelError(f"Variation.correlation_mm must be > 0, got {self.correlation_mm}")

    @property
    def variance(self) -> float:
        """Variance over all devices of all wafers, nm²: (r/R)² is uniform on [0, 1] over a disk (variance
        1/12) and (x/R)² averages 1/4."""
        return (self.wafer_sigma**2 + self.radial**2 / 12 + self.tilt**2 / 4 + self.field_sigma**2
                + self.die_sigma**2 + self.local_sigma**2)

    def scaled(self, factor: float) -> "Variation":
        """Every amplitude times ``factor`` (the correlation length kept)."""
        return replace(self, **{name: getattr(self, name) * factor for name in
                                ("wafer_sigma", "radial", "tilt", "field_sigma", "die_sigma", "local_sigma")})


@dataclass(frozen=True)
class WaferModel:
    """A process: correlated variation of waveguide width (edge bias) and silicon thickness across wafers.

    Attributes:
        width: variation of the waveguide width, nm; an edge bias also narrows every coupler gap by as much.
        thickness: variation of the silicon thickness, nm.
        gap_local_sigma: coupler-gap mismatch beyond the edge bias, per coupler, nm.
        length_local_sigma: path-length error per heated segment, nm.
        sensitivities: nm → δ, phase, loss (:class:`tapmesh.circuits.variation.Sensitivities`).
        diameter_mm, edge_exclusion_mm: the wafer and its unusable rim, mm.
        die_mm: die size (x, y), mm: dies are placed on this pitch, whole dies inside the usable disk.
        column_pitch_um, mode_pitch_um: on-die pitch of MZI columns and of modes, µm (device positions).
        alpha, alpha_spread, crosstalk, tap_fraction: heater law and taps as in :meth:`AsBuilt.random`
            (α in rad/V², independent per heater; the tap fraction is then moved by the local geometry).
    """

    width: Variation = field(default_factory=lambda: Variation(
        wafer_sigma=2.0, radial=6.0, tilt=3.0, field_sigma=3.0, correlation_mm=30.0, die_sigma=1.5, local_sigma=0.7))
    thickness: Variation = field(default_factory=lambda: Variation(
        wafer_sigma=1.0, radial=2.0, tilt=1.0, field_sigma=1.0, correlation_mm=40.0, die_sigma=0.3, local_sigma=0.1))
    gap_local_sigma: float = 1.0
    length_local_sigma: float = 2.0
    sensitivities: Sensitivities = field(default_factory=Sensitivities)
    diameter_mm: float = 200.0
    edge_exclusion_mm: float = 3.0
    die_mm: tuple[float, float] = (10.0, 5.0)
    column_pitch_um: float = 500.0
    mode_pitch_um: float = 100.0
    alpha: float = 0.5
    alpha_spread: float = 0.05
    crosstalk: float = 0.0
    tap_fraction: float = 0.02

    def __post_init__(self):
        _non_negative(self, ("gap_local_sigma", "length_local_sigma", "alpha_spread", "crosstalk"))
        if len(self.die_centers()) == 0:
            raise WaferModelError(f"no {self.die_mm[0]}×{self.die_mm[1]} mm die fits on a {self.diameter_mm} mm "
                                  f"wafer with {self.edge_exclusion_mm} mm edge exclusion")

    # ------------------------------------------------------------------ the δ budget
    def _delta_coefficients(self) -> tuple[float, float, float]:
        """dδ/dnm of width bias, thickness and gap mismatch (first order)."""
        d = self.sensitivities.delta_per_nm
        return d["width_bias"], d["thickness"], d["gap"]

    @property
    def sigma_delta(self) -> float:
        """σ of the couplers' δ over all wafers to first order, rad: the sum of the three terms' variances."""
        a_w, a_t, a_g = self._delta_coefficients()
        return float(np.sqrt(a_w**2 * self.width.variance + a_t**2 * self.thickness.variance
                             + a_g**2 * self.gap_local_sigma**2))

    def for_sigma_delta(self, sigma_delta: float) -> "WaferModel":
        """The same process with every width, thickness and gap amplitude scaled so that
        :attr:`sigma_delta` equals ``sigma_delta`` (rad); the budget's proportions are kept."""
        if not sigma_delta >= 0:
            raise WaferModelError(f"sigma_delta must be ≥ 0 rad, got {sigma_delta}")
        factor = sigma_delta / self.sigma_delta
        return replace(self, width=self.width.scaled(factor), thickness=self.thickness.scaled(factor),
                       gap_local_sigma=self.gap_local_sigma * factor)

    # ------------------------------------------------------------------ geometry
    def die_centers(self) -> np.ndarray:
        """(D, 2) centres of the whole dies inside the usable disk, mm, in raster order (top row first)."""
        return _die_centers(self.diameter_mm, self.edge_exclusion_mm, tuple(self.die_mm))

    def sites(self, topology: circuits.MeshTopology) -> dict[str, np.ndarray]:
        """Device positions on a die, µm from the die centre: ``couplers`` (K, 2, 2) (input, output),
        ``segments`` (K, 4, 2) in ``circuits.params.SEGMENT_NAMES`` order, ``outputs`` (n, 2)."""
        cp, mp = self.column_pitch_um, self.mode_pitch_um
        mzis = np.array(topology.mzis, dtype=float)  # (K, 2): column, top mode
        x, y = mzis[:, 0] * cp, mzis[:, 1] * mp
        couplers = np.stack([np.stack([x + f * cp, y + mp / 2], -1) for f in (0.25, 0.75)], 1)
        segments = np.stack([np.stack([x + fx * cp, y + fy * mp], -1)
                             for fx, fy in ((0, 0), (0, 1), (0.5, 0), (0.5, 1))], 1)
        outputs = np.stack([np.full(topology.n, topology.n_columns * cp), np.arange(topology.n) * mp], -1)
        centre = np.array([topology.n_columns * cp / 2, (topology.n - 1) * mp / 2])
        return {"couplers": couplers - centre, "segments": segments - centre, "outputs": outputs - centre}

    # ------------------------------------------------------------------ chips
    def chip(self, topology: circuits.MeshTopology, chip: int, seed: int = 0) -> tuple[AsBuilt, dict]:
        """The as-built chip number ``chip`` of a study seeded ``seed`` and where it sits.

        Chips fill wafers in a seeded random order of their dies (chip ``i`` is on wafer ``i // D``); the
        wafer's maps depend on (seed, wafer) only, the chip's local mismatch on (seed, chip) only.
        Returns ``(AsBuilt, site)`` with ``site = {"wafer", "die", "x_mm", "y_mm"}``."""
        wafer, site = _site(self, chip, seed)
        centers, die = self.die_centers(), site["die"]
        sites = self.sites(topology)
        rng = np.random.default_rng(chip_seed(seed, chip))
        k, n = topology.n_mzis, topology.n
        # standard normals first, in a fixed order: the same chip at every σ (common random numbers)
        z = {name: rng.standard_normal(shape) for name, shape in (
            ("w_c", (k, 2)), ("t_c", (k, 2)), ("g_c", (k, 2)), ("w_s", (k, 4)), ("t_s", (k, 4)), ("l_s", (k, 4)),
            ("w_o", n), ("t_o", n), ("l_o", n))}
        heater_seed = int(rng.integers(2**31))

        def at(name, variation, positions, normals):
            xy = centers[die] + positions * 1e-3
            return wafer.value(name, variation, xy) + variation.die_sigma * wafer.die_normal[name][die] \
                + variation.local_sigma * normals

        s = self.sensitivities
        w_c, t_c = at("width", self.width, sites["couplers"], z["w_c"]), at("thickness", self.thickness, sites["couplers"], z["t_c"])
        dlnc = s.coupling_log_change(w_c, t_c, self.gap_local_sigma * z["g_c"] - w_c)
        w_s, t_s = at("width", self.width, sites["segments"], z["w_s"]), at("thickness", self.thickness, sites["segments"], z["t_s"])
        w_o, t_o = at("width", self.width, sites["outputs"], z["w_o"]), at("thickness", self.thickness, sites["outputs"], z["t_o"])
        psi_s = s.phase_error(w_s, t_s, self.length_local_sigma * z["l_s"])
        psi_o = s.phase_error(w_o, t_o, self.length_local_sigma * z["l_o"])
        # φ0: the heated segment against its twin (θ: top arm − bottom arm; φ: top input − bottom input; γ: own)
        offsets = np.concatenate([psi_s[:, 2] - psi_s[:, 3], psi_s[:, 0] - psi_s[:, 1], psi_o])
        # taps sit on the heated segments and move with their local geometry (gap bias as in the couplers)
        tap_dlnc = np.concatenate([s.coupling_log_change(w, t, -w) for w, t in
                                   ((w_s[:, 2], t_s[:, 2]), (w_s[:, 0], t_s[:, 0]), (w_o, t_o))])
        heaters = AsBuilt.random(topology, seed=heater_seed, delta_sigma=0.0, alpha=self.alpha,
                                 alpha_spread=self.alpha_spread, crosstalk=self.crosstalk)
        truth = replace(
            heaters,
            phase_offsets=np.mod(offsets, 2 * np.pi),
            delta=s.splitting_error(dlnc),
            loss_db=s.segment_loss_db(w_s),
            output_loss_db=s.segment_loss_db(w_o),
            tap_fraction=np.clip(s.tap_fraction(self.tap_fraction, tap_dlnc), 1e-4, 0.5),
        )
        return truth, site


@dataclass(frozen=True)
class IndependentModel:
    """The simple case: every device drawn independently (:meth:`AsBuilt.random`, δ ~ N(0, σδ)); dies are
    still placed on a wafer (for the wafer map) but share nothing."""

    sigma_delta: float = 0.03
    alpha: float = 0.5
    alpha_spread: float = 0.05
    crosstalk: float = 0.0
    tap_fraction: float = 0.02
    tap_spread: float = 0.05
    wafer: WaferModel = field(default_factory=WaferModel)

    def for_sigma_delta(self, sigma_delta: float) -> "IndependentModel":
        if not sigma_delta >= 0:
            raise WaferModelError(f"sigma_delta must be ≥ 0 rad, got {sigma_delta}")
        return replace(self, sigma_delta=float(sigma_delta))

    def chip(self, topology: circuits.MeshTopology, chip: int, seed: int = 0) -> tuple[AsBuilt, dict]:
        """Chip ``chip`` of a study seeded ``seed`` (seed from :func:`chip_seed`) and its die on the wafer."""
        _, site = _site(self.wafer, chip, seed)
        draw = int(np.random.default_rng(chip_seed(seed, chip)).integers(2**31))
        truth = AsBuilt.random(topology, seed=draw, delta_sigma=self.sigma_delta, alpha=self.alpha,
                               alpha_spread=self.alpha_spread, crosstalk=self.crosstalk,
                               tap_fraction=self.tap_fraction, tap_spread=self.tap_spread)
        return truth, site


def _site(model: WaferModel, chip: int, seed: int) -> tuple["_Wafer", dict]:
    """The wafer chip ``chip`` is on and its site ``{"wafer", "die", "x_mm", "y_mm"}`` (die centre, mm)."""
    if chip < 0:
        raise WaferModelError(f"chip index must be ≥ 0, got {chip}")
    centers = model.die_centers()
    wafer_index, slot = divmod(int(chip), len(centers))
    wafer = _wafer(model, int(seed), wafer_index)
    die = int(wafer.order[slot])
    x_mm, y_mm = centers[die]
    return wafer, {"wafer": wafer_index, "die": die, "x_mm": float(x_mm), "y_mm": float(y_mm)}


# ----------------------------------------------------------------------------- wafers
@functools.lru_cache(maxsize=16)
def _die_centers(diameter_mm: float, edge_mm: float, die_mm: tuple[float, float]) -> np.ndarray:
    radius = diameter_mm / 2 - edge_mm
    dx, dy = die_mm
    nx, ny = int(np.ceil(diameter_mm / dx)) + 1, int(np.ceil(diameter_mm / dy)) + 1
    xs = (np.arange(nx) - (nx - 1) / 2) * dx
    ys = (np.arange(ny) - (ny - 1) / 2) * dy
    centers = []
    for y in ys[::-1]:
        for x in xs:
            corners = np.array([[x + sx * dx / 2, y + sy * dy / 2] for sx in (-1, 1) for sy in (-1, 1)])
            if np.all(np.hypot(corners[:, 0], corners[:, 1]) <= radius):
                centers.append((x, y))
    out = np.array(centers, dtype=float).reshape(-1, 2)
    out.setflags(write=False)
    return out


class _Wafer:
    """The random parts of one wafer (standard draws, scaled by a :class:`Variation` when evaluated): the
    order its dies are used in, and per quantity an offset, a tilt direction, random Fourier features of a
    unit Gaussian random field and per-die normals."""

    def __init__(self, diameter_mm: float, edge_mm: float, die_mm: tuple[float, float], seed: int, index: int):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(WAFER_STREAM, index)))
        n_dies = len(_die_centers(diameter_mm, edge_mm, die_mm))
        self.radius = diameter_mm / 2
        self.order = rng.permutation(n_dies)
        self.offset, self.direction, self.omega, self.phase, self.die_normal = {}, {}, {}, {}, {}
        for name in ("width", "thickness"):
            self.offset[name] = rng.standard_normal()
            angle = rng.uniform(0, 2 * np.pi)
            self.direction[name] = np.array([np.cos(angle), np.sin(angle)])
            self.omega[name] = rng.standard_normal((FEATURES, 2))  # ω·ℓ
            self.phase[name] = rng.uniform(0, 2 * np.pi, FEATURES)
            self.die_normal[name] = rng.standard_normal(n_dies)

    def value(self, name: str, v: Variation, xy_mm: np.ndarray) -> np.ndarray:
        """The wafer-scale part (offset + bowl + tilt + random field) at positions ``xy_mm`` (…, 2), nm."""
        xy = np.asarray(xy_mm, dtype=float)
        r2 = np.sum(xy**2, axis=-1) / self.radius**2
        along = xy @ self.direction[name] / self.radius
        out = v.wafer_sigma * self.offset[name] + v.radial * (r2 - 0.5) + v.tilt * along
        if v.field_sigma:
            arg = xy @ (self.omega[name].T / v.correlation_mm) + self.phase[name]
            out = out + v.field_sigma * np.sqrt(2.0 / FEATURES) * np.cos(arg).sum(-1)
        return out


def _wafer(model: WaferModel, seed: int, index: int) -> _Wafer:
    """Wafer ``index`` of a study seeded ``seed``: its draws depend on the wafer geometry only, not on the
    amplitudes, so every σ of a sweep sees the same wafers (common random numbers)."""
    return _cached_wafer(float(model.diameter_mm), float(model.edge_exclusion_mm), tuple(model.die_mm), seed, index)


@functools.lru_cache(maxsize=64)
def _cached_wafer(diameter_mm, edge_mm, die_mm, seed, index) -> _Wafer:
    return _Wafer(diameter_mm, edge_mm, die_mm, seed, index)
