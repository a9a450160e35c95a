"""circuits: mesh topology, SAX component models and reference circuits, and the batched JAX mesh engine.

Conventions (``DESIGN.md``): lengths and wavelength in µm, phases in radians, mode 0 the top waveguide,
fields as column vectors ``y = U @ x`` (batches as rows, ``y = x @ U.T``).
"""

from tapmesh.circuits import models
from tapmesh.circuits.decompositions import (
    analyzer_settings,
    check_unitary,
    clements,
    decompose,
    fidelity,
    generator_settings,
    haar_unitary,
    mzi_matrix,
    reck,
)
from tapmesh.circuits.engine import propagate, unitary
from tapmesh.circuits.errors import (
    CircuitsError,
    DTypeError,
    NonFiniteError,
    NotRealizableError,
    NotUnitaryError,
    ParamsError,
    ShapeError,
    TopologyError,
)
from tapmesh.circuits.params import MeshParams
from tapmesh.circuits.reference import instance_settings, mesh_netlist, reference_unitary, sax_circuit
from tapmesh.circuits.topology import (
    KINDS,
    MeshTopology,
    PhaseShifter,
    analyzer,
    generator,
    rectangular,
    topology,
    triangular,
)

__all__ = [
    "KINDS",
    "CircuitsError",
    "DTypeError",
    "MeshParams",
    "MeshTopology",
    "NonFiniteError",
    "NotRealizableError",
    "NotUnitaryError",
    "ParamsError",
    "PhaseShifter",
    "ShapeError",
    "TopologyError",
    "analyzer",
    "analyzer_settings",
    "check_unitary",
    "clements",
    "decompose",
    "fidelity",
    "generator",
    "generator_settings",
    "haar_unitary",
    "instance_settings",
    "mesh_netlist",
    "models",
    "mzi_matrix",
    "propagate",
    "reck",
    "reference_unitary",
    "sax_circuit",
    "rectangular",
    "topology",
    "triangular",
    "unitary",
]
