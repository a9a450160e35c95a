"""Shared helpers of the training tests (no tests here): ideal chips with their nominal calibrations."""

from tapmesh.calibration import AsBuilt, Calibration, Noise, VirtualChip

# A tap fraction small enough that the time-reversed adjoint of the sum pass equals the backward one to
# ~1e-8: the in-situ identities are exact only for a lossless mesh (see docs/training.md).
EXACT_TAP = 1e-9


def nominal(topology, tap_fraction):
    return Calibration.nominal(topology, tap_fraction=tap_fraction)


def ideal_chip(topology, tap_fraction=EXACT_TAP, noise=None, seed=0):
    """(VirtualChip, its nominal calibration) of a perfect chip: AsBuilt.ideal, no noise by default."""
    chip = VirtualChip(topology, AsBuilt.ideal(topology, tap_fraction=tap_fraction), noise or Noise.none(), seed=seed)
    return chip, nominal(topology, tap_fraction)
