"""Where the top-level Pixel Data element sits in a Part 10 file, found with seeks: fragments are never read."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO


class DicomReadError(Exception):
    """The input is not a readable DICOM Part 10 file (the reason, never its values)."""


@dataclass
class PixelDataRef:
    tag_offset: int  # file offset of the (7FE0,0010) tag
    value_offset: int  # file offset of the first value byte
    value_length: int | None  # None for undefined length (encapsulated)
    end_offset: int  # just past the element (past the sequence delimiter for encapsulated data)
    vr: str  # OB or OW; for implicit VR files, the VR the value has in explicit VR (PS3.5 A.1, 8.2)


_PIXEL_DATA = (0x7FE0, 0x0010)
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_UNDEFINED = 0xFFFFFFFF


def locate_pixel_data(
    fp: BinaryIO, tag_offset: int, file_size: int, implicit_vr: bool, little_endian: bool, bits_allocated: int
) -> PixelDataRef:
    """The span of the Pixel Data element whose tag starts at `tag_offset`; raises DicomReadError when the
    element is not there, is cut short by the end of the file, or its items are malformed."""
    order = "<" if little_endian else ">"
    head = _read_exactly(fp, tag_offset, 8)
    if struct.unpack(f"{order}HH", head[:4]) != _PIXEL_DATA:
        raise DicomReadError("expected the Pixel Data element where the data set header ends")
    native_vr = "OB" if bits_allocated <= 8 else "OW"
    if implicit_vr:
        (length,) = struct.unpack(f"{order}L", head[4:])
        value_offset = tag_offset + 8
        vr = "OB" if length == _UNDEFINED else native_vr
    else:
        vr = head[4:6].decode("ascii", "replace")
        if vr not in ("OB", "OW", "UN"):
            raise DicomReadError("Pixel Data has a VR other than OB or OW")
        (length,) = struct.unpack(f"{order}L", _read_exactly(fp, tag_offset + 8, 4))
        value_offset = tag_offset + 12
        if vr == "UN":  # written by converters that lost the VR; the value is still OB/OW data
            vr = "OB" if length == _UNDEFINED else native_vr
    if length == _UNDEFINED:
        end = _end_of_items(fp, value_offset, file_size)
        return PixelDataRef(tag_offset, value_offset, None, end, vr)
    if value_offset + length > file_size:
        raise DicomReadError("the file ends inside the Pixel Data value (truncated)")
    return PixelDataRef(tag_offset, value_offset, length, value_offset + length, vr)


def _end_of_items(fp: BinaryIO, offset: int, file_size: int) -> int:
    """Offset just past the sequence delimiter of encapsulated pixel data starting at `offset`.
    Items are little endian in every transfer syntax (PS3.5 A.4); we follow their lengths, so bytes that
    look like a delimiter inside a fragment do not fool us."""
    while True:
        group, element, length = struct.unpack("<HHL", _read_exactly(fp, offset, 8))
        if (group, element) == _SEQUENCE_DELIMITER:
            return offset + 8
        if (group, element) != _ITEM or length == _UNDEFINED:
            raise DicomReadError("encapsulated Pixel Data holds something other than items")
        offset += 8 + length
        if offset > file_size:
            raise DicomReadError("the file ends inside encapsulated Pixel Data (truncated)")


def _read_exactly(fp: BinaryIO, offset: int, size: int) -> bytes:
    fp.seek(offset)
    data = fp.read(size)
    if len(data) != size:
        raise DicomReadError("the file ends inside the Pixel Data element (truncated)")
    return data
