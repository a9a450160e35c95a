"""A bench written from the documented conventions only (docs/conventions.md, calibration/chip.py), not VirtualChip.

Its own numpy physics: couplers B(κ) = [[cos κ, i sin κ], [i sin κ, cos κ]], the MZI's φ on the top input and
θ on the top arm, the output phases γ last; one grating tap after every heater (reading t·|field|² of the
light arriving at it, each direction at its own grating); light from the output side (where declared)
crosses the same elements in reverse order, each transposed (reciprocity);
heater law φ = φ0 + α (P + Σ X P) + β V³ with P = V², crosstalk from its own heater positions (µm);
a camera with its own gains, offsets, read and shot noise and ADC. Used by tests/test_anychip.py.
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration import Capabilities


class LabChip:
    """A forward-only bench (no output-side source by default, no coherent readout by default)."""

    def __init__(self, topology, seed=0, alpha=1.7, alpha_spread=0.05, beta=0.003, v_max=9.0,
                 delta_sigma=0.03, xt_strength=0.02, xt_length_um=70.0, read_mw=6e-5, shot=0.004,
                 declared_noise_mw=None, dark=(), coherent=False, output_side=False, pitch_um=180.0):
        rng = np.random.default_rng([seed, 4242])
        self.top = topology
        self.n, self.k = topology.n, topology.n_mzis
        self.h = 2 * self.k + self.n
        h = self.h
        self.phi0 = rng.uniform(0, 2 * np.pi, h)
        self.alpha = alpha * (1 + alpha_spread * rng.normal(size=h))
        self.beta = beta * alpha * rng.normal(size=h)
        self.kappa = np.pi / 4 + rng.normal(0, delta_sigma, (self.k, 2))
        self.t = 0.02 * (1 + 0.05 * rng.normal(size=h))
        # heater centres: φ at the top input of its MZI, θ on the top arm half a pitch later, γ after the mesh
        pos = np.zeros((h, 2))
        for i, (c, m) in enumerate(topology.mzis):
            pos[i] = ((c + 0.5) * pitch_um, -127.0 * m)
            pos[self.k + i] = (c * pitch_um, -127.0 * m)
        for m in range(self.n):
            pos[2 * self.k + m] = (topology.n_columns * pitch_um, -127.0 * m)
        self.positions = pos
        d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
        x = xt_strength * np.exp(-d / xt_length_um) * (d < 3 * xt_length_um)
        np.fill_diagonal(x, 0.0)
        self.xt = x
        self.gain = 1 + 0.02 * rng.normal(size=h)
        self.offset = 1e-3 * rng.uniform(0.5, 1.5, h)
        self.dark = np.zeros(h, dtype=bool)
        self.dark[list(dark)] = True
        self.read_mw, self.shot = read_mw, shot
        self.full_scale = 0.1
        self._rng = np.random.default_rng([seed, 99])
        self.capabilities = Capabilities(
            drive="voltage", drive_min=0.0, drive_max=v_max, output_side_source=output_side,
            output_detectors=True, coherent_readout=coherent, camera_saturation_mw=self.full_scale,
            tap_noise_mw=read_mw if declared_noise_mw is None else declared_noise_mw)
        self.v = np.zeros(h)
        self.frames_voltages = []  # every setting applied (the tests check them against the limits)
        self._x = None
        self._side = "input"

    # ---------------------------------------------------------------- protocol
    n_modes = property(lambda self: self.n)
    n_heaters = property(lambda self: self.h)

    def set_voltages(self, v):
        v = np.asarray(v, dtype=float)
        if v.shape != (self.h,) or not np.all(np.isfinite(v)):
            raise ValueError(f"DAC: need {self.h} finite voltages")
        if np.any(v < 0) or np.any(v > self.capabilities.drive_max):
            raise ValueError(f"DAC: outside 0..{self.capabilities.drive_max} V")
        self.v = v.copy()
        self.frames_voltages.append(v.copy())

    def inject(self, x, side="input"):
        if side != "input" and not self.capabilities.output_side_source:
            raise NotImplementedError("no source at the output side of this bench")
        x = np.asarray(x, dtype=complex)
        if x.shape[-1] != self.n or x.ndim not in (1, 2) or not np.all(np.isfinite(x)):
            raise ValueError("bad field")
        self._single = x.ndim == 1
        self._x = np.atleast_2d(x)
        self._side = side

    def _phases(self, v):
        p = v**2
        return self.phi0 + self.alpha * (p + self.xt @ p) + self.beta * v**3

    def _propagate(self, v, x):
        """Output fields (B, n) and true tap powers (B, h) of forward light."""
        ph = self._phases(v)
        k, t = self.k, self.t
        f = np.array(x, dtype=complex).T.copy()  # (n, B)
        taps = np.zeros((self.h, f.shape[1]))
        for col in self.top.columns:
            for i in col:
                m = self.top.mzis[i][1]
                a = f[m] * np.exp(1j * ph[k + i])
                taps[k + i] = t[k + i] * np.abs(a) ** 2
                a = a * np.sqrt(1 - t[k + i])
                b = f[m + 1]
                c1, s1 = np.cos(self.kappa[i, 0]), np.sin(self.kappa[i, 0])
                u, w = c1 * a + 1j * s1 * b, 1j * s1 * a + c1 * b
                u = u * np.exp(1j * ph[i])
                taps[i] = t[i] * np.abs(u) ** 2
                u = u * np.sqrt(1 - t[i])
                c2, s2 = np.cos(self.kappa[i, 1]), np.sin(self.kappa[i, 1])
                f[m], f[m + 1] = c2 * u + 1j * s2 * w, 1j * s2 * u + c2 * w
        for m in range(self.n):
            g = 2 * k + m
            f[m] = f[m] * np.exp(1j * ph[g])
            taps[g] = t[g] * np.abs(f[m]) ** 2
            f[m] = f[m] * np.sqrt(1 - t[g])
        return f.T, taps.T

    def _propagate_backward(self, v, x):
        """Fields leaving the input ports (B, n) and true tap powers (B, h) of light injected at the outputs:
        every element in reverse order, transposed (the couplers are symmetric); a tap reads the light
        arriving at it, before its own loss."""
        ph = self._phases(v)
        k, t = self.k, self.t
        f = np.array(x, dtype=complex).T.copy()
        taps = np.zeros((self.h, f.shape[1]))
        for m in range(self.n):
            g = 2 * k + m
            taps[g] = t[g] * np.abs(f[m]) ** 2
            f[m] = f[m] * np.sqrt(1 - t[g]) * np.exp(1j * ph[g])
        for col in reversed(self.top.columns):
            for i in col:
                m = self.top.mzis[i][1]
                c2, s2 = np.cos(self.kappa[i, 1]), np.sin(self.kappa[i, 1])
                u, w = c2 * f[m] + 1j * s2 * f[m + 1], 1j * s2 * f[m] + c2 * f[m + 1]
                taps[i] = t[i] * np.abs(u) ** 2
                u = u * np.sqrt(1 - t[i]) * np.exp(1j * ph[i])
                c1, s1 = np.cos(self.kappa[i, 0]), np.sin(self.kappa[i, 0])
                a, b = c1 * u + 1j * s1 * w, 1j * s1 * u + c1 * w
                taps[k + i] = t[k + i] * np.abs(a) ** 2
                f[m], f[m + 1] = a * np.sqrt(1 - t[k + i]) * np.exp(1j * ph[k + i]), b
        return f.T, taps.T

    def _light(self):
        """(fields leaving the chip, tap powers) of the injected light, from the side it was injected."""
        if self._x is None:
            raise RuntimeError("inject first")
        go = self._propagate if self._side == "input" else self._propagate_backward
        return go(self.v, self._x)

    def _shape(self, a):
        return a[0] if self._single else a

    def read_taps(self, direction="forward"):
        _, p = self._light()
        if direction != ("forward" if self._side == "input" else "backward"):
            p = np.zeros_like(p)  # no light travels that way: the gratings of that direction see none
        p = np.where(self.dark, 0.0, p)
        r = p + self.shot * np.sqrt(np.clip(p, 0, None) * self.full_scale) * self._rng.normal(size=p.shape)
        r = self.gain * r + self.offset + self.read_mw * self._rng.normal(size=p.shape)
        r = np.round(np.clip(r / self.full_scale, 0, 1) * 4095) / 4095 * self.full_scale
        return self._shape(r)

    def read_outputs(self):
        y, _ = self._light()
        return self._shape(np.abs(y) ** 2 + 1e-5 * self._rng.normal(size=y.shape))

    def read_outputs_coherent(self):
        if not self.capabilities.coherent_readout:
            raise NotImplementedError("no coherent analyzer")
        y, _ = self._light()
        return self._shape(y + 1e-4 * (self._rng.normal(size=y.shape) + 1j * self._rng.normal(size=y.shape)))

    # ---------------------------------------------------------------- tests only
    def true_unitary(self, v):
        return self._propagate(np.asarray(v, dtype=float), np.eye(self.n))[0].T
