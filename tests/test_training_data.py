"""Offline data sets of the training package."""

import numpy as np
import pytest

from tapmesh.training import data


@pytest.mark.parametrize("name", sorted(data.LOADERS))
def test_data_sets_load_offline_scaled_and_split(name):
    ds = data.load(name)
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == ds.n_features
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert ds.x_test.min() >= 0.0 and ds.x_test.max() <= 1.0
    assert set(np.unique(ds.y_train)) == set(range(ds.n_classes))
    expected = {"moons": (2, 2), "circles": (2, 2), "ring": (2, 2), "digits": (64, 10), "iris": (4, 3)}[name]
    assert (ds.n_features, ds.n_classes) == expected


def test_data_sets_are_reproducible_and_batches_cover_the_training_set():
    a, b = data.moons(seed=3), data.moons(seed=3)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    seen = np.concatenate([y for _, y in a.batches(64, np.random.default_rng(0))])
    assert len(seen) == len(a.y_train) and np.array_equal(np.sort(seen), np.sort(a.y_train))


def test_ring_labels_follow_the_annulus():
    ds = data.ring(n_samples=400, noise=0.0)
    # undo the min-max scaling back to [-1, 1] only roughly: the label must be a function of the radius
    assert 0.2 < ds.y_train.mean() < 0.8


def test_unknown_data_set_is_rejected():
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("mnist")
