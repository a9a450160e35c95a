"""The camera side of a bench: a small ``Camera`` protocol (frames as 2-D arrays) and the readout that
turns a frame into tap powers through the chip map's grating positions.

Readout (the seed paper's camera readout, Pai et al. 2023): a dark frame (light off, averaged) is
subtracted, and the counts in a square window of half-width ``window_px`` around each grating's spot are
summed and scaled by ``mw_per_count``. Grating positions (µm) map to pixels through the config's affine
``transform``. docs/bench.md shows the geometry and why the window is square and fixed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from tapmesh.bench.errors import BenchConfigError


@runtime_checkable
class Camera(Protocol):
    """An IR camera imaging the tap gratings."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of a frame, pixels."""
        ...

    def acquire(self, count: int, tag: int) -> np.ndarray:
        """``count`` frames (count, rows, cols) in ADC counts, one per field launched last; ``tag`` is
        the sequence number of the first (``tag + k`` for the k-th)."""
        ...


def to_pixels(transform: np.ndarray, positions_um: np.ndarray) -> np.ndarray:
    """(…, 2) grating positions (x, y) in µm → (…, 2) pixel coordinates (col, row)."""
    a = np.asarray(transform, dtype=float)
    p = np.asarray(positions_um, dtype=float)
    return p @ a[:, :2].T + a[:, 2]


def check_windows(taps_um, transform, window_px: int) -> None:
    """Raise :class:`BenchConfigError` where the windows of two spots (half-width ``window_px``) overlap."""
    centres = np.rint(to_pixels(transform, taps_um)).reshape(-1, 2)
    gap = np.abs(centres[:, None, :] - centres[None, :, :]).max(axis=2)
    np.fill_diagonal(gap, np.inf)
    if gap.min() <= 2 * window_px:
        i, j = np.unravel_index(np.argmin(gap), gap.shape)
        raise BenchConfigError(f"bench config [camera]: windows of ±{window_px} px around tap spots {i} "
                               f"and {j} overlap ({gap.min():.0f} px apart); lower window_px or magnify the image")


class SpotReadout:
    """Frame → tap powers for one chip map and camera geometry.

    Args:
        taps_um: (2, H, 2) forward/backward grating positions, µm (:class:`tapmesh.bench.config.ChipGeometry`).
        transform: (2, 3) µm → pixel affine.
        shape: (rows, cols) of a frame.
        window_px: half-width of the summed window, px (a (2w+1)² square around the rounded spot centre).
        mw_per_count: mW per summed ADC count.

    Raises:
        BenchConfigError: a window falls outside the frame, or two windows overlap.
    """

    def __init__(self, taps_um, transform, shape, window_px: int, mw_per_count: float):
        self.shape = (int(shape[0]), int(shape[1]))
        self.window_px = int(window_px)
        self.mw_per_count = float(mw_per_count)
        centres = np.rint(to_pixels(transform, taps_um)).astype(int)  # (2, H, 2) col, row
        self.centres = centres
        w = self.window_px
        offsets = np.arange(-w, w + 1)
        cols = centres[..., 0, None, None] + offsets[None, :]          # (2, H, 1, 2w+1)
        rows = centres[..., 1, None, None] + offsets[:, None]          # (2, H, 2w+1, 1)
        rows, cols = np.broadcast_arrays(rows, cols)
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= self.shape[0] or cols.max() >= self.shape[1]:
            raise BenchConfigError(
                f"bench config [camera]: a tap window of ±{w} px falls outside the {self.shape[0]}×{self.shape[1]} "
                "frame (check transform)"
            )
        check_windows(taps_um, transform, w)
        self._flat = (rows * self.shape[1] + cols).reshape(2, centres.shape[1], -1)  # (2, H, (2w+1)²) flat pixel indices
        self.dark = np.zeros(self.shape)

    def set_dark(self, frames: np.ndarray) -> None:
        """Average dark frames (count, rows, cols) into the dark frame subtracted from every frame."""
        frames = np.asarray(frames, dtype=float)
        if frames.ndim != 3 or frames.shape[1:] != self.shape:
            raise ValueError(f"dark frames must have shape (count, {self.shape[0]}, {self.shape[1]}), got {frames.shape}")
        self.dark = frames.mean(axis=0)

    def taps(self, frames: np.ndarray, direction: str) -> np.ndarray:
        """Tap powers (count, H) in mW of the ``"forward"`` or ``"backward"`` gratings in ``frames``."""
        g = 0 if direction == "forward" else 1
        frames = np.asarray(frames, dtype=float).reshape(len(frames), -1)
        signal = frames[:, self._flat[g]] - self.dark.ravel()[self._flat[g]]
        return signal.sum(axis=2) * self.mw_per_count

    def window_noise_mw(self, frames: np.ndarray) -> float:
        """RMS of a tap reading in dark frames (count ≥ 2), mW: the camera's read noise per tap."""
        frames = np.asarray(frames, dtype=float)
        if len(frames) < 2:
            return 0.0
        readings = np.concatenate([self.taps(frames, "forward"), self.taps(frames, "backward")], axis=1)
        return float(np.sqrt(np.mean(readings.var(axis=0, ddof=1))))
