"""Reading a stored header as its difference from a similar header that pydicom parsed before.

The slices of a series share nearly all of their header: the same elements in the same order, a handful of
values changed (SOP Instance UID, Instance Number, positions). pydicom builds every element of every file
(about 0.7 ms for a 256-element CT header); here the file is compared byte for byte with a known header and
only the elements whose bytes differ are read. The result is what part10.open_source returns for the file:
unchanged elements are the very objects pydicom left in the known header, a changed element is the
RawDataElement pydicom builds from its bytes.

Only differences that keep the layout pydicom read are taken: the same tags in the same order, a changed
element keeping its VR and a defined length and still undecoded in the known header, the file meta changed in
its group length and Media Storage SOP Instance UID only, and the Pixel Data element where the data set ends.
For anything else read_like returns None and the file is for pydicom to read.
"""

from __future__ import annotations

import io
import os
from bisect import bisect_right
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.uid import DeflatedExplicitVRLittleEndian, UID

from wadows.dicom.dataset_copies import Prototype, encoded_like
from wadows.dicom.element_header import UNDEFINED_LENGTH, element_header
from wadows.dicom.element_values import whole_number
from wadows.dicom.part10 import SourceInstance
from wadows.dicom.pixel_span import DicomReadError, locate_pixel_data

_PREFIX = 128  # the preamble is never compared (no output carries it), the DICM prefix is
_META_START = 132
_SLACK = 1024  # read beyond the known header's length: values of a similar file may be longer
_META_MAY_DIFFER = frozenset({0x00020000, 0x00020003})  # group length, Media Storage SOP Instance UID
_GROUP_LENGTH = 0x00020000


class Hint:
    """Where the last file read like a known header differed from it: looked at first in the next one (a
    guess only: every other byte is compared all the same)."""

    def __init__(self) -> None:
        self.indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class KnownHeader:
    """A header pydicom parsed, with where each of its top-level elements lies in the file."""

    raw: bytes  # the file from its first byte up to its Pixel Data tag
    starts: tuple[int, ...]  # where each element begins: the file meta's, then the data set's, in file order
    ends: tuple[int, ...]
    headers: tuple[tuple, ...]  # (tag, VR bytes or None, header size, value length) of each
    objects: tuple  # the element objects, in the same order
    meta_count: int
    meta: dict  # the file meta elements as open_source left them
    elements: dict  # the data set elements likewise
    meta_prototype: Prototype  # the file meta and data set without their elements
    prototype: Prototype
    implicit_vr: bool
    transfer_syntax: UID
    bits_allocated: int
    encapsulated: bool
    hint: Hint


@dataclass(frozen=True)
class SimilarHeader:
    instance: SourceInstance
    changed: tuple[int, ...]  # data set tags whose element differs from the known header's


def learn(fp: BinaryIO, instance: SourceInstance) -> KnownHeader | None:
    """What read_like needs to know of `instance`, which open_source has just returned (nothing else may have
    touched its elements: they are shared with the headers read like it). None when its layout is beyond what
    read_like handles (big endian, deflated, no Pixel Data at the top level, gaps or elements it cannot place)."""
    ds, ref = instance.dataset, instance.pixel_data
    implicit_vr, little_endian = ds.original_encoding
    if (ref is None or not little_endian or instance.transfer_syntax == DeflatedExplicitVRLittleEndian
            or getattr(ds, "file_meta", None) is None):
        return None
    fp.seek(0)
    raw = fp.read(ref.tag_offset)
    if len(raw) != ref.tag_offset or raw[_PREFIX:_META_START] != b"DICM":
        return None
    meta = dict(ds.file_meta._dict)
    elements = dict(ds._dict)
    entries = list(meta.items()) + list(elements.items())
    layout = _layout(raw, entries, len(meta), bool(implicit_vr))
    if layout is None:
        return None
    starts, ends, headers = layout
    return KnownHeader(
        raw=raw, starts=tuple(starts), ends=tuple(ends), headers=tuple(headers),
        objects=tuple(elem for _, elem in entries), meta_count=len(meta),
        meta=meta, elements=elements,
        meta_prototype=encoded_like(*ds.file_meta.original_encoding, ds.file_meta.original_character_set, True),
        prototype=encoded_like(implicit_vr, little_endian, ds.original_character_set), implicit_vr=bool(implicit_vr),
        transfer_syntax=instance.transfer_syntax, bits_allocated=whole_number(ds, 0x00280100) or 16,
        encapsulated=ref.value_length is None, hint=Hint())


def read_like(fp: BinaryIO, known: KnownHeader) -> SimilarHeader | None:
    """The file in `fp` as open_source would return it, read by difference from `known`; None when it
    differs from `known` in anything but values pydicom had left undecoded (then parse it with open_source)."""
    try:
        reading = _Reading(fp, known)
        for index in known.hint.indices:  # where the last file read like this one differed: looked at first
            if not reading.equal_before(index):
                break
            reading.take(index)
        while (index := reading.next_difference()) is not None:
            reading.take(index)
        return reading.result()
    except _NotSimilar:
        return None


class _NotSimilar(Exception):
    pass


class _Reading:
    """The new file's bytes read so far, and how far they have been matched with the known header's."""

    def __init__(self, fp: BinaryIO, known: KnownHeader) -> None:
        self.fp, self.known = fp, known
        self.file_size = fp.seek(0, os.SEEK_END)
        fp.seek(0)
        self.buf = fp.read(len(known.raw) + _SLACK)
        self.position = _PREFIX  # in the known file: every byte before it is matched
        self.delta = 0  # where the new file is, minus where the known one is, from `position` on
        self.meta: dict = {}
        self.elements: dict = {}
        self.changed: list[int] = []  # indices of the elements that differ

    def equal_before(self, index: int) -> bool:
        """Whether the bytes from `position` to the start of element `index` are the known ones."""
        start = self.known.starts[index]
        self._need(start + self.delta)
        return self.buf[self.position + self.delta:start + self.delta] == self.known.raw[self.position:start]

    def next_difference(self) -> int | None:
        """The index of the element holding the first differing byte after `position`, None if none."""
        end = len(self.known.raw)
        self._need(end + self.delta)
        offset = _first_difference(self.buf, self.position + self.delta, self.known.raw, self.position,
                                   end - self.position)
        if offset is None:
            return None
        index = bisect_right(self.known.starts, self.position + offset) - 1
        if index < 0:
            raise _NotSimilar  # no DICM prefix
        return index

    def take(self, index: int) -> None:
        """Read element `index` of the new file (the bytes before it matched); keep it if it differs."""
        known = self.known
        in_meta = index < known.meta_count
        start = known.starts[index] + self.delta
        if start + 12 > len(self.buf):
            self._need(start + 12)
        tag, vr, size, length = known.headers[index]
        header = element_header(self.buf, start, known.implicit_vr and not in_meta)
        if header is None or header[0] != tag or header[1] != vr or header[2] != size or header[3] == UNDEFINED_LENGTH:
            raise _NotSimilar
        value_start = start + size
        value_end = value_start + header[3]
        if value_end > len(self.buf):
            self._need(value_end)
        known_end = known.ends[index]
        if header[3] != length or self.buf[value_start:value_end] != known.raw[known_end - length:known_end]:
            old = known.objects[index]
            elem = _element_like(old, tag, self.buf, value_start, header[3], in_meta)
            if elem is None:
                raise _NotSimilar
            (self.meta if in_meta else self.elements)[old.tag] = elem  # the key object of the known dict
            self.changed.append(index)
        self.delta = value_end - known_end
        self.position = known_end

    def result(self) -> SimilarHeader:
        known = self.known
        stop = len(known.raw) + self.delta
        if stop >= self.file_size:
            raise _NotSimilar
        # Native Pixel Data is located from the bytes in hand (its header follows the data set); fragments
        # of encapsulated data are followed in the file.
        self._need(stop + 12)
        try:
            source = self.fp if known.encapsulated else io.BytesIO(self.buf)
            ref = locate_pixel_data(source, stop, self.file_size, known.implicit_vr, True, known.bits_allocated)
        except DicomReadError:
            raise _NotSimilar from None
        if (ref.value_length is None) != known.encapsulated:
            raise _NotSimilar
        if tuple(self.changed) != known.hint.indices:
            known.hint.indices = tuple(self.changed)
        meta = known.meta_prototype.make({**known.meta, **self.meta})
        ds = known.prototype.make({**known.elements, **self.elements}, file_meta=meta)
        return SimilarHeader(SourceInstance(self.fp, ds, known.transfer_syntax, ref), tuple(self.elements))

    def _need(self, end: int) -> None:
        """Have the new file's first `end` bytes in `buf`."""
        if end > len(self.buf) and len(self.buf) < self.file_size:
            self.buf += self.fp.read(end + _SLACK - len(self.buf))
        if end > len(self.buf):
            raise _NotSimilar


def _element_like(old: object, tag: int, buf: bytes, value_start: int, length: int,
                  in_meta: bool) -> RawDataElement | DataElement | None:
    """The element pydicom builds for the new bytes of an element that was `old` in the known header."""
    if in_meta and tag not in _META_MAY_DIFFER:
        return None
    if type(old) is RawDataElement:
        if old.length == UNDEFINED_LENGTH or old.value is None and old.length:
            return None
        value = buf[value_start:value_start + length] if length else empty_value_for_VR(old.VR, raw=True)
        return RawDataElement(old.tag, old.VR, length, value, value_start, old.is_implicit_VR, old.is_little_endian,
                              old.is_raw, old.is_buffered)
    if in_meta and tag == _GROUP_LENGTH and type(old) is DataElement:
        # pydicom reads the group length as soon as it has read the meta (to check it), so it is decoded
        raw = RawDataElement(old.tag, "UL", length, buf[value_start:value_start + length], value_start, False, True)
        return convert_raw_data_element(raw)
    return None  # decoded by pydicom (or by open_source): its new value would have to be decoded alike


def _layout(raw: bytes, entries: list, meta_count: int, implicit_vr: bool) -> tuple[list, list, list] | None:
    """Start, end and header of every element, checked against the value offsets pydicom recorded; elements
    must follow each other without gaps from the end of the DICM prefix to the Pixel Data tag."""
    starts: list[int] = []
    ends: list[int] = []
    headers: list[tuple] = []
    position: int | None = _META_START
    for index, (tag, elem) in enumerate(entries):
        implicit = implicit_vr and index >= meta_count
        value_offset = elem.value_tell if isinstance(elem, RawDataElement) else getattr(elem, "file_tell", None)
        if value_offset is None:
            return None
        if position is None:  # after an element of undefined length: find this one from its value offset
            position = _start_before(raw, tag, value_offset, implicit)
            if position is None:
                return None
            ends[-1] = position
        header = element_header(raw, position, implicit)
        if header is None or header[0] != tag or position + header[2] != value_offset:
            return None
        if isinstance(elem, RawDataElement):
            if elem.length != header[3] or elem.VR != (None if implicit else header[1].decode("ascii")):
                return None
        starts.append(position)
        headers.append(header)
        if header[3] == UNDEFINED_LENGTH:
            ends.append(-1)
            position = None
        else:
            position = value_offset + header[3]
            ends.append(position)
    if position is None:
        ends[-1] = len(raw)
    elif position != len(raw):
        return None
    return starts, ends, headers


def _start_before(raw: bytes, tag: int, value_offset: int, implicit: bool) -> int | None:
    """Where the element whose value starts at `value_offset` begins, when that is the only reading."""
    found = [start for start in {value_offset - 8, value_offset - 12}
             if (header := element_header(raw, start, implicit)) is not None
             and header[0] == tag and start + header[2] == value_offset]
    return found[0] if len(found) == 1 else None


def _first_difference(a: bytes, a_start: int, b: bytes, b_start: int, length: int) -> int | None:
    """Offset of the first byte where a[a_start:] and b[b_start:] differ within `length` bytes, or None."""
    if length <= 0 or a[a_start:a_start + length] == b[b_start:b_start + length]:
        return None
    unequal = np.frombuffer(a, np.uint8, length, a_start) != np.frombuffer(b, np.uint8, length, b_start)
    return int(unequal.argmax())
