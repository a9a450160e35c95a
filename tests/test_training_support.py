"""Shared helpers of the training tests (no tests here): ideal and as-built chips with their calibrations."""

import numpy as np

from calibration import AsBuilt, Noise, VirtualChip

try:  # the calibrated model of the calibration package
    from calibration import Calibration

    def nominal(topology, tap_fraction):
        return Calibration.nominal(topology, tap_fraction=tap_fraction)

except ImportError:  # until calibration lands: the design values, as Calibration.nominal gives them
    import equinox as eqx
    import jax.numpy as jnp

    import circuits

    class _Nominal:
        def __init__(self, topology, alpha=0.5, tap_fraction=0.02):
            self.topology, self.alpha = topology, alpha
            self.tap_fraction = np.full(topology.n_shifters, tap_fraction)

        def mesh_params(self, phases):
            p = circuits.MeshParams.zeros(self.topology).with_phases(jnp.asarray(phases))
            return eqx.tree_at(lambda q: q.tap_fraction, p, jnp.asarray(self.tap_fraction))

        def voltages_for_phases(self, phases):
            return np.sqrt(np.mod(np.asarray(phases, dtype=float), 2 * np.pi) / self.alpha)

    def nominal(topology, tap_fraction):
        return _Nominal(topology, tap_fraction=tap_fraction)


# A tap fraction small enough that the time-reversed adjoint of the sum pass equals the backward one to
# ~1e-8: the in-situ identities are exact only for a lossless mesh (see docs/training.md).
EXACT_TAP = 1e-9


def ideal_chip(topology, tap_fraction=EXACT_TAP, noise=None, seed=0):
    """(VirtualChip, its nominal calibration) of a perfect chip: AsBuilt.ideal, no noise by default."""
    chip = VirtualChip(topology, AsBuilt.ideal(topology, tap_fraction=tap_fraction), noise or Noise.none(), seed=seed)
    return chip, nominal(topology, tap_fraction)
