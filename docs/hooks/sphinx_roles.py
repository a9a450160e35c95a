"""griffe extension: Sphinx roles in the docstrings become cross-references of the API reference.

The docstrings use Sphinx roles (``:class:`Calibration```, ``:func:`~tapmesh.circuits.propagate```),
which mkdocstrings does not read. After a package is loaded, each role is resolved from the scope of the
object whose docstring holds it (griffe's name resolution) and replaced by an optional autorefs link:
a link where the target is in the reference, plain code where it is not (a private helper, a module not
rendered), so that the build never needs the docstrings to change style.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([A-Za-z_][\w.]*)(\(\))?`")


def _resolve(obj: griffe.Object, target: str) -> str | None:
    if target.startswith("tapmesh.") or target == "tapmesh":
        return target
    head, _, rest = target.partition(".")
    scope = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return None


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        short, target, call = match[1], match[2], match[3] or ""
        title = (target.rpartition(".")[2] if short else target) + call
        path = _resolve(obj, target)
        if path is None:
            return f"`{title}`"
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return ROLE.sub(replace, text)


def _walk(obj: griffe.Object, seen: set[int]):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member, seen)


class SphinxRoles(griffe.Extension):
    """Rewrites the Sphinx roles of every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:  # noqa: ARG002
        for obj in _walk(pkg, set()):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
