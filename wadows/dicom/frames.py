"""One frame of a stored image, decoded alone: rendering a frame of a 2000-frame cine must not decode 2000 frames.

pydicom's decoders take a file positioned at the Pixel Data value and an index: native data is read for
that frame only, encapsulated data has only that frame's fragments decoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from wadows.dicom import syntaxes
from wadows.dicom.codec_panics import panics_raised_as_errors
from wadows.dicom.element_values import whole_number
from wadows.dicom.image_pixel import pixel_options
from wadows.dicom.pixel_span import DicomReadError

if TYPE_CHECKING:
    from wadows.dicom.part10 import SourceInstance

__all__ = ["FrameOutOfRange", "FrameReadError", "frame_count", "read_frame"]

# Keywords of the pixel elements pydicom decodes, in the order a data set is searched for them.
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class FrameReadError(DicomReadError):
    """The frame cannot be decoded (the reason, never pixel or header values)."""


class FrameOutOfRange(FrameReadError, IndexError):
    """The frame index is not one of the object's frames."""


def frame_count(header: Dataset) -> int:
    """Number of Frames, 1 when absent, empty or unreadable (single-frame objects usually omit it)."""
    try:
        count = whole_number(header, 0x00280008) or 1
    except DicomReadError:
        return 1
    return max(count, 1)


def read_frame(source: SourceInstance, index: int, *, keep_unused_bits: bool = False) -> numpy.ndarray:
    """Frame `index` (0-based) of `source`, decoded alone: (rows, columns) or (rows, columns, samples).

    Colour comes out as pydicom gives it: YBR_FULL / YBR_FULL_422 converted to RGB, planes interleaved.
    `keep_unused_bits` keeps the bits above Bits Stored of native pixel data (where retired embedded
    overlays live); by default they are cleared and signed values sign-extended, as pydicom does.
    """
    header = source.dataset
    count = frame_count(header)
    if not 0 <= index < count:
        raise FrameOutOfRange(f"frame index {index} is out of range: the object has {count} frame(s)")
    ts = source.transfer_syntax
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise FrameReadError(f"no pixel decoder for {syntaxes.describe(ts)}") from None
    options: dict[str, Any] = {"as_rgb": True}
    if not ts.is_encapsulated:
        options["correct_unused_bits"] = not keep_unused_bits
    try:
        with panics_raised_as_errors():
            if source.pixel_data is not None:
                return _from_file(source, decoder, index, options)
            return _from_data_set(header, decoder, index, options)
    except FrameReadError:
        raise
    except Exception as exc:  # codec texts name formats and attribute values, never pixel values
        raise FrameReadError(f"cannot decode frame {index + 1}: {_reason(exc)}") from None


def _from_file(source: SourceInstance, decoder: Any, index: int, options: dict[str, Any]) -> numpy.ndarray:
    ref = source.pixel_data
    assert ref is not None
    options = pixel_options(source.dataset, **options)
    options.update(transfer_syntax_uid=source.transfer_syntax, pixel_keyword="PixelData", pixel_vr=ref.vr)
    source.fp.seek(ref.value_offset)  # the decoder reads from the current position
    arr, _ = decoder.as_array(source.fp, index=index, **options)
    return arr


def _from_data_set(header: Dataset, decoder: Any, index: int, options: dict[str, Any]) -> numpy.ndarray:
    """Deflated sources and float pixel data come parsed whole with the data set."""
    if not any(keyword in header for keyword in _PIXEL_KEYWORDS):
        raise FrameReadError("the object has no pixel data")
    arr, _ = decoder.as_array(header, index=index, **options)
    return arr


def _reason(exc: Exception) -> str:
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text[:300]}"
