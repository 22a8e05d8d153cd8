"""The header of a data element in little endian bytes: its tag, VR, header size and value length.

For the readers that step over a header's bytes without pydicom building its elements (similar_header, the
index's UID reader).
"""

from __future__ import annotations

import struct

from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

UNDEFINED_LENGTH = 0xFFFFFFFF
KNOWN_VRS = frozenset(vr.value.encode("ascii") for vr in VR if len(vr.value) == 2)
_LONG_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_IMPLICIT = struct.Struct("<HHL")
_EXPLICIT = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<L")


def element_header(buf: bytes, position: int, implicit: bool) -> tuple[int, bytes | None, int, int] | None:
    """(tag, VR bytes or None, header size, value length) of the element header at `position`, or None when it
    is cut short or its VR is not one pydicom knows (pydicom would guess: an implicit VR switch or a 2-byte
    length)."""
    if position < 0 or position + 8 > len(buf):
        return None
    if implicit:
        group, element, length = _IMPLICIT.unpack_from(buf, position)
        return group << 16 | element, None, 8, length
    group, element, vr, length = _EXPLICIT.unpack_from(buf, position)
    if vr not in KNOWN_VRS:
        return None
    if vr in _LONG_VRS:
        if position + 12 > len(buf):
            return None
        return group << 16 | element, vr, 12, _LONG_LENGTH.unpack_from(buf, position + 8)[0]
    return group << 16 | element, vr, 8, length
