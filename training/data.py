"""Offline data sets for photonic networks (scikit-learn generators and bundled data; no downloads).

Every loader returns a :class:`Dataset` with features scaled to ``[0, 1]`` (min–max over the training
split, clipped), integer labels, and a fixed train/test split drawn from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Dataset:
    """A classification task: ``x_*`` (samples, features) in [0, 1], ``y_*`` integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def batches(self, batch_size: int, rng: np.random.Generator):
        """Shuffled training mini-batches ``(x, y)`` covering the training set once."""
        order = rng.permutation(len(self.y_train))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield self.x_train[idx], self.y_train[idx]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"features={self.n_features}, classes={self.n_classes})"
        )


def _finish(name, x, y, test_size, seed, scale=True) -> Dataset:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    if scale:
        lo, hi = x_train.min(axis=0), x_train.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        x_train = np.clip((x_train - lo) / span, 0.0, 1.0)
        x_test = np.clip((x_test - lo) / span, 0.0, 1.0)
    return Dataset(name, x_train, y_train, x_test, y_test, int(y.max()) + 1)


def moons(n_samples: int = 1000, noise: float = 0.1, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """Two interleaved half circles (``sklearn.datasets.make_moons``)."""
    x, y = skd.make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _finish("moons", x, y, test_size, seed)


def circles(
    n_samples: int = 1000, noise: float = 0.08, factor: float = 0.5, test_size: float = 0.25, seed: int = 0
) -> Dataset:
    """A disc inside a ring (``sklearn.datasets.make_circles``)."""
    x, y = skd.make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _finish("circles", x, y, test_size, seed)


def ring(
    n_samples: int = 1000,
    inner: float = 0.45,
    outer: float = 0.8,
    noise: float = 0.0,
    test_size: float = 0.25,
    seed: int = 0,
) -> Dataset:
    """Points uniform in the square [−1, 1]²; class 1 inside the annulus ``inner < r < outer``, else 0.

    Label noise: a fraction ``noise`` of the labels is flipped."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n_samples, 2))
    r = np.hypot(x[:, 0], x[:, 1])
    y = ((r > inner) & (r < outer)).astype(np.int32)
    flip = rng.random(n_samples) < noise
    y = np.where(flip, 1 - y, y)
    return _finish("ring", x, y, test_size, seed)


def digits(test_size: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes): 64 features, pixel/16."""
    data = skd.load_digits()
    ds = _finish("digits", data.data / 16.0, data.target, test_size, seed, scale=False)
    return ds


def iris(test_size: float = 0.3, seed: int = 0) -> Dataset:
    """Fisher's iris (150 samples, 4 features, 3 classes)."""
    data = skd.load_iris()
    return _finish("iris", data.data, data.target, test_size, seed)


LOADERS = {"moons": moons, "circles": circles, "ring": ring, "digits": digits, "iris": iris}


def load(name: str, **kwargs) -> Dataset:
    """A data set by name: ``moons``, ``circles``, ``ring``, ``digits`` or ``iris``."""
    try:
        return LOADERS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(LOADERS)}") from None
