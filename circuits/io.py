"""Atomic, versioned files: what every stage of tapmesh writes goes through here.

A file is written to a temporary sibling, flushed and fsynced, then renamed over the target, so a crash
or a full disk never leaves a half-written file and never destroys the previous version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (same-directory temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_to_json) + "\n")


def _to_json(value: Any) -> Any:
    """JSON fallback for numpy/JAX scalars and arrays."""
    import numpy as np

    if hasattr(value, "tolist"):
        array = np.asarray(value)
        if np.iscomplexobj(array):
            return {"real": array.real.tolist(), "imag": array.imag.tolist()}
        return array.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
