"""mkdocs hook: the API reference reads the sources as the installed namespace ``tapmesh.*``.

The repository keeps the stage folders at top level (``pcells/``, ``circuits/``, ...) and setuptools maps
them to ``tapmesh.pcells``, ``tapmesh.circuits``, ... (``package-dir``). griffe, which mkdocstrings uses to
read the sources statically, does not follow that mapping, so this hook lays out the namespace as links
in ``build/apisrc/tapmesh/`` (ignored by git) before the build; ``mkdocs.yml`` points the handler there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "apisrc"
SUBPACKAGES = {"pcells": "pcells", "circuits": "circuits", "calibration": "calibration", "training": "training"}


def build_tree() -> Path:
    """(Re)create ``build/apisrc/tapmesh`` as links to the repository's folders; returns its parent."""
    package = TREE / "tapmesh"
    if TREE.exists():
        shutil.rmtree(TREE)
    package.mkdir(parents=True)
    for entry in (ROOT / "tapmesh").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name, folder in SUBPACKAGES.items():
        (package / name).symlink_to(ROOT / folder, target_is_directory=True)
    return TREE


def on_startup(command, dirty) -> None:  # noqa: ARG001  (the mkdocs hook signature)
    build_tree()


build_tree()  # also when the hook module is first loaded, before mkdocstrings looks for the sources
