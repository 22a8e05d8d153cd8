"""Reading a stored Part 10 object (header only) and writing the object we return, as a byte stream.

Every returned object that is not a byte-for-byte copy of the stored file goes through here: the header
the caller gives (usually a de-identified copy of the stored one) plus the stored pixel data, either
streamed as they are or decoded, edited and encoded again.

Elements after Pixel Data (trailing padding, digital signatures) are dropped from everything encode()
writes: signatures cannot survive a changed header, and padding means nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import BinaryIO

import numpy
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from wadows.dicom import header_writer, syntaxes
from wadows.dicom.element_values import value_of, whole_number
from wadows.dicom.file_meta_bytes import file_meta_bytes
from wadows.dicom.image_pixel import check_described
from wadows.dicom.pixel_copy import copied_pixel_data
from wadows.dicom.pixel_recode import recoded_pixel_data
from wadows.dicom.pixel_span import DicomReadError, PixelDataRef, locate_pixel_data
from wadows.dicom.read_tags import tags_read
from wadows.dicom.spliced_copy import CopyLayout, PixelsDescribed, spliced_head
from wadows.dicom.transcode import TranscodeError, pixel_bytes_carry_over, refusal_reason

__all__ = ["CopyLayout", "CopyPlan", "DicomReadError", "PixelDataRef", "SourceInstance", "TranscodeError", "encode",
           "open_source", "plan_copy", "plan_copy_like", "plan_copy_with_layout"]

_PIXEL_DATA = 0x7FE00010
_FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)
_PIXEL_DATA_PROVIDER_URL = 0x00287FE0
_BITS_ALLOCATED = 0x00280100
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SOP_CLASS_UID, _SOP_INSTANCE_UID = 0x00080016, 0x00080018
_NOT_IN_A_DATA_SET = (0x0000, 0x0002)  # command and file meta groups: never written into the data set


@dataclass
class SourceInstance:
    fp: BinaryIO  # the open, seekable source file (the object starts at offset 0)
    dataset: Dataset  # file_meta + every element before Pixel Data; Pixel Data itself is not read
    transfer_syntax: UID
    pixel_data: PixelDataRef | None  # None when there is no (7FE0,0010) at the top level of the file stream


def open_source(fp: BinaryIO) -> SourceInstance:
    """Parse the file meta and the data set up to Pixel Data, and locate Pixel Data without reading it.

    Deflated objects have no stream offsets: their whole data set (Pixel Data included) is parsed in
    memory and `pixel_data` is None. So it is when Float/Double Float Pixel Data ends the header.
    Raises DicomReadError for input that is not Part 10, truncated or corrupt.
    """
    file_size = fp.seek(0, os.SEEK_END)
    if file_size == 0:
        raise DicomReadError("empty file")
    ds = _parse(fp, stop_before_pixels=True)
    stop = fp.tell()
    ts_value = ds.file_meta.get("TransferSyntaxUID")
    if not ts_value:
        raise DicomReadError("the file meta has no Transfer Syntax UID")
    ts = syntaxes.normalize(ts_value)
    _check_values_complete(ds.file_meta)
    if ts == DeflatedExplicitVRLittleEndian:
        ds = _parse(fp, stop_before_pixels=False)  # inflated whole by pydicom; Pixel Data comes along
        _check_values_complete(ds)
        return SourceInstance(fp, ds, ts, None)
    _check_values_complete(ds)
    _check_ends_at(ds, min(stop, file_size))
    implicit_vr, little_endian = ds.original_encoding  # what pydicom found, which may differ from the meta's claim
    pixel_data: PixelDataRef | None = None
    if stop < file_size:
        tag = _tag_at(fp, stop, bool(little_endian))
        if tag == _PIXEL_DATA:
            bits_allocated = whole_number(ds, _BITS_ALLOCATED) or 16
            pixel_data = locate_pixel_data(fp, stop, file_size, bool(implicit_vr), bool(little_endian), bits_allocated)
            _check_pixel_encoding(pixel_data, ts)
        elif tag in _FLOAT_PIXEL_DATA:
            _read_rest(fp, stop, ds)
        else:  # pydicom gave up on something it could not parse and kept quiet about it
            raise DicomReadError("the data set cannot be parsed to its end")
    elif _promises_pixel_data(ds):
        raise DicomReadError("the image has no Pixel Data (truncated)")
    return SourceInstance(fp, ds, ts, pixel_data)


def _parse(fp: BinaryIO, stop_before_pixels: bool) -> Dataset:
    fp.seek(0)
    try:
        ds = dcmread(fp, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        raise DicomReadError("not a DICOM Part 10 file (no preamble and DICM prefix)") from None
    except Exception as exc:  # pydicom's messages may quote values; ours name the problem only
        raise DicomReadError(f"cannot parse the data set ({type(exc).__name__})") from None
    if not len(ds):
        raise DicomReadError("no data set after the file meta (truncated)")
    if _SOP_CLASS_UID not in ds._dict or _SOP_INSTANCE_UID not in ds._dict:
        # Type 1 in every composite object (PS3.3 C.12.1); missing means cut short or not an instance at all
        raise DicomReadError("the data set has no SOP Class UID or SOP Instance UID (truncated or not an instance)")
    return ds


def _check_values_complete(ds: Dataset) -> None:
    """pydicom keeps a value cut short by the end of the file without a word; its length field tells."""
    for elem in ds._dict.values():  # raw access: no value parsing
        if isinstance(elem, RawDataElement):
            if elem.value is not None and elem.length != 0xFFFFFFFF and len(elem.value) != elem.length:
                raise DicomReadError("the file ends inside a data element (truncated)")
        elif elem.VR == "SQ":
            for item in elem.value:
                _check_values_complete(item)


def _check_ends_at(ds: Dataset, stop: int) -> None:
    """The last element in the file must end where parsing stopped: pydicom stops silently at a tag cut
    in half. (A sequence of undefined length that is cut short raises in pydicom already.)"""
    last = max(ds._dict.values(), key=_value_offset)
    if isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF and last.value_tell + last.length != stop:
        raise DicomReadError("the file ends inside a data element header (truncated)")


def _value_offset(elem: object) -> int:
    if isinstance(elem, RawDataElement):
        return elem.value_tell
    return getattr(elem, "file_tell", None) or -1


def _tag_at(fp: BinaryIO, offset: int, little_endian: bool) -> int:
    fp.seek(offset)
    head = fp.read(4)
    if len(head) < 4:
        raise DicomReadError("the file ends inside a data element header (truncated)")
    order = "little" if little_endian else "big"
    return int.from_bytes(head[:2], order) << 16 | int.from_bytes(head[2:], order)


def _check_pixel_encoding(ref: PixelDataRef, ts: UID) -> None:
    if not syntaxes.is_known(ts):
        return
    if ts.is_encapsulated and ref.value_length is not None:
        raise DicomReadError("compressed transfer syntax but Pixel Data is not encapsulated")
    if not ts.is_encapsulated and ref.value_length is None:
        raise DicomReadError("uncompressed transfer syntax but Pixel Data is encapsulated")


def _read_rest(fp: BinaryIO, offset: int, ds: Dataset) -> None:
    """Float pixel data objects are rare and small: parse the rest of the data set in memory."""
    fp.seek(offset)
    implicit_vr, little_endian = ds.original_encoding
    try:
        rest = read_dataset(fp, bool(implicit_vr), bool(little_endian))
    except Exception as exc:
        raise DicomReadError(f"cannot parse the data set ({type(exc).__name__})") from None
    _check_values_complete(rest)
    ds.update(rest)


def _promises_pixel_data(ds: Dataset) -> bool:
    """Image SOP classes and Image Pixel attributes promise Pixel Data unless it lives elsewhere (JPIP,
    Pixel Data Provider URL, PS3.3 C.7.6.3); without it the file was cut at an element boundary."""
    if _PIXEL_DATA_PROVIDER_URL in ds._dict:
        return False
    has_image_pixel_attributes = all(tag in ds._dict for tag in (0x00280010, 0x00280011, 0x00280100))
    return has_image_pixel_attributes or "Image Storage" in syntaxes.normalize(str(value_of(ds, _SOP_CLASS_UID))).name


def encode(
    header: Dataset,
    source: SourceInstance,
    transfer_syntax: str,
    pixel_edit: Callable[[numpy.ndarray, Dataset], numpy.ndarray] | None = None,
    chunk_size: int = 1 << 20,
) -> Iterator[bytes]:
    """A complete Part 10 file: `header`'s elements in `transfer_syntax`, then the pixel data of `source`.

    `header` is written as given (never source.dataset); its file meta, if any, is kept with the
    transfer syntax, SOP Class/Instance UIDs and implementation identity set for the new file.
    Pixel data: streamed from the source in `chunk_size` reads when the stored bytes stay valid and
    there is no `pixel_edit`; otherwise decoded frame by frame, passed with the output header to
    `pixel_edit` (one (rows, columns[, samples]) frame per call, in frame order; it may edit in place and
    must not change the header), and encoded in `transfer_syntax`.

    Stored pixel bytes go out as they are only when the source's Image Pixel attributes account for every one
    of them (DicomReadError otherwise: they could hold anything, a swallowed header included).

    Not a generator: checks and the first frame run now, so TranscodeError comes before any byte.
    Iterate the result while `source.fp` is open and used by nothing else.
    """
    target = syntaxes.normalize(transfer_syntax)
    if not syntaxes.is_known(target):
        raise TranscodeError(f"cannot write {syntaxes.describe(target)}")
    implicit_vr, little_endian = syntaxes.data_set_encoding(target)
    body = _output_data_set(header)
    if not _has_pixel_data(source):
        pixel_chunks: Iterator[bytes] = iter(())
    elif pixel_edit is None and pixel_bytes_carry_over(source.transfer_syntax, target):
        _check_described(source)
        pixel_chunks = copied_pixel_data(source, implicit_vr, little_endian, chunk_size)
    else:
        reason = refusal_reason(source.transfer_syntax, target, pixel_edit=True)
        if reason:
            raise TranscodeError(f"cannot write {syntaxes.describe(target)}: {reason}")
        pixel_chunks = recoded_pixel_data(source, body, target, pixel_edit)
    head, data_set, _ = _header_bytes(header, body, source, target)
    return _stream(head, data_set, pixel_chunks, deflate=target == DeflatedExplicitVRLittleEndian)


@dataclass
class CopyPlan:
    """An output object as bytes we hold plus a range of the stored file: `head`, then the stored bytes
    [start, end) (the Pixel Data value as it is), then `tail` (padding to even length)."""

    head: bytes
    start: int
    end: int
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + self.end - self.start + len(self.tail)


def plan_copy(header: Dataset, source: SourceInstance, transfer_syntax: str) -> CopyPlan | None:
    """The output of encode(header, source, transfer_syntax) without a pixel edit, prepared now so that it
    can be sent later from the stored file alone: the header work done once, the size known in advance.
    None when the pixels must be decoded or the output is deflated (then use encode()); DicomReadError, as
    encode(), when the Image Pixel attributes do not account for the stored Pixel Data."""
    return plan_copy_with_layout(header, source, transfer_syntax)[0]


def plan_copy_with_layout(header: Dataset, source: SourceInstance,
                          transfer_syntax: str) -> tuple[CopyPlan | None, CopyLayout | None]:
    """plan_copy(), and how its head was put together for plan_copy_like() (None when its parts were
    written by pydicom as a whole: another encoding, or a file meta the fast writer leaves to pydicom)."""
    target = _copy_target(source, transfer_syntax)
    if target is None:
        return None, None
    body = _output_data_set(header)
    spans: dict[int, tuple[int, int]] = {}
    head, data_set, meta = _header_bytes(header, body, source, target, spans)
    meta_spans: dict[int, tuple[int, int]] = {}
    layout = None
    if spans and header_writer.PREAMBLE + (file_meta_bytes(meta._dict, meta_spans) or b"") == head:
        implicit_vr, little_endian = syntaxes.data_set_encoding(target)
        meta_spans = {tag: (start + len(header_writer.PREAMBLE), end + len(header_writer.PREAMBLE))
                      for tag, (start, end) in meta_spans.items()}
        layout = CopyLayout(source.transfer_syntax, target, implicit_vr, little_endian, dict(meta._dict), head,
                            meta_spans, data_set, tuple(spans), spans, _pixels_described(source))
    # (a layout was made after _pixels_described checked the Pixel Data)
    return _with_pixel_range(head + data_set, source, target, described=layout is not None), layout


def plan_copy_like(layout: CopyLayout, source: SourceInstance, changes: dict[int, DataElement | RawDataElement | None],
                   source_changed: tuple[int, ...] | None = None) -> CopyPlan | None:
    """plan_copy() for an output header that is the one `layout` was made from with the elements in
    `changes` replaced (None: removed), and a source in the same encoding and transfer syntax as that one's
    (`source_changed`: the tags of the source's data set elements that differ from that one's, when known).
    None when the head cannot be spliced (then use plan_copy())."""
    ref = source.pixel_data
    if source.transfer_syntax != layout.source_syntax or ref is None:
        return None  # then _copy_target might decide otherwise
    head = spliced_head(layout, changes)
    if head is None:
        return None
    # The Image Pixel attributes were found to account for the Pixel Data: still so with the same ones.
    described = (source_changed is not None and layout.pixels_described is not None
                 and layout.pixels_described.length == ref.value_length
                 and layout.pixels_described.tags.isdisjoint(source_changed))
    return _with_pixel_range(head, source, layout.target, (layout.implicit_vr, layout.little_endian), described)


def _copy_target(source: SourceInstance, transfer_syntax: str) -> UID | None:
    """The output transfer syntax when the stored pixel bytes go out as they are, else None."""
    target = syntaxes.normalize(transfer_syntax)
    if target == DeflatedExplicitVRLittleEndian or not syntaxes.is_known(target):
        return None
    if not pixel_bytes_carry_over(source.transfer_syntax, target):
        return None
    if source.pixel_data is None and _has_pixel_data(source):
        return None  # pixel data parsed into memory (deflated source): there is no file range to copy
    return target


def _with_pixel_range(head: bytes, source: SourceInstance, target: UID,
                      encoding: tuple[bool, bool] | None = None, described: bool = False) -> CopyPlan:
    """`head`, then the Pixel Data element header and the range of its value in the stored file
    (`encoding`: the data set encoding of `target`, when the caller knows it; `described`: the Pixel Data
    is known to be accounted for, see _check_described)."""
    ref = source.pixel_data
    if ref is None:
        return CopyPlan(head, 0, 0, b"")
    if not described:
        _check_described(source)
    implicit_vr, little_endian = encoding or syntaxes.data_set_encoding(target)
    if ref.value_length is None:
        element = header_writer.pixel_element_header(implicit_vr, little_endian, "OB", None)
        return CopyPlan(head + element, ref.value_offset, ref.end_offset, b"")
    odd = ref.value_length % 2
    element = header_writer.pixel_element_header(implicit_vr, little_endian, ref.vr, ref.value_length + odd)
    return CopyPlan(head + element, ref.value_offset, ref.end_offset, b"\0" * odd)


def _pixels_described(source: SourceInstance) -> PixelsDescribed | None:
    """_check_described() for a source whose Pixel Data is in the file, and the elements it was decided from
    (None when there is no such Pixel Data: nothing to check, or the check read the data set as a whole)."""
    ref = source.pixel_data
    if ref is None:
        return None
    _, tags = tags_read(lambda ds: check_described(ds, ref.value_length), source.dataset)
    return None if tags is None else PixelsDescribed(tags, ref.value_length)


def _check_described(source: SourceInstance) -> None:
    """Stored Pixel Data goes out as it is only when the source's Image Pixel attributes account for all of it."""
    ref = source.pixel_data
    if ref is not None:
        check_described(source.dataset, ref.value_length)
        return
    elem = source.dataset._dict[_PIXEL_DATA]  # parsed with the data set (deflated source)
    if isinstance(elem, RawDataElement):
        length = None if elem.length == _UNDEFINED_LENGTH else elem.length
    else:
        length = None if elem.is_undefined_length else len(elem.value or b"")
    check_described(source.dataset, length)


def _header_bytes(header: Dataset, body: Dataset, source: SourceInstance, target: UID,
                  spans: dict[int, tuple[int, int]] | None = None) -> tuple[bytes, bytes, FileMetaDataset]:
    """Preamble and file meta; the data set (see encode_data_set for `spans`); the file meta written."""
    implicit_vr, little_endian = syntaxes.data_set_encoding(target)
    try:
        meta = header_writer.file_meta_for(header, target)
        head = header_writer.preamble_and_meta(meta)
        data_set = header_writer.encode_data_set(body, implicit_vr, little_endian, _values_little_endian(body, source),
                                                 spans)
    except Exception as exc:  # pydicom quotes values in some messages; name the failure only
        raise TranscodeError(f"cannot encode the header in {target.name} ({type(exc).__name__})") from None
    return head, data_set, meta


def _output_data_set(header: Dataset) -> Dataset:
    """A shallow copy of `header` holding what goes into the data set: no meta, no pixel data, nothing after it.
    Element objects are shared with `header`; changes to the copy replace elements, never edit them."""
    kept = {
        tag: elem for tag, elem in header._dict.items()
        if tag < _PIXEL_DATA and tag >> 16 not in _NOT_IN_A_DATA_SET
    }
    body = Dataset(kept)
    implicit_vr, little_endian = header.original_encoding
    if implicit_vr is not None and little_endian is not None:
        body.set_original_encoding(implicit_vr, little_endian, header.original_character_set)
    return body


def _values_little_endian(body: Dataset, source: SourceInstance) -> bool:
    """The byte order of the header's binary values: that of the file it was read from."""
    little_endian = body.original_encoding[1]
    if little_endian is None:
        return bool(source.dataset.original_encoding[1] in (None, True))
    return bool(little_endian)


def _has_pixel_data(source: SourceInstance) -> bool:
    return source.pixel_data is not None or _PIXEL_DATA in source.dataset._dict


def _stream(head: bytes, data_set: bytes, pixel_chunks: Iterator[bytes], deflate: bool) -> Iterator[bytes]:
    yield head
    body = chain([data_set], pixel_chunks)
    yield from header_writer.deflated(body) if deflate else body
