"""Crosstalk screening: which heater pairs couple thermally, measured on the chip when no chip map says so.

Without a chip map (heater positions), the calibration does not know which heaters sit side by side; the
mesh's grid (:func:`~tapmesh.calibration.crosstalk.neighbour_pairs`) is a guess a real layout need not
follow. :func:`screen` measures it after the phase-voltage stages, on the calibrated model:

1. An operating point v0 where every MZI splits (θ and φ at π/2 per the calibrated law), read for a few
   random input fields, repeated; the repeats give the noise of a reading R, σ²(R) = a + b·R (read and
   shot noise), measured here.
2. Groups of heaters are driven hard, one group per setting (every other heater at v0): each heater of the
   group is moved up by the largest whole number of 2π branches its declared limits allow (its phase
   unchanged per the calibrated law, its heat as large as the bench permits), so that mostly the heat
   changes the light. A group is one heater (small meshes), or, past :data:`SINGLE_MAX` heaters, random
   groups in :data:`DESIGNS` different partitions (group testing: O(log H) settings per partition).
3. Per group, the ratio of every forward tap's reading to its v0 reading (the camera's efficiency
   cancels) is fitted by Gauss–Newton on the calibrated model for the residual phase Δφ_i of every θ and
   φ heater beyond what the model predicts (its known crosstalk, the driven heaters' own law). The 1σ of
   Δφ comes from the measured noise, inflated by the fit's reduced χ² where the model misfits.
4. A receiver is flagged in a group when |Δφ_i| > z·σ_i, z set by a family-wise false-alarm probability
   :data:`FALSE_ALARM` over all tests (never a fixed number of radians). A source is a candidate of a
   receiver if every partition's group holding it flagged that receiver; the candidates' crosstalk
   X_ij = Δφ_i / (α_i ΔP_j) is fitted over all groups where the receiver was not driven (σ scaled up by
   that fit's reduced χ²), and the pairs above the same z are kept.

The γ heaters change no tap power: they are screened as sources, never as receivers. The procedure, its
cost and what it found on the lab bench are in docs/calibration.md ("Crosstalk screening").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from tapmesh.calibration.crosstalk import Crosstalk

FALSE_ALARM = 0.01
"""Probability, over the whole screening, of flagging one pair that does not couple (noise alone)."""
SINGLE_MAX = None
"""Up to this many heaters each is driven alone (H settings); above it, group testing. ``None``: alone
while H ≤ 8 × the settings group testing would take, i.e. up to n = 32 in a rectangular mesh (H = 1024).
Measured at n = 16 (H = 256): groups took 97 settings instead of 257 and gave the same F on the chip
(0.99772 vs 0.99781 mean), but found 137 instead of 176 of 224 unlisted pairs and 7 false ones (±0.001
on neighbouring receivers, opposite signs: the fit's misfit with 8 heaters driven at once, χ² ≈ 2)."""
DESIGNS = 3
"""Random partitions of the heaters into groups, when groups are used."""
AUTO_MAX_HEATERS = 1024
"""``calibrate(screen_crosstalk=None)`` screens meshes up to this many heaters (n = 32 rectangular, where
heaters are driven one at a time) and skips larger ones with a note: at n = 64 (4096 heaters, group
testing) the per-group Gauss–Newton over every receiver took over 27 min of CPU without finishing, while
the rest of the calibration takes ~2 min. ``screen_crosstalk=True`` screens them anyway; a chip map gives
the pairs without any screening."""
TWO_PI = 2 * np.pi


@dataclass
class Screening:
    """What the screening measured: pairs found, their X (added to the model's), its cost and threshold."""

    pairs: np.ndarray  # (P, 2) (receiver, source) pairs found to couple
    values: np.ndarray  # (P,) measured X beyond what the model held before, per pair
    sigma: np.ndarray  # (P,) 1σ of those values
    z: float  # the threshold, in σ
    settings: int = 0
    frames: int = 0
    groups: int = 0
    designs: int = 1
    receivers: int = 0
    chi2: list = field(default_factory=list)
    noise: tuple = (0.0, 0.0)  # (a mW², b mW): variance of one reading R is a + b·R
    new: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # (P,) pair not held by the model before
    notes: list = field(default_factory=list)

    def info(self) -> dict:
        """A JSON-able summary for ``Calibration.info["screening"]``."""
        return {"pairs": self.pairs.tolist(), "values": self.values.tolist(), "sigma": self.sigma.tolist(),
                "new_pairs": self.pairs[self.new].tolist(), "corrected_pairs": self.pairs[~self.new].tolist(),
                "z": self.z if np.isfinite(self.z) else None, "settings": self.settings, "frames": self.frames, "groups": self.groups,
                "designs": self.designs, "receivers": self.receivers,
                "chi2_median": float(np.median(self.chi2)) if self.chi2 else None,
                "noise_a_mw2": float(self.noise[0]), "noise_b_mw": float(self.noise[1]), "notes": list(self.notes)}


# ----------------------------------------------------------------------------- the calibrated model
def tap_powers(cal, phases, x) -> np.ndarray:
    """Power in the guide at every forward tap, mW, of the calibrated model (couplers δ, taps' loss):
    ``phases`` (P, H) rad and input fields ``x`` (B, n) √mW → (P, B, H). Tap i is on heater i's segment
    (docs/conventions.md); γ's taps read after the last couplers."""
    top = cal.topology
    k = top.n_mzis
    ph = np.atleast_2d(np.asarray(phases, dtype=float))
    x = np.atleast_2d(np.asarray(x, dtype=np.complex128))
    f = np.repeat(x.T[:, None, :], ph.shape[0], axis=1)  # (n, P, B)
    e = np.exp(1j * ph).T[:, :, None]  # (H, P, 1)
    keep, idle = cal.segment_keep(), cal.idle_keep()
    cs = np.cos(np.pi / 4 + cal.delta), np.sin(np.pi / 4 + cal.delta)
    taps = np.zeros((cal.n_heaters,) + f.shape[1:])
    for c, column in enumerate(top.columns):
        f = f * idle[c][:, None, None]
        for i in column:
            m = top.mzis[i][1]
            a = f[m] * e[k + i]
            taps[k + i] = np.abs(a) ** 2
            a = a * keep[i, 0]
            b = f[m + 1] * keep[i, 1]
            c1, s1 = cs[0][i, 0], cs[1][i, 0]
            u = (c1 * a + 1j * s1 * b) * e[i]
            w = (1j * s1 * a + c1 * b) * keep[i, 3]
            taps[i] = np.abs(u) ** 2
            u = u * keep[i, 2]
            c2, s2 = cs[0][i, 1], cs[1][i, 1]
            f[m], f[m + 1] = c2 * u + 1j * s2 * w, 1j * s2 * u + c2 * w
    for m in range(top.n):
        taps[2 * k + m] = np.abs(f[m]) ** 2
    return np.moveaxis(taps, 0, -1)


def _law(cal, i: int, x: float) -> float:
    """Heater i's own phase at drive² x per the calibrated law (φ0 + αx + βx^1.5, crosstalk left out)."""
    return float(cal.phase_offsets[i] + cal.alpha[i] * x + cal.beta[i] * x**1.5)


def _drive_for(cal, i: int, phase: float, start: float) -> float:
    """Drive² of heater i where its own law reaches ``phase`` (Newton from ``start``)."""
    x = max(start, 0.0)
    for _ in range(8):
        slope = cal.alpha[i] + 1.5 * cal.beta[i] * np.sqrt(x)
        if slope <= 0:
            break
        x = max(0.0, x - (_law(cal, i, x) - phase) / slope)
    return x


def operating_point(cal, x_top: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Drive² of v0: θ and φ at π/2 (mod 2π, the smallest drive), γ at 0 drive, dead heaters off."""
    k = cal.topology.n_mzis
    x0 = np.zeros(cal.n_heaters)
    for i in np.flatnonzero(alive[: 2 * k]):
        need = np.mod(np.pi / 2 - cal.phase_offsets[i], TWO_PI) / cal.alpha[i]
        x0[i] = min(_drive_for(cal, i, cal.phase_offsets[i] + cal.alpha[i] * need, need), x_top[i])
    return x0


def driven(cal, x0: np.ndarray, group, x_top: np.ndarray) -> tuple[np.ndarray, bool]:
    """Drive² with every heater of ``group`` moved up the most whole 2π branches within ``x_top`` (or to
    ``x_top`` where no whole branch fits; the second value says whether any did not)."""
    x = x0.copy()
    partial = False
    for j in group:
        own = _law(cal, j, x0[j])
        branches = int(np.floor((x_top[j] - x0[j]) * cal.alpha[j] / TWO_PI))
        while branches >= 1:
            target = _drive_for(cal, j, own + TWO_PI * branches, x0[j] + TWO_PI * branches / cal.alpha[j])
            if target <= x_top[j]:
                x[j] = target
                break
            branches -= 1
        else:
            x[j], partial = x_top[j], True
    return x, partial


# ----------------------------------------------------------------------------- one group's fit
def residual_phases(cal, phases, p0, fields, rho, sig, unknowns, members=(), iterations: int = 8):
    """Gauss–Newton fit of the residual phases Δφ (rad) of ``unknowns`` from the measured tap ratios
    ``rho`` (B, H; reading at the group's setting over the reading at v0, NaN where unusable) with 1σ
    ``sig``; the model's ratio is tap_powers(phases + Δφ) / ``p0``. The driven heaters (``members``) can be
    off by more than a radian (their law's error times a large drive): each is first scanned over
    [−π, π) alone, and Gauss–Newton starts from the best. Returns (Δφ, 1σ, reduced χ²)."""
    use = np.isfinite(rho)
    y, s = rho[use], sig[use]
    nu = len(unknowns)
    step = 1e-5
    u = np.zeros(nu)
    scan = np.linspace(-np.pi, np.pi, 32, endpoint=False)
    for j in members:
        where = np.flatnonzero(unknowns == j)
        if not len(where):
            continue
        trial = np.repeat(phases[None], len(scan), axis=0)
        trial[:, unknowns] += u
        trial[:, j] += scan
        costs = np.sum(((y - (tap_powers(cal, trial, fields) / p0)[:, use]) / s) ** 2, axis=1)
        u[where[0]] = scan[int(np.argmin(costs))]

    def model(u):
        pert = np.repeat(phases[None], nu + 1, axis=0)
        pert[:, unknowns] += u
        pert[np.arange(1, nu + 1), unknowns] += step
        ratio = tap_powers(cal, pert, fields) / p0
        r0 = ratio[0][use]
        return r0, ((ratio[1:, use] - r0) / step).T / s[:, None]

    r0, jw = model(u)
    res = (y - r0) / s
    cost = float(res @ res)
    for _ in range(iterations):
        jtj = jw.T @ jw
        ridge = 1e-9 * np.trace(jtj) / max(nu, 1) + 1e-300
        du = np.linalg.solve(jtj + ridge * np.eye(nu), jw.T @ res)
        for _ in range(6):  # halve a step that does not lower the cost
            r1, j1 = model(u + du)
            res1 = (y - r1) / s
            if float(res1 @ res1) <= cost:
                break
            du = du / 2
        else:
            break
        u, jw, res, cost = u + du, j1, res1, float(res1 @ res1)
        if np.max(np.abs(du)) < 1e-5:
            break
    jtj = jw.T @ jw
    ridge = 1e-9 * np.trace(jtj) / max(nu, 1) + 1e-300
    chi2 = cost / max(len(y) - nu, 1)
    cov = np.linalg.inv(jtj + ridge * np.eye(nu)) * max(1.0, chi2)
    return u, np.sqrt(np.clip(np.diag(cov), 0, None)), chi2


# ----------------------------------------------------------------------------- the screening
def noise_model(readings: np.ndarray, floor: float) -> tuple[float, float]:
    """(a, b) of σ²(R) = a + b·R from repeated readings (r, B, H) of one setting (mW², mW)."""
    mean, var = readings.mean(0).ravel(), readings.var(0, ddof=1).ravel()
    ok = mean > 0
    if ok.sum() < 3:
        return max(floor**2, float(np.median(var))), 0.0
    b, a = np.polyfit(mean[ok], var[ok], 1)
    return max(float(a), floor**2, 1e-30), max(float(b), 0.0)


def partitions(sources: np.ndarray, rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Groups of heaters driven together: one heater each up to :data:`SINGLE_MAX`, else :data:`DESIGNS`
    random partitions into 4·⌈log2 H⌉ groups each."""
    count = int(4 * np.ceil(np.log2(max(len(sources), 2))))
    single = 8 * DESIGNS * count if SINGLE_MAX is None else SINGLE_MAX
    if len(sources) <= single or count >= len(sources):
        return [[np.array([j]) for j in sources]]
    return [np.array_split(rng.permutation(sources), count) for _ in range(DESIGNS)]


def screen(bench, cal, offsets, usable, x_top, power_mw: float, rng: np.random.Generator, repeats: int = 4,
           fields: int = 4, read_noise_mw: float = 0.0) -> Screening:
    """Measure which heater pairs couple (module doc) on ``bench`` with the calibrated model ``cal``;
    drives stay within ``x_top`` (drive², per heater: every heater there at once is within the declared
    limits). Returns the :class:`Screening`; the model is not changed (:func:`apply`)."""
    top, h = cal.topology, cal.n_heaters
    k, n = top.n_mzis, top.n
    frames0, settings0 = bench.frames, bench.settings
    alive = (np.asarray(cal.alpha) > 0) & np.isin(np.arange(h), cal.dead_heaters, invert=True)
    x0 = operating_point(cal, x_top, alive)
    probe = (rng.normal(size=(fields, n)) + 1j * rng.normal(size=(fields, n))) * np.sqrt(power_mw / (2 * n))

    def read(x, r):
        batch = np.repeat(probe, r, axis=0)
        taps = bench.measure(np.sqrt(x), batch, "input", taps="forward")["taps"] - offsets[0]
        return taps.reshape(fields, r, h).transpose(1, 0, 2)  # (r, B, H)

    base = read(x0, 2 * repeats)
    a, b = noise_model(base, read_noise_mw)
    r0 = base.mean(0)
    s0 = np.sqrt((a + b * np.abs(r0)) / base.shape[0])
    lit = usable[0][None, :] & (r0 > 10 * s0)
    phases0 = cal.phases_for_voltages(np.sqrt(x0))
    p0 = tap_powers(cal, phases0, probe)[0]
    lit &= p0 > 0
    unknowns = np.flatnonzero(alive[: 2 * k])
    sources = np.flatnonzero(alive)
    if not len(unknowns) or not len(sources):
        empty = Screening(np.zeros((0, 2), dtype=int), np.zeros(0), np.zeros(0), float("inf"),
                          notes=["crosstalk screening: no live heater to drive or to read"])
        empty.frames, empty.settings = bench.frames - frames0, bench.settings - settings0
        return empty
    designs = partitions(sources, rng)
    n_groups = sum(len(d) for d in designs)
    z = float(norm.isf(FALSE_ALARM / (2 * n_groups * len(unknowns))))
    out = Screening(np.zeros((0, 2), dtype=int), np.zeros(0), np.zeros(0), z, groups=n_groups,
                    designs=len(designs), receivers=len(unknowns), noise=(a, b))
    # per design and heater: its group; per group: Δφ, 1σ (NaN for heaters driven or not screened), ΔP
    group_of = np.full((len(designs), h), -1)
    found_u, found_s, d_power = [], [], []
    partial = 0
    for d, groups in enumerate(designs):
        for g, members in enumerate(groups):
            group_of[d, members] = len(found_u)
            xg, short = driven(cal, x0, members, x_top)
            partial += short
            rg = read(xg, repeats).mean(0)
            sg = np.sqrt((a + b * np.abs(rg)) / repeats)
            rho = np.where(lit, rg / np.where(lit, r0, 1.0), np.nan)
            sig = np.sqrt(sg**2 + (rho * s0) ** 2) / np.where(lit, r0, 1.0)
            phases = cal.phases_for_voltages(np.sqrt(xg))
            u, s, chi2 = residual_phases(cal, phases, p0, probe, rho, sig, unknowns, members)
            du, ds = np.full(h, np.nan), np.full(h, np.nan)
            du[unknowns], ds[unknowns] = u, s
            du[members], ds[members] = np.nan, np.nan
            found_u.append(du)
            found_s.append(ds)
            d_power.append(xg - x0)
            out.chi2.append(chi2)
    if partial:
        out.notes.append(f"{partial} driven heaters could not move a whole 2π branch within their limits")
    found_u, found_s, d_power = np.array(found_u), np.array(found_s), np.array(d_power)
    flagged = np.abs(found_u) > z * found_s  # (G, H), False where NaN
    pairs, values, sigmas = _decode(cal, group_of, found_u, found_s, flagged, d_power, unknowns, sources, z)
    out.pairs, out.values, out.sigma = pairs, values, sigmas
    held = {tuple(p) for p in cal.crosstalk.pairs.tolist()}
    out.new = np.array([tuple(p) not in held for p in pairs.tolist()], dtype=bool)
    out.frames, out.settings = bench.frames - frames0, bench.settings - settings0
    return out


def _decode(cal, group_of, found_u, found_s, flagged, d_power, unknowns, sources, z):
    """Candidates (every partition flagged the receiver in the source's group), then X per receiver by
    weighted least squares over every group where it was not driven (σ scaled up by that fit's reduced
    χ² where above 1: a receiver the model misfits everywhere), kept where above the same ``z``."""
    alpha = np.asarray(cal.alpha)
    cands = {}
    for i in unknowns:
        c = []
        for j in sources:
            if j == i:
                continue
            gs = group_of[:, j]
            informative = [g for g in gs if np.isfinite(found_u[g, i])]
            if informative and all(flagged[g, i] for g in informative):
                c.append(int(j))
        if c:
            cands[int(i)] = c
    pairs, values, sigmas = [], [], []
    for i, c in cands.items():
        rows = np.flatnonzero(np.isfinite(found_u[:, i]))
        a = alpha[i] * d_power[np.ix_(rows, c)] / found_s[rows, i][:, None]
        y = found_u[rows, i] / found_s[rows, i]
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        dof = len(rows) - len(c)
        chi2 = float(np.sum((y - a @ coef) ** 2) / dof) if dof > 0 else 1.0
        cov = np.linalg.pinv(a.T @ a) * max(1.0, chi2)
        sig = np.sqrt(np.clip(np.diag(cov), 0, None))
        for j, value, s in zip(c, coef, sig):
            if s > 0 and abs(value) > z * s:
                pairs.append((i, j))
                values.append(float(value))
                sigmas.append(float(s))
    return np.array(pairs, dtype=int).reshape(-1, 2), np.array(values), np.array(sigmas)


def column_of(topology, i: int) -> int:
    """The MZI column of heater i (θ, φ), or the number of columns for an output phase γ."""
    k = topology.n_mzis
    return topology.mzis[i % k][0] if i < 2 * k else topology.n_columns


def apply(cal, result: Screening, base_power: np.ndarray | None = None) -> None:
    """Add the screened X to ``cal.crosstalk``. The progressive stages fit receiver i with the columns
    before its own at their base drive² ``base_power`` (θ at the bar state): there a pair's heat was
    taken into φ0_i, so φ0_i gives back α_i·X_ij·P_j (nothing is given back where ``base_power`` is None)."""
    if not len(result.pairs):
        return
    old = cal.crosstalk
    rows = np.concatenate([old.rows, result.pairs[:, 0]])
    cols = np.concatenate([old.cols, result.pairs[:, 1]])
    cal.crosstalk = Crosstalk(cal.n_heaters, rows, cols, np.concatenate([old.values, result.values]))
    if base_power is None:
        return
    offsets = np.array(cal.phase_offsets, dtype=float)
    for (i, j), value in zip(result.pairs, result.values):
        if column_of(cal.topology, int(j)) < column_of(cal.topology, int(i)):
            offsets[i] -= cal.alpha[i] * value * base_power[j]
    cal.phase_offsets = np.mod(offsets, TWO_PI)


def fit_pairs(cal, result: Screening, grid: np.ndarray) -> np.ndarray:
    """The (P, 2) pairs the refinement fits after a screening: the grid's (the stages fit those; the γ
    receivers' the screening cannot see), the ones the model holds and the screened ones. A chip whose
    coupling the grid covers keeps exactly the grid's pairs (and the refinement's compiled shapes)."""
    both = np.concatenate([np.reshape(grid, (-1, 2)), cal.crosstalk.pairs, result.pairs]).astype(int)
    return np.unique(both, axis=0) if len(both) else both.reshape(-1, 2)


def automatic(n_heaters: int, mapped: bool, progressive: bool, notes: list) -> bool:
    """Whether ``screen_crosstalk=None`` screens: no chip map or pairs given, the progressive stages ran, and
    at most :data:`AUTO_MAX_HEATERS` heaters (a skip for size is said in ``notes``)."""
    if mapped or not progressive:
        return False
    if n_heaters > AUTO_MAX_HEATERS:
        notes.append(f"crosstalk screening skipped: {n_heaters} heaters exceed screening.AUTO_MAX_HEATERS="
                     f"{AUTO_MAX_HEATERS} (its fits take hours of CPU at this size); the crosstalk pairs are "
                     "the mesh grid's: pass chip_map= for the layout's, or screen_crosstalk=True")
        return False
    return True


def step(bench, cal, stages, offsets, usable, power_mw: float, seed: int, read_noise_mw: float, grid: np.ndarray,
         uncertainties: dict, notes: list) -> tuple[Screening, np.ndarray]:
    """The screening as a step of :func:`~tapmesh.calibration.calibrate`, after the phase-voltage stages
    (``stages``: their :class:`~tapmesh.calibration.progressive.Progressive`): :func:`screen`, then
    :func:`apply` (φ0 given back at the stages' base drive, where they ran column by column), the 1σ of
    every pair measured into ``uncertainties["crosstalk_pairs"]`` (one row per pair), a note. Returns the
    result and the pairs the refinement fits (:func:`fit_pairs`)."""
    screened = screen(bench, cal, offsets, usable, stages.max_v2, power_mw, np.random.default_rng([seed, 13]),
                      read_noise_mw=read_noise_mw)
    apply(cal, screened, stages.base_v**2)  # zero after the sweeps method: nothing to give back
    if len(screened.pairs):
        sigma = {(int(r[0]), int(r[1])): float(r[2]) for r in uncertainties.get("crosstalk_pairs", [])}
        sigma.update({(int(i), int(j)): float(s) for (i, j), s in zip(screened.pairs, screened.sigma)})
        uncertainties["crosstalk_pairs"] = np.array([[i, j, s] for (i, j), s in sigma.items()], dtype=float)
    notes.append(f"crosstalk screening: {int(screened.new.sum())} coupled pairs found that the model did not "
                 f"hold, {int((~screened.new).sum())} of its pairs corrected ({screened.settings} settings, "
                 f"{screened.frames} frames, threshold {screened.z:.2f} σ of the measured noise)")
    notes.extend(screened.notes)
    return screened, fit_pairs(cal, screened, grid)
