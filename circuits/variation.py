"""Fabrication variation → model parameters: how nm of width, thickness, gap and path length become δ, φ0,
loss and tap fraction.

A strip waveguide in 220 nm SOI: a change of width w or thickness t moves the effective index (``dneff_dw``,
``dneff_dt``); a directional coupler's coupling coefficient falls off as ``exp(−γ·gap)`` with γ the
evanescent decay constant in the cladding, so a gap or index change scales its coupling angle κ = C·L.
The derivation, the numbers and their sources are in ``docs/yield.md``. Units: nm for geometry errors,
µm for lengths and wavelength, rad for phases and δ, dB for loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tapmesh.circuits import models

NEFF = 2.34
"""Effective index of the strip waveguide at 1.55 µm (the default of :func:`tapmesh.circuits.models.waveguide`)."""

CLADDING_INDEX = 1.444
"""Refractive index of the oxide cladding."""


@dataclass(frozen=True)
class Sensitivities:
    """First-order sensitivities of a 500 × 220 nm SOI strip waveguide, TE0 at ``wl`` (see ``docs/yield.md``).

    Attributes:
        wl: wavelength, µm.
        neff: effective index.
        dneff_dw: effective-index change per nm of waveguide width, 1/nm (ring resonances move
            λ·dneff_dw/ng ≈ 1 nm per nm of width with ng = 4.2).
        dneff_dt: per nm of silicon thickness, 1/nm (≈ 1.8 nm of ring resonance per nm).
        gap_um: design gap of the 50:50 directional couplers, µm.
        arm_length_um: length of each heated segment (an MZI arm, an input or output segment), µm.
        loss_db_cm: propagation loss at the design width, dB/cm.
        dlnloss_dw: relative change of the (sidewall-scattering) loss per nm of width, 1/nm (narrower
            guides lose more).
    """

    wl: float = models.WL0
    neff: float = NEFF
    dneff_dw: float = 2.7e-3
    dneff_dt: float = 5.0e-3
    gap_um: float = 0.2
    arm_length_um: float = 100.0
    loss_db_cm: float = 2.0
    dlnloss_dw: float = -0.01

    @property
    def k0(self) -> float:
        """Free-space wavenumber 2π/λ, 1/µm."""
        return 2 * np.pi / self.wl

    @property
    def decay_per_um(self) -> float:
        """γ = k0·sqrt(neff² − n_clad²): field decay constant in the cladding between two guides, 1/µm."""
        return self.k0 * np.sqrt(self.neff**2 - CLADDING_INDEX**2)

    @property
    def dlnc_dgap(self) -> float:
        """d ln C / d gap = −γ, per nm (C ∝ exp(−γ·gap))."""
        return -self.decay_per_um * 1e-3

    @property
    def dlnc_dneff(self) -> float:
        """d ln C / d neff = −gap·dγ/dneff = −gap·k0²·neff/γ (per unit of index)."""
        return -self.gap_um * self.k0**2 * self.neff / self.decay_per_um

    def coupling_log_change(self, d_width_nm, d_thickness_nm, d_gap_nm):
        """Δ ln C of a coupler whose guides are ``d_width_nm`` wider, ``d_thickness_nm`` thicker and whose gap
        is ``d_gap_nm`` wider than drawn (arrays broadcast). A width bias also narrows the gap: pass
        ``d_gap_nm = gap noise − d_width_nm`` for a lithographic edge bias (what :mod:`wafer` does)."""
        d_neff = self.dneff_dw * np.asarray(d_width_nm) + self.dneff_dt * np.asarray(d_thickness_nm)
        return self.dlnc_dgap * np.asarray(d_gap_nm) + self.dlnc_dneff * d_neff

    def splitting_error(self, dlnc):
        """δ = κ − π/4 of a 50:50 coupler whose coupling C changed by ``dlnc`` (κ = C·L ∝ C), rad."""
        kappa0 = float(models.KAPPA_50_50)
        return kappa0 * np.expm1(np.asarray(dlnc))

    def tap_fraction(self, tap_fraction, dlnc):
        """Tap fraction t = sin²κ_t of a weak coupler whose κ_t scales with the same ``dlnc`` (design
        ``tap_fraction`` at dlnc = 0)."""
        kappa = np.arcsin(np.sqrt(np.asarray(tap_fraction))) * np.exp(np.asarray(dlnc))
        return np.sin(kappa) ** 2

    def phase_error(self, d_width_nm, d_thickness_nm, d_length_nm):
        """Propagation phase error of one segment of ``arm_length_um``: k0·(L·Δneff + neff·ΔL), rad
        (``d_length_nm`` is the drawn/etched path-length error of the segment)."""
        d_neff = self.dneff_dw * np.asarray(d_width_nm) + self.dneff_dt * np.asarray(d_thickness_nm)
        return self.k0 * (self.arm_length_um * d_neff + self.neff * 1e-3 * np.asarray(d_length_nm))

    def segment_loss_db(self, d_width_nm):
        """Loss of one segment of ``arm_length_um``, dB: the nominal dB/cm scaled by exp(dlnloss_dw·Δw)."""
        per_cm = self.loss_db_cm * np.exp(self.dlnloss_dw * np.asarray(d_width_nm))
        return per_cm * self.arm_length_um * 1e-4

    @property
    def delta_per_nm(self) -> dict[str, float]:
        """dδ/dx at zero error for a width edge bias (gap narrowing with it), thickness and gap, rad/nm."""
        kappa0 = float(models.KAPPA_50_50)
        return {
            "width_bias": float(kappa0 * (self.dlnc_dneff * self.dneff_dw - self.dlnc_dgap)),
            "thickness": float(kappa0 * self.dlnc_dneff * self.dneff_dt),
            "gap": float(kappa0 * self.dlnc_dgap),
        }
