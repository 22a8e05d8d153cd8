"""The Pixel Data element with the stored value bytes untouched: the fast path, in bounded memory.

Only valid when the bytes mean the same in the target syntax (same syntax, or little endian native to
little endian native); the element header is written for the target's VR form.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from wadows.dicom.element_values import whole_number
from wadows.dicom.header_writer import SEQUENCE_DELIMITER, pixel_element_header
from wadows.dicom.pixel_span import DicomReadError

if TYPE_CHECKING:
    from wadows.dicom.part10 import SourceInstance


def copied_pixel_data(
    source: SourceInstance, implicit_vr: bool, little_endian: bool, chunk_size: int
) -> Iterator[bytes]:
    """Yield the Pixel Data element: header, then the stored value in `chunk_size` reads (padded to even
    length, PS3.5 7.1.1). Reads `source.fp` lazily: keep it open until the iterator is done."""
    ref = source.pixel_data
    if ref is None:
        yield from _in_memory_pixel_data(source, implicit_vr, little_endian)
        return
    if ref.value_length is None:
        yield pixel_element_header(implicit_vr, little_endian, "OB", None)
        yield from _read_range(source, ref.value_offset, ref.end_offset, chunk_size)  # items + delimiter
        return
    odd = ref.value_length % 2
    yield pixel_element_header(implicit_vr, little_endian, ref.vr, ref.value_length + odd)
    yield from _read_range(source, ref.value_offset, ref.end_offset, chunk_size)
    if odd:
        yield b"\0"


def _in_memory_pixel_data(source: SourceInstance, implicit_vr: bool, little_endian: bool) -> Iterator[bytes]:
    """Pixel Data parsed with the data set (deflated sources, where stream offsets do not exist)."""
    elem = source.dataset["PixelData"]
    value = bytes(elem.value or b"")
    if elem.is_undefined_length:  # pydicom keeps the items but not the closing delimiter
        yield pixel_element_header(implicit_vr, little_endian, "OB", None)
        yield value
        yield SEQUENCE_DELIMITER
        return
    vr = elem.VR if elem.VR in ("OB", "OW") else ("OB" if (whole_number(source.dataset, 0x00280100) or 16) <= 8 else "OW")
    odd = len(value) % 2
    yield pixel_element_header(implicit_vr, little_endian, vr, len(value) + odd)
    yield value + b"\0" if odd else value


def _read_range(source: SourceInstance, start: int, stop: int, chunk_size: int) -> Iterator[bytes]:
    fp, position = source.fp, start
    while position < stop:
        fp.seek(position)  # every time: nothing guarantees the file position between our reads
        data = fp.read(min(chunk_size, stop - position))
        if not data:
            raise DicomReadError("the source file ended before its Pixel Data did")
        position += len(data)
        yield data
