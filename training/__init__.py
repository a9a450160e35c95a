"""training: photonic networks of meshes and their gradient methods (autodiff, in situ, analog, two-pass).

    net = PhotonicNetwork(circuits.rectangular(4), n_layers=3, n_classes=2, chips=chip, calibrations=cal)
    result = train(net, data.moons(), method="insitu", epochs=30)
    result.history.plot("curves.png")

Every gradient method has one interface, ``method(net, phases, features, labels) -> GradientResult``
(phase gradients per layer, chip passes used, the loss); see :mod:`tapmesh.training.gradients`.
"""

from tapmesh.training import data
from tapmesh.training.archive import TrainingArchive, load_training_archive
from tapmesh.training.data import Dataset
from tapmesh.training.gradients import (
    METHODS,
    GradientResult,
    autodiff,
    cosine_similarity,
    dfa,
    insitu,
    insitu_analog,
    measure_layer_gradient,
    spsa,
    two_pass,
)
from tapmesh.training.network import Activation, Encoding, PhotonicNetwork, port_groups
from tapmesh.training.noise import FieldNoise
from tapmesh.training.presets import IN_SITU, PRESETS, Preset, preset
from tapmesh.training.train import (
    History,
    TrainingArgumentError,
    TrainResult,
    plot_decision_boundary,
    plot_histories,
    plot_training,
    train,
)

__all__ = [
    "IN_SITU",
    "METHODS",
    "PRESETS",
    "Preset",
    "TrainingArgumentError",
    "plot_training",
    "preset",
    "Activation",
    "Dataset",
    "Encoding",
    "FieldNoise",
    "GradientResult",
    "History",
    "PhotonicNetwork",
    "TrainResult",
    "TrainingArchive",
    "load_training_archive",
    "autodiff",
    "cosine_similarity",
    "data",
    "dfa",
    "insitu",
    "insitu_analog",
    "measure_layer_gradient",
    "plot_decision_boundary",
    "plot_histories",
    "port_groups",
    "spsa",
    "train",
    "two_pass",
]
