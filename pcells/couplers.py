"""2x2 couplers of a mesh (directional coupler, MMI) with ports ``pitch`` apart, and their single-path twins.

Port convention as :mod:`tapmesh.pcells.cells`: ``o1`` bottom-left, ``o2`` top-left, ``o3`` top-right, ``o4``
bottom-right; ``info["path_length"]`` is the drawn length of one path (for the layout-extracted model).
"""

from __future__ import annotations

import gdsfactory as gf

from .errors import CouplerKindError, PitchError
from .geometry import xs_layer

COUPLER_KINDS = ("dc", "mmi")


def _coupler_dy(pitch: float, offset: float) -> float:
    return pitch / 2 - offset


@gf.cell
def coupler_dc(
    pitch: float = 50.0,
    gap: float = 0.236,
    length: float = 20.0,
    dx: float = 60.0,
    cross_section="strip",
) -> gf.Component:
    """Symmetric directional coupler whose four ports sit ``pitch`` apart (s-bends of ``dx`` µm).

    Ports ``o1`` (0, 0), ``o2`` (0, pitch), ``o3`` (L, pitch), ``o4`` (L, 0). ``info["path_length"]`` is the
    drawn length of either path (both are equal).
    """
    xs = xs_layer(cross_section)
    dy = _coupler_dy(pitch, (xs.width + gap) / 2)
    if dy <= 0:
        raise PitchError(f"pitch {pitch} µm smaller than the coupler width")
    c = gf.Component()
    up = gf.components.bend_s(size=(dx, dy), cross_section=cross_section)
    down = gf.components.bend_s(size=(dx, -dy), cross_section=cross_section)
    st = gf.components.straight(length=length, cross_section=cross_section)
    paths = {}
    for name, y0, b_in, b_out in (("bot", 0.0, up, down), ("top", pitch, down, up)):
        r1 = c << b_in
        r1.dmove((0, y0))
        r2 = c << st
        r2.connect("o1", r1.ports["o2"])
        r3 = c << b_out
        r3.connect("o1", r2.ports["o2"])
        paths[name] = (r1, r3)
    c.add_port("o1", port=paths["bot"][0].ports["o1"])
    c.add_port("o2", port=paths["top"][0].ports["o1"])
    c.add_port("o3", port=paths["top"][1].ports["o2"])
    c.add_port("o4", port=paths["bot"][1].ports["o2"])
    c.info["path_length"] = round(up.info["length"] + down.info["length"] + length, 6)
    c.info["length"] = 2 * dx + length
    return c


@gf.cell
def coupler_mmi(
    pitch: float = 50.0,
    dx: float = 60.0,
    cross_section="strip",
    mmi="mmi2x2",
) -> gf.Component:
    """2x2 MMI fanned out by s-bends so its four ports sit ``pitch`` apart (same port placement as :func:`coupler_dc`)."""
    xs_layer(cross_section)
    m = gf.get_component(mmi, cross_section=cross_section)
    offset = abs(m.ports["o2"].dcenter[1] - m.ports["o1"].dcenter[1]) / 2
    mmi_length = m.ports["o3"].dcenter[0] - m.ports["o1"].dcenter[0]
    dy = _coupler_dy(pitch, offset)
    if dy <= 0:
        raise PitchError(f"pitch {pitch} µm smaller than the MMI width")
    c = gf.Component()
    up = gf.components.bend_s(size=(dx, dy), cross_section=cross_section)
    down = gf.components.bend_s(size=(dx, -dy), cross_section=cross_section)
    b1 = c << up
    b2 = c << down
    b2.dmove((0, pitch))
    mr = c << m
    mr.connect("o1", b1.ports["o2"])
    b3 = c << down
    b3.connect("o1", mr.ports["o4"])
    b4 = c << up
    b4.connect("o1", mr.ports["o3"])
    c.add_port("o1", port=b1.ports["o1"])
    c.add_port("o2", port=b2.ports["o1"])
    c.add_port("o3", port=b4.ports["o2"])
    c.add_port("o4", port=b3.ports["o2"])
    c.info["path_length"] = round(up.info["length"] + down.info["length"] + mmi_length, 6)
    c.info["mmi_length"] = mmi_length
    c.info["length"] = 2 * dx + mmi_length
    return c


@gf.cell
def coupler_twin(
    pitch: float = 50.0,
    straight_length: float = 20.0,
    dx: float = 60.0,
    offset: float = 0.368,
    cross_section="strip",
) -> gf.Component:
    """Single waveguide drawn like one path of a 2x2 coupler (s-bend up, straight, s-bend down).

    A mode that skips an MZI in a column takes this path, so every mode accumulates the same drawn length
    per column and the path-length phases of the mesh reduce to a global phase.
    """
    dy = _coupler_dy(pitch, offset)
    c = gf.Component()
    up = gf.components.bend_s(size=(dx, dy), cross_section=cross_section)
    down = gf.components.bend_s(size=(dx, -dy), cross_section=cross_section)
    r1 = c << up
    r2 = c << gf.components.straight(length=straight_length, cross_section=cross_section)
    r2.connect("o1", r1.ports["o2"])
    r3 = c << down
    r3.connect("o1", r2.ports["o2"])
    c.add_port("o1", port=r1.ports["o1"])
    c.add_port("o2", port=r3.ports["o2"])
    return c


def coupler_pair(kind: str, pitch: float, cross_section, dc_gap: float, dc_length: float, dx: float):
    """(2x2 coupler, its single-path twin) for ``kind`` in ``COUPLER_KINDS``."""
    if kind not in COUPLER_KINDS:
        raise CouplerKindError(f"unknown coupler kind {kind!r}; expected one of {COUPLER_KINDS}")
    xs = xs_layer(cross_section)
    if kind == "dc":
        cp = coupler_dc(pitch=pitch, gap=dc_gap, length=dc_length, dx=dx, cross_section=cross_section)
        twin = coupler_twin(
            pitch=pitch, straight_length=dc_length, dx=dx, offset=(xs.width + dc_gap) / 2, cross_section=cross_section
        )
    else:
        cp = coupler_mmi(pitch=pitch, dx=dx, cross_section=cross_section)
        m = gf.get_component("mmi2x2", cross_section=cross_section)
        offset = abs(m.ports["o2"].dcenter[1] - m.ports["o1"].dcenter[1]) / 2
        twin = coupler_twin(
            pitch=pitch, straight_length=cp.info["mmi_length"], dx=dx, offset=offset, cross_section=cross_section
        )
    return cp, twin
