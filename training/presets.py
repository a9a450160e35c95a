"""Named presets: network and training settings measured to work together, in one place.

The flow (``tapmesh flow``), the README's API tour and the benchmarks take their settings from here, so
that what a new user copies is what was measured (docs/training.md, "what was tried").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True)
class Preset:
    """Keyword arguments for :class:`~tapmesh.training.PhotonicNetwork` (``network``) and for
    :func:`~tapmesh.training.train` (``train``)::

        net = PhotonicNetwork(mesh, n_layers=3, n_classes=2, chips=chip, calibrations=cal, **IN_SITU.network)
        result = train(net, data.moons(), method="insitu", epochs=20, **IN_SITU.train)
    """

    name: str
    description: str
    network: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "network", MappingProxyType(dict(self.network)))
        object.__setattr__(self, "train", MappingProxyType(dict(self.train)))


IN_SITU = Preset(
    name="in_situ",
    description=(
        "3-layer networks on a calibrated, noisy chip (needs coherent readout): electro-optic activation, "
        "amplitude+phase encoding, Adam at 0.05 with a cosine decay, the best epoch by training loss kept"
    ),
    network={"activation": "eo", "encoding": "amplitude_phase"},
    train={"learning_rate": 0.05, "schedule": "cosine", "restore_best": True},
)
"""What ``tapmesh flow`` trains with: moons 98.8 % in situ on the demo chip (README, Training)."""

PRESETS: Mapping[str, Preset] = MappingProxyType({IN_SITU.name: IN_SITU})


def preset(name: str) -> Preset:
    """The preset called ``name`` (a key of :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
