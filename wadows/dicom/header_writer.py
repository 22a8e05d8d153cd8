"""The bytes of a Part 10 file other than pixel values: preamble, file meta, data set, Pixel Data element header.

The file meta group is built by file_meta_bytes (by pydicom when that declines). pydicom writes the data set;
we add what it leaves out when the byte order changes: it parses numbers into the new order but copies
OW/OF/OL/OD/OV values as they are, so we swap those words ourselves.
"""

from __future__ import annotations

import copy
import struct
import zlib
from collections.abc import Iterable, Iterator

import numpy as np
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_dataset, write_file_meta_info
from pydicom.uid import UID

from wadows import __version__
from wadows.dicom.file_meta_bytes import file_meta_bytes

PREAMBLE = b"\0" * 128 + b"DICM"  # a fresh preamble: the stored one may carry a TIFF header or anything else

# wadows's own (PS3.7 D.3.3.2: it names the implementation that wrote the file; pydicom's would say pydicom did):
# 2.25. + uuid5(NAMESPACE_URL, "urn:wadows:implementation-class") as an integer, fixed for good.
IMPLEMENTATION_CLASS_UID = UID("2.25.61595224878711836930018207026948296908")
IMPLEMENTATION_VERSION_NAME = f"WADOWS_{__version__}"[:16]  # SH, 16 characters at most

_PIXEL_DATA_TAG = 0x7FE00010

# Encapsulated data (PS3.5 A.4) is little endian whatever the data set's byte order.
# We stream frames as they are encoded, so the Basic Offset Table stays empty (allowed; one fragment per frame).
EMPTY_OFFSET_TABLE = struct.pack("<HHL", 0xFFFE, 0xE000, 0)
SEQUENCE_DELIMITER = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)

# Binary VRs whose value is a run of fixed-size words (PS3.5 Table 6.2-1), by word size.
_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def file_meta_for(header: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    """File meta for a file we write: `header`'s own file meta (as the caller left it), with the transfer
    syntax, the SOP Class/Instance UIDs of `header` and our implementation identity."""
    meta = FileMetaDataset()
    for elem in getattr(header, "file_meta", None) or ():
        if elem.tag != 0x00020000:  # group length is recomputed on write
            meta[elem.tag] = copy.copy(elem)  # copies: the setters below must not reach the caller's elements
    meta.FileMetaInformationVersion = b"\x00\x01"
    if "SOPClassUID" in header:
        meta.MediaStorageSOPClassUID = header.SOPClassUID
    if "SOPInstanceUID" in header:
        meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def preamble_and_meta(meta: FileMetaDataset) -> bytes:
    """Preamble, DICM prefix and the file meta group (with its group length), as pydicom's
    write_file_meta_info(enforce_standard=True) writes it."""
    group = file_meta_bytes(meta._dict)
    if group is not None:
        return PREAMBLE + group
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(PREAMBLE)
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue()


def encode_data_set(ds: Dataset, implicit_vr: bool, little_endian: bool, values_little_endian: bool,
                    spans: dict[int, tuple[int, int]] | None = None) -> bytes:
    """`ds` encoded with the given VR form and byte order. `values_little_endian` is the byte order the
    binary (OW, OF, ...) values of `ds` are in: the order of the file they were read from.

    `spans`, when given, receives the byte range of each element in the result, but only when every
    element is written on its own (the encoding is kept, see _keeps_encoding); it stays empty otherwise."""
    if values_little_endian != little_endian:
        ds = _with_words_swapped(ds, little_endian)
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit_vr, little_endian
    if _keeps_encoding(ds, implicit_vr, little_endian):
        _write_keeping_raw_values(out, ds, spans)
    else:
        write_dataset(out, ds)
    return out.getvalue()


# Explicit VR elements whose length field is 4 bytes after 2 reserved ones (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def _keeps_encoding(ds: Dataset, implicit_vr: bool, little_endian: bool) -> bool:
    """Whether pydicom would copy ds's undecoded values as they are: same VR form, byte order and charset."""
    return (ds.original_encoding == (implicit_vr, little_endian)
            and ds.original_character_set == ds._character_set)


def _write_keeping_raw_values(out: DicomBytesIO, ds: Dataset, spans: dict[int, tuple[int, int]] | None) -> None:
    """What pydicom's write_dataset writes when the encoding is kept, several times faster: an element
    still in its encoded form is copied with a header built here (most of a de-identified header), the
    others go through pydicom. A header with unchanged values is the hot path of anonymized retrieval."""
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    implicit_vr, little_endian = out.is_implicit_VR, out.is_little_endian
    elements = ds._dict
    for tag in sorted(elements):
        if not tag & 0xFFFF and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        start = out.tell()
        encoded = raw_element_bytes(tag, elements[tag], implicit_vr, little_endian)
        if encoded is None:
            write_data_element(out, ds[tag], encodings)  # decoded first, as pydicom itself would
        else:
            out.write(encoded)
        if spans is not None:
            spans[tag] = (start, out.tell())


_HEADERS = {
    (order, form): struct.Struct(f"{order}{fields}")
    for order in "<>" for form, fields in (("short", "HH2sH"), ("long", "HH2sxxL"), ("implicit", "HHL"))
}


def raw_element_bytes(tag: int, elem: object, implicit_vr: bool, little_endian: bool) -> bytes | None:
    """An element still in its encoded form, as the data set writer copies it (header built here, value as
    read); None when it must go through pydicom (decoded, undefined length, or no VR to write)."""
    value = elem.value if isinstance(elem, RawDataElement) else None
    if value is None or elem.length == 0xFFFFFFFF or (not implicit_vr and not elem.VR):
        return None
    order = "<" if little_endian else ">"
    group, element = tag >> 16, tag & 0xFFFF
    if implicit_vr:
        head = _HEADERS[order, "implicit"].pack(group, element, len(value))
    elif elem.VR in _LONG_VRS:
        head = _HEADERS[order, "long"].pack(group, element, elem.VR.encode("ascii"), len(value))
    else:
        head = _HEADERS[order, "short"].pack(group, element, elem.VR.encode("ascii"), len(value))
    return head + value


def _with_words_swapped(ds: Dataset, little_endian: bool) -> Dataset:
    """A deep copy of `ds` whose word-valued binary elements are in the other byte order (big endian is
    rare enough that the copy does not matter; it keeps the caller's data set untouched)."""
    swapped = copy.deepcopy(ds)
    correct_ambiguous_vr(swapped, little_endian)  # 'OB or OW' and friends decide the word size first
    _swap_words_in_place(swapped)
    return swapped


def _swap_words_in_place(ds: Dataset) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]  # parses raw elements, so VR and value are final
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_words_in_place(item)
            continue
        size = _WORD_SIZE.get(elem.VR)
        value = elem.value
        if size and isinstance(value, (bytes, bytearray)) and value and len(value) % size == 0:
            ds[tag] = DataElement(elem.tag, elem.VR, np.frombuffer(value, dtype=f"u{size}").byteswap().tobytes())


def pixel_element_header(implicit_vr: bool, little_endian: bool, vr: str, length: int | None) -> bytes:
    """Tag, VR and length of a Pixel Data element; `length` None means undefined (encapsulated data)."""
    order = "<" if little_endian else ">"
    value_length = 0xFFFFFFFF if length is None else length
    if implicit_vr:
        return _HEADERS[order, "implicit"].pack(_PIXEL_DATA_TAG >> 16, _PIXEL_DATA_TAG & 0xFFFF, value_length)
    return _HEADERS[order, "long"].pack(_PIXEL_DATA_TAG >> 16, _PIXEL_DATA_TAG & 0xFFFF, vr.encode("ascii"),
                                        value_length)


def item_header(length: int) -> bytes:
    """The header of an encapsulated item of `length` bytes (even: fragments are padded, PS3.5 A.4)."""
    return struct.pack("<HHL", 0xFFFE, 0xE000, length)


def deflated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Raw deflate (RFC 1951, no zlib header) of the data set stream, as Deflated Explicit VR LE asks (PS3.5 A.5)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    for chunk in chunks:
        packed = compressor.compress(chunk)
        if packed:
            yield packed
    yield compressor.flush()
