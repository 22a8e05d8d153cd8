"""The few UIDs the index keeps, read straight from the bytes of an ordinary Part 10 header.

pydicom builds an element object for every element it passes on the way to Series Instance UID (0020,000E): about
0.5 ms for a CT header with its private groups, paid for every file indexed and every instance a series brings
from a PACS. Here the element headers are stepped over in the bytes and only the wanted values are taken.

Only the common case is read: little endian (explicit or implicit VR), the file meta in explicit VR, tags in
increasing order, VRs pydicom knows, sequences of any length (their items stepped over), everything within the
bytes given. For anything else `uid_values` returns None and pydicom reads the file (wadows.store.header).
"""

from __future__ import annotations

import struct

from wadows.dicom.element_header import KNOWN_VRS, UNDEFINED_LENGTH, element_header

PREAMBLE_AND_MAGIC = 132
MEDIA_STORAGE_SOP_CLASS, TRANSFER_SYNTAX = 0x00020002, 0x00020010
SOP_CLASS, SOP_INSTANCE, STUDY, SERIES = 0x00080016, 0x00080018, 0x0020000D, 0x0020000E
WANTED = frozenset({MEDIA_STORAGE_SOP_CLASS, TRANSFER_SYNTAX, SOP_CLASS, SOP_INSTANCE, STUDY, SERIES})

_IMPLICIT_LE, _EXPLICIT_BE, _DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_TAG = struct.Struct("<HH")
_MAX_DEPTH = 16


class _Unusual(Exception):
    """Something the common case does not cover: pydicom decides."""


def uid_values(data: bytes, last_tag: int = SERIES) -> dict[int, bytes] | None:
    """The raw values of the WANTED elements found before the first top-level element after `last_tag` (file
    meta included), or None when the header is not the common case or does not end within `data`."""
    try:
        return _read(data, last_tag)
    except (_Unusual, struct.error):
        return None


def _read(data: bytes, last_tag: int) -> dict[int, bytes]:
    if data[128:PREAMBLE_AND_MAGIC] != b"DICM":
        raise _Unusual
    found: dict[int, bytes] = {}
    position, previous = PREAMBLE_AND_MAGIC, -1
    # The file meta: explicit VR little endian, group 0002 only.
    while True:
        if position + 4 > len(data):
            raise _Unusual
        group, element = _TAG.unpack_from(data, position)
        if group != 0x0002:
            break
        tag = group << 16 | element
        if tag <= previous:
            raise _Unusual
        previous = tag
        position, start, end = _element(data, position, False)
        if end is None:
            raise _Unusual
        if tag in WANTED:
            found[tag] = data[start:end]
    syntax = found.get(TRANSFER_SYNTAX, b"").rstrip(b"\0 ").decode("ascii", "replace")
    if not syntax or syntax in (_EXPLICIT_BE, _DEFLATED):
        raise _Unusual
    implicit = syntax == _IMPLICIT_LE
    if implicit and data[position + 4:position + 6] in KNOWN_VRS:
        raise _Unusual  # explicit VR under an implicit VR syntax: pydicom reads it as it finds it
    # The data set, up to the first element past last_tag.
    while position < len(data):
        if position + 8 > len(data):
            raise _Unusual
        group, element = _TAG.unpack_from(data, position)
        tag = group << 16 | element
        if tag <= previous or group == 0xFFFE:
            raise _Unusual
        if tag > last_tag:
            return found
        previous = tag
        position, start, end = _element(data, position, implicit)
        if end is None:
            position = _skip_undefined(data, position, implicit, 0)
        elif tag in WANTED:
            found[tag] = data[start:end]
    raise _Unusual  # the header goes on beyond the bytes given


def _element(data: bytes, position: int, implicit: bool) -> tuple[int, int, int | None]:
    """(where the next element starts, value start, value end or None for an undefined length)."""
    header = element_header(data, position, implicit)
    if header is None:
        raise _Unusual  # cut short, or not a VR: pydicom would guess
    _, vr, size, length = header
    start = position + size
    if length == UNDEFINED_LENGTH:
        if not implicit and vr != b"SQ":
            raise _Unusual  # UN of undefined length holds implicit VR items; encapsulated data comes later
        return start, start, None
    end = start + length
    if end > len(data):
        raise _Unusual
    return end, start, end


def _skip_undefined(data: bytes, position: int, implicit: bool, depth: int) -> int:
    """Past a sequence of undefined length whose items start at `position` (items of either length)."""
    if depth > _MAX_DEPTH:
        raise _Unusual
    while True:
        header = element_header(data, position, True)  # item tags carry no VR, whatever the encoding
        if header is None:
            raise _Unusual
        tag, _, _, length = header
        position += 8
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise _Unusual
        if length != UNDEFINED_LENGTH:
            position += length
            continue
        position = _skip_item(data, position, implicit, depth + 1)


def _skip_item(data: bytes, position: int, implicit: bool, depth: int) -> int:
    """Past the elements of an item of undefined length, and its delimiter."""
    while True:
        if position + 8 > len(data):
            raise _Unusual
        group, element = _TAG.unpack_from(data, position)
        if group << 16 | element == _ITEM_END:
            return position + 8
        position, _, end = _element(data, position, implicit)
        if end is None:
            position = _skip_undefined(data, position, implicit, depth)
