"""Which heater pairs the calibration fits crosstalk for: from the chip's own geometry, not a fixed grid.

:func:`crosstalk_pairs` takes explicit pairs, or heater positions from a chip map (a ``pcells.chip_map``
object with ``heater_positions()``, or an (H, 2) array, µm) and keeps the pairs within a distance, or
falls back to the mesh's neighbour grid (:func:`~tapmesh.calibration.crosstalk.neighbour_pairs`). See
docs/calibration.md ("Crosstalk neighbours").
"""

from __future__ import annotations

import numpy as np

from tapmesh import circuits
from tapmesh.calibration.crosstalk import neighbour_pairs
from tapmesh.calibration.errors import CalibrationError

NEAREST_FACTOR = 1.6
"""Default reach of a neighbour pair: this many times the median nearest-neighbour distance."""


def positions_of(chip_map, h: int) -> np.ndarray:
    """(H, 2) heater centres, µm, from a chip map object (``heater_positions()``) or an array."""
    if hasattr(chip_map, "heater_positions"):
        pos = chip_map.heater_positions()
        pos = pos[0] if isinstance(pos, tuple) else pos
    else:
        pos = chip_map
    pos = np.asarray(pos, dtype=float)
    if pos.shape != (h, 2) or not np.all(np.isfinite(pos)):
        raise CalibrationError(f"chip_map must give finite heater positions of shape ({h}, 2) µm, got {pos.shape}")
    return pos


def pairs_within(pos: np.ndarray, distance_um: float | None = None) -> np.ndarray:
    """(P, 2) ordered pairs (receiver, source) of heaters whose centres are within ``distance_um`` (µm;
    default :data:`NEAREST_FACTOR` × the median nearest-neighbour distance), both directions."""
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    if distance_um is None:
        distance_um = NEAREST_FACTOR * float(np.median(d.min(axis=1)))
    if not (np.isfinite(distance_um) and distance_um > 0):
        raise CalibrationError(f"neighbour_distance_um must be a positive distance in µm, got {distance_um!r}")
    return np.argwhere(d <= distance_um)


def crosstalk_pairs(topology: circuits.MeshTopology, neighbours=None, chip_map=None,
                    distance_um: float | None = None) -> np.ndarray:
    """The (P, 2) (receiver, source) pairs to fit: ``neighbours`` (pairs, made symmetric), else pairs of
    ``chip_map`` within ``distance_um``, else the mesh grid's :func:`neighbour_pairs`."""
    h = topology.n_shifters
    if neighbours is not None:
        p = np.asarray(neighbours)
        if p.size == 0:
            return np.zeros((0, 2), dtype=int)
        if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
            raise CalibrationError(f"neighbours must be (P, 2) integer heater pairs, got shape {p.shape}, {p.dtype}")
        if p.min() < 0 or p.max() >= h or np.any(p[:, 0] == p[:, 1]):
            raise CalibrationError(f"neighbours must pair distinct heaters 0..{h - 1}")
        both = np.concatenate([p, p[:, ::-1]])
        return np.unique(both, axis=0).astype(int)
    if chip_map is not None:
        if hasattr(chip_map, "neighbour_pairs") and distance_um is None:
            p = np.asarray(chip_map.neighbour_pairs(), dtype=int).reshape(-1, 2)
            return np.unique(np.concatenate([p, p[:, ::-1]]), axis=0)
        return pairs_within(positions_of(chip_map, h), distance_um)
    return neighbour_pairs(topology)
