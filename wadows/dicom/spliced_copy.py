"""The head of an output object built from a similar object's head: the same bytes with a few elements replaced.

part10.plan_copy writes a head from scratch: the file meta, then every element of the data set. For the next
slice of a series almost all of it comes out the same, so a CopyLayout keeps how one head was put together
(the file meta elements it holds, the byte range of every element) and spliced_head() swaps in the bytes of
the elements that differ. Only elements the data set writer copies in their encoded form can be swapped in;
for anything else it returns None and the head is written from scratch.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_left
from dataclasses import dataclass

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from wadows.dicom import header_writer
from wadows.dicom.file_meta_bytes import file_meta_bytes

SOP_INSTANCE_UID = 0x00080018
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_PIXEL_DATA = 0x7FE00010
_META_GROUP = len(header_writer.PREAMBLE)  # where the file meta group starts in a head
_META_BODY = _META_GROUP + 12  # after its group length element
# A UID pydicom reads, validates and writes back unchanged (PS3.5 9.1): digits and dots, at most 64 characters.
_PLAIN_UID = re.compile(rb"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


@dataclass(frozen=True)
class PixelsDescribed:
    """The Image Pixel elements (tags) found to account for a Pixel Data value of `length` bytes."""

    tags: frozenset[int]
    length: int | None


@dataclass(frozen=True)
class CopyLayout:
    """How the head of one output object was put together."""

    source_syntax: UID  # the transfer syntax of the object it was made from
    target: UID
    implicit_vr: bool
    little_endian: bool
    meta: dict  # the file meta elements, as header_writer.file_meta_for built them
    prefix: bytes  # preamble, DICM and the file meta group (written by file_meta_bytes)
    meta_spans: dict[int, tuple[int, int]]  # where each file meta element lies in prefix
    data_set: bytes
    tags: tuple[int, ...]  # the data set elements written, in order
    spans: dict[int, tuple[int, int]]  # where each of them lies in data_set
    pixels_described: PixelsDescribed | None = None  # what the source's Pixel Data was checked against


def spliced_head(layout: CopyLayout, changes: dict[int, DataElement | RawDataElement | None]) -> bytes | None:
    """Preamble, file meta and data set of an output header that is the layout's with the elements in
    `changes` replaced (None: not in the output), in the same encoding; None when that cannot be spliced."""
    prefix = layout.prefix
    if SOP_INSTANCE_UID in changes:
        prefix = _prefix_for(layout, changes[SOP_INSTANCE_UID])
        if prefix is None:
            return None
    pieces = [prefix]
    cursor = 0
    for key in sorted(changes, key=int):
        elem, tag = changes[key], int(key)  # ints: a BaseTag compares in Python
        if tag >= _PIXEL_DATA or tag >> 16 in (0x0000, 0x0002):
            return None  # never in the data set part of the output
        if elem is None:
            encoded = b""
        elif not tag & 0xFFFF:
            return None  # a group length: the writer decides whether to write it
        else:
            encoded = header_writer.raw_element_bytes(tag, elem, layout.implicit_vr, layout.little_endian)
            if encoded is None:
                return None
        start, end = layout.spans.get(tag) or _insertion_point(layout, tag)
        pieces.append(layout.data_set[cursor:start])
        pieces.append(encoded)
        cursor = end
    pieces.append(layout.data_set[cursor:])
    return b"".join(pieces)


def _insertion_point(layout: CopyLayout, tag: int) -> tuple[int, int]:
    index = bisect_left(layout.tags, tag)
    at = layout.spans[layout.tags[index]][0] if index < len(layout.tags) else len(layout.data_set)
    return at, at


def _prefix_for(layout: CopyLayout, sop_instance_uid: DataElement | RawDataElement | None) -> bytes | None:
    """The preamble and file meta with the Media Storage SOP Instance UID that file_meta_for derives from the
    output's SOP Instance UID."""
    if sop_instance_uid is None or MEDIA_STORAGE_SOP_INSTANCE_UID not in layout.meta_spans:
        return None
    value = sop_instance_uid.value if isinstance(sop_instance_uid, RawDataElement) else None
    if isinstance(value, bytes) and _PLAIN_UID.fullmatch(uid := value.rstrip(b"\0 ")) and len(uid) <= 64:
        # What file_meta_for makes of it (read, stripped, validated, set) is this same UID, padded with a NUL.
        uid += b"\0" * (len(uid) % 2)
        element = struct.pack("<HH2sH", 0x0002, 0x0003, b"UI", len(uid)) + uid
        start, end = layout.meta_spans[MEDIA_STORAGE_SOP_INSTANCE_UID]
        body = layout.prefix[_META_BODY:start] + element + layout.prefix[end:]
        return layout.prefix[:_META_BODY - 4] + struct.pack("<L", len(body)) + body
    try:  # anything else: read and set the way file_meta_for does
        uid_value = Dataset({BaseTag(SOP_INSTANCE_UID): sop_instance_uid}).SOPInstanceUID
        meta = FileMetaDataset()
        meta.MediaStorageSOPInstanceUID = uid_value
    except Exception:  # an invalid UID: the writer from scratch reports it
        return None
    group = file_meta_bytes({**layout.meta, MEDIA_STORAGE_SOP_INSTANCE_UID: meta[MEDIA_STORAGE_SOP_INSTANCE_UID]})
    return None if group is None else header_writer.PREAMBLE + group
