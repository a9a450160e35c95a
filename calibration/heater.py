"""The thermo-optic heater law shared by the simulated chip and the calibrated model.

Per heater i (canonical order θ…, φ…, γ…)::

    P_i = V_i²    (0 for a dead heater)
    φ_i = φ0_i + α_i · (P_i + Σ_j X_ij P_j) + β_i · V_i³

with φ0 in rad, α in rad/V², β in rad/V³ and X the thermal crosstalk (zero diagonal; a dense array or a
sparse :class:`tapmesh.calibration.Crosstalk`: anything with ``X @ p``). See docs/calibration.md.
"""

from __future__ import annotations

import numpy as np


def heater_phases(voltages, phase_offsets, alpha, beta, crosstalk, dead=()) -> np.ndarray:
    """Phases (rad, not wrapped) of every heater at ``voltages`` (V), numpy."""
    v = np.asarray(voltages, dtype=float)
    power = v**2
    cubic = beta * v**3
    if len(dead):
        dead = list(dead)
        power[dead] = 0.0
        cubic[dead] = 0.0
    return phase_offsets + alpha * (power + crosstalk @ power) + cubic
