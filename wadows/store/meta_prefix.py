"""The Transfer Syntax UID written in the file meta of a Part 10 object, read from its first bytes only.

File meta is always Explicit VR Little Endian (PS3.10 7.1), so a few lines read it without pydicom, from a
prefix that may stop anywhere.
"""

from __future__ import annotations

import struct

_PREAMBLE = 128
_MAGIC = b"DICM"
_TRANSFER_SYNTAX = (0x0002, 0x0010)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class MetaIncomplete(Exception):
    """The prefix ends before the Transfer Syntax UID: read more."""


def transfer_syntax_in(prefix: bytes) -> str | None:
    """The Transfer Syntax UID, None when the bytes are not Part 10 or their meta names none.
    Raises MetaIncomplete when the prefix stops too early to tell."""
    if len(prefix) < _PREAMBLE + 4:
        raise MetaIncomplete
    if prefix[_PREAMBLE:_PREAMBLE + 4] != _MAGIC:
        return None
    at = _PREAMBLE + 4
    while True:
        if len(prefix) < at + 8:
            raise MetaIncomplete
        group, element = struct.unpack_from("<HH", prefix, at)
        if group != 0x0002:
            return None  # past the meta group without a Transfer Syntax UID
        vr = prefix[at + 4:at + 6]
        if vr in _LONG_VRS:
            if len(prefix) < at + 12:
                raise MetaIncomplete
            (length,) = struct.unpack_from("<I", prefix, at + 8)
            value_at = at + 12
        else:
            (length,) = struct.unpack_from("<H", prefix, at + 6)
            value_at = at + 8
        if length == 0xFFFFFFFF:
            return None  # undefined length has no place in file meta
        if (group, element) == _TRANSFER_SYNTAX:
            if len(prefix) < value_at + length:
                raise MetaIncomplete
            return prefix[value_at:value_at + length].rstrip(b"\0 ").decode("ascii", "replace") or None
        at = value_at + length
