"""The calibrated model of MZI columns in numpy: transfer matrices of a prefix of the mesh, routing voltages.

Used by the calibration stages to deliver designed fields through columns already calibrated (and to
route light through bar states in the sweeps method), without simulating the chip. Conventions are those
of docs/conventions.md.
"""

from __future__ import annotations

import numpy as np

from tapmesh.calibration.calibration import Calibration

TWO_PI = 2 * np.pi

def coupler(kappa):
    """The 2×2 transfer matrix of a directional coupler of coupling angle ``kappa`` (rad; π/4 is 50:50)."""
    return np.array([[np.cos(kappa), 1j * np.sin(kappa)], [1j * np.sin(kappa), np.cos(kappa)]])


def column_transfer(cal: Calibration, phases, columns, with_gamma=False) -> np.ndarray:
    """Model transfer matrix (n, n) of the MZI columns in ``columns`` (in order), optionally then γ; the
    segments' loss and taps (:meth:`Calibration.segment_keep`) and the idle segments' loss included."""
    top_of = cal.topology.mzis
    k_all = cal.topology.n_mzis
    t = cal.tap_fraction
    keep, idle = cal.segment_keep(), cal.idle_keep()
    w = np.eye(cal.topology.n, dtype=np.complex128)
    for c in columns:
        w = idle[c][:, None] * w
        for k in cal.topology.columns[c]:
            m = top_of[k][1]
            theta, phi = phases[k], phases[k_all + k]
            block = (
                coupler(np.pi / 4 + cal.delta[k, 1])
                @ np.diag([np.exp(1j * theta) * keep[k, 2], keep[k, 3]])
                @ coupler(np.pi / 4 + cal.delta[k, 0])
                @ np.diag([np.exp(1j * phi) * keep[k, 0], keep[k, 1]])
            )
            w[m : m + 2, :] = block @ w[m : m + 2, :]
    if with_gamma:
        g = phases[2 * k_all :]
        w = (np.exp(1j * g) * np.sqrt(1 - t[2 * k_all :]) * 10 ** (-np.asarray(cal.output_loss_db) / 20))[:, None] * w
    return w


def routing_voltages(cal: Calibration, targets: dict[int, float]) -> np.ndarray:
    """Voltages with the given heaters at the given phases (per the current heater law, crosstalk
    ignored) and every other heater at 0 V."""
    v = np.zeros(cal.n_heaters)
    for i, phase in targets.items():
        if i in cal.dead_heaters or cal.alpha[i] <= 0:
            continue
        need = np.mod(phase - cal.phase_offsets[i], TWO_PI)
        v[i] = np.sqrt(need / cal.alpha[i])
    return v
