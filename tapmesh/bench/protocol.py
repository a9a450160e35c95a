"""The bench's SCPI command set, and the binary blocks it moves (IEEE 488.2 definite-length, CRC-checked).

One command per line (``\\n``), ASCII, case-insensitive; queries end in ``?``; channels are 1-based;
numbers in SI-ish bench units (V, mA, mW, √mW). Binary payloads are IEEE 488.2 definite-length blocks
``#<d><length><bytes>``, little-endian; every block a query returns carries 4 more bytes at its end, the
CRC-32 (zlib) of the payload, so a garbled transfer is caught. The same set is spoken by
:mod:`tapmesh.bench.emulator` and expected by :class:`tapmesh.bench.BenchChip`; docs/bench.md has the
table with the reasons. Commands:

====================================  ==========================================================================
``*IDN?``                              ``maker,model,serial,version``
``*RST`` / ``*CLS``                    reset the bench state / clear the error queue
``SYST:ERR?``                          ``<code>,"<message>"`` (``0,"No error"``); trips are code ``301``
``SOUR:VOLT <ch>,<v>[,<ch>,<v>…]``     set heater channel voltages, V (``SOUR:CURR``: current drive, mA)
``SOUR:VOLT?``                         applied value of every channel, comma-separated (a tripped one reads 0)
``SOUR:VOLT:RANG?``                    ``<min>,<max>``: the source's hardware range
``OUTP:TRIP?`` / ``OUTP:TRIP:CLE``     tripped channels (comma-separated, empty if none) / clear trips
``ROUT:DIR INP|OUTP`` / ``ROUT:DIR?``  optical switch: light into the input ports (forward) or the outputs
``LIGH ON|OFF`` / ``LIGH?``            laser shutter (dark frames are taken with it closed)
``SOUR:FIEL <block>``                  fields to launch, complex128 (batch, n_modes) as float64 (re, im) pairs;
                                       one camera frame / meter reading per row
``CAM:SIZE?`` / ``CAM:FORM?``          ``rows,cols`` / ``UINT16``
``CAM:FRAM? <tag>[,<count>]``          one frame per launched field (``count`` of them: with the shutter
                                       closed, dark frames), block of uint16 (count, rows, cols); numbered
                                       ``tag, tag+1, …`` (the emulator keys its noise by it)
``MEAS:POW? <tag>``                    output power meters, block of float64 (batch, n_modes), mW
``MEAS:FIEL? <tag>``                   coherent output analyzer, block of float64 (batch, n_modes, 2), √mW;
                                       error ``-241`` when the bench has none
``DIAG:FAULT <kind>[,<arg>]``          emulator only: arm a fault on the next query (drop, stall, garble,
                                       trip,<ch>); ``DIAG:FAULT:COUN?`` the faults still armed
====================================  ==========================================================================
"""

from __future__ import annotations

import zlib

import numpy as np

ERROR_NONE = 0
ERROR_TRIP = 301
ERROR_NO_HARDWARE = -241
ERROR_RANGE = -222
ERROR_UNDEFINED = -113
ERROR_SYNTAX = -102


def crc32(payload: bytes) -> int:
    """CRC-32 (zlib) of a block's payload."""
    return zlib.crc32(payload) & 0xFFFFFFFF


def ieee_block(payload: bytes, with_crc: bool = True) -> bytes:
    """``#<d><length><payload>[crc32 LE]``: an IEEE 488.2 definite-length block."""
    if with_crc:
        payload = payload + crc32(payload).to_bytes(4, "little")
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


def split_crc(block: bytes) -> tuple[bytes, bool]:
    """(payload, crc_ok) of a block's bytes as returned by a query (payload + 4 CRC bytes)."""
    if len(block) < 4:
        return b"", False
    payload, tail = block[:-4], block[-4:]
    return payload, int.from_bytes(tail, "little") == crc32(payload)


def encode_fields(x: np.ndarray) -> np.ndarray:
    """(batch, n) complex → flat float64 (re, im, re, im, …): what ``SOUR:FIEL`` carries."""
    x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.complex128)
    return x.view(np.float64).ravel()


def decode_fields(values: np.ndarray, n_modes: int) -> np.ndarray:
    """Inverse of :func:`encode_fields`: flat float64 → (batch, n_modes) complex128."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.size % (2 * n_modes):
        raise ValueError(f"field block of {values.size} floats is not a whole number of {n_modes}-mode fields")
    return values.view(np.complex128).reshape(-1, n_modes)


def next_message(buffer: bytes) -> tuple[bytes, bytes] | None:
    """Split the first complete message off ``buffer`` (a ``\\n``-terminated line, whose argument may be
    a definite-length block holding any bytes); ``None`` while it is incomplete. Returns (message, rest)."""
    newline = buffer.find(b"\n")
    hash_at = buffer.find(b"#")
    if hash_at == -1 or (newline != -1 and newline < hash_at):
        if newline == -1:
            return None
        return buffer[:newline].rstrip(b"\r"), buffer[newline + 1 :]
    if len(buffer) < hash_at + 2:
        return None
    digits = buffer[hash_at + 1 : hash_at + 2]
    if not digits.isdigit() or digits == b"0":
        if newline == -1:
            return None  # not a block after all: wait for the end of the line
        return buffer[:newline].rstrip(b"\r"), buffer[newline + 1 :]
    d = int(digits)
    if len(buffer) < hash_at + 2 + d:
        return None
    length_text = buffer[hash_at + 2 : hash_at + 2 + d]
    if not length_text.isdigit():
        return (buffer[:newline], buffer[newline + 1 :]) if newline != -1 else None
    end = hash_at + 2 + d + int(length_text)
    if len(buffer) < end + 1:
        return None
    rest = buffer[end:]
    stop = rest.find(b"\n")
    if stop == -1:
        return None
    return buffer[:end], rest[stop + 1 :]


def block_argument(message: bytes) -> tuple[str, bytes]:
    """(command header, block payload) of a message carrying a definite-length block."""
    hash_at = message.find(b"#")
    header = message[:hash_at].decode("ascii", "replace").strip()
    d = int(message[hash_at + 1 : hash_at + 2])
    length = int(message[hash_at + 2 : hash_at + 2 + d])
    start = hash_at + 2 + d
    return header, message[start : start + length]
