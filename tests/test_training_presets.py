"""The named training preset and what a TrainResult says about its epochs (which were kept, which was best)."""

import numpy as np
import pytest

from tapmesh import circuits, training

DATA = training.data.moons(n_samples=120)


def test_the_preset_is_what_the_flow_uses_and_cannot_be_changed_by_accident():
    preset = training.IN_SITU
    assert dict(preset.network) == {"activation": "eo", "encoding": "amplitude_phase"}
    assert dict(preset.train) == {"learning_rate": 0.05, "schedule": "cosine", "restore_best": True}
    assert training.preset("in_situ") is preset
    with pytest.raises(TypeError):
        preset.train["learning_rate"] = 1.0  # read-only mapping
    with pytest.raises(ValueError, match="unknown preset"):
        training.preset("fastest")
    net = training.PhotonicNetwork(circuits.rectangular(4), 2, 2, **preset.network)
    assert net.activation.kind == "eo" and net.encoding.kind == "amplitude_phase"


@pytest.mark.parametrize("restore_best", [True, False])
def test_result_names_the_epoch_it_returns_and_the_best_ones(restore_best):
    net = training.PhotonicNetwork(circuits.rectangular(4), 1, 2, activation="abs2", encoding="amplitude_phase")
    result = training.train(net, DATA, "autodiff", epochs=4, learning_rate=0.3, restore_best=restore_best, progress=False)
    h = result.history
    losses = np.asarray(h.train_loss)
    assert result.best_epoch == h.epoch[int(np.argmin(losses))] and result.monitor == "train_loss"
    assert result.epoch == (result.best_epoch if restore_best else h.epoch[-1])
    assert result.test_acc == h.test_acc[result.epoch - 1]
    assert h.best_test_epoch == h.epoch[int(np.argmax(h.test_acc))]
    _, acc = net.evaluate(result.phases, DATA.x_test, DATA.y_test)
    assert acc == pytest.approx(result.test_acc)  # the returned phases are those of result.epoch
    assert f"returned epoch {result.epoch}" in repr(result)
