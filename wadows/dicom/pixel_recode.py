"""The Pixel Data element decoded, optionally edited, and encoded again: one frame at a time.

Used when the stored bytes cannot go out as they are (another syntax, or pixels to clean). pydicom's
pixel plugins decode straight from the open file frame by frame, so peak memory is about one decoded
frame plus its encoded form. The first frame is done before anything is returned, so an impossible
conversion raises TranscodeError before a single byte goes out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, get_encoder
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID

from wadows.dicom import syntaxes
from wadows.dicom.codec_panics import without_panics
from wadows.dicom.header_writer import EMPTY_OFFSET_TABLE, SEQUENCE_DELIMITER, item_header, pixel_element_header
from wadows.dicom.image_pixel import expected_length, pixel_options
from wadows.dicom.pixel_span import DicomReadError
from wadows.dicom.transcode import TranscodeError

if TYPE_CHECKING:
    from wadows.dicom.part10 import SourceInstance

PixelEdit = Callable[[np.ndarray, Dataset], np.ndarray]

class _PixelEditFailed(Exception):
    """Carries an exception of the caller's pixel_edit through our generators, to be re-raised as it was."""


# Elements that describe the stored encapsulation and are wrong once we re-encode.
_STALE_ENCAPSULATION = ("ExtendedOffsetTable", "ExtendedOffsetTableLengths", "EncapsulatedPixelDataValueTotalLength")


def recoded_pixel_data(
    source: SourceInstance, out: Dataset, target: UID, pixel_edit: PixelEdit | None
) -> Iterator[bytes]:
    """The Pixel Data element of `source` in `target`, with `pixel_edit` applied to every frame.

    `out` is the caller's private copy of the output header: its Image Pixel attributes are updated here
    to describe the pixels we yield (as pydicom's decompress/compress do), and `pixel_edit` receives it.
    """
    to_native = target in syntaxes.NATIVE
    decoded = _decoded_frames(source, keep_unused_bits=to_native, as_rgb=pixel_edit is not None)
    first, properties = _first_frame(decoded, source.transfer_syntax)
    _describe_decoded_pixels(out, properties, source)
    count = pixel_options(source.dataset)["number_of_frames"]
    # Decoders may find more fragments than frames in broken JPEG data; the header promises `count`.
    frames = _edited(islice(chain([first], (arr for arr, _ in decoded)), count), out, pixel_edit)
    if to_native:
        pieces = _native_element(frames, out, target, count)
    else:
        pieces = _encapsulated_element(frames, out, target)
    return _guarded(pieces, target)


def _decoded_frames(
    source: SourceInstance, keep_unused_bits: bool, as_rgb: bool
) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    ts = source.transfer_syntax
    # YCbCr goes to RGB as in pydicom's decompress and pixel_array when the source is lossy anyway or pixels
    # are edited (blanking to 0 means black in RGB); a plain lossless transcode keeps the values exact.
    options: dict[str, Any] = {"as_rgb": as_rgb or ts in syntaxes.LOSSY_METHOD}
    if ts in syntaxes.NATIVE:
        # Native output keeps bits above Bits Stored (embedded overlays) for pixel_edit to see; encoders
        # refuse values outside Bits Stored, so compressed output gets them cleared by pydicom.
        options["correct_unused_bits"] = not keep_unused_bits
    opts = pixel_options(source.dataset, **options)
    ref = source.pixel_data
    if ref is None:  # parsed with the data set (deflated source)
        return without_panics(get_decoder(ts).iter_array(source.dataset, **opts))
    if ref.value_length is not None and ref.value_length < expected_length(source.dataset):
        raise TranscodeError("Pixel Data is shorter than its Image Pixel attributes say")
    opts.update(transfer_syntax_uid=ts, pixel_keyword="PixelData", pixel_vr=ref.vr)
    source.fp.seek(ref.value_offset)  # the plugins read the value from the current position
    return without_panics(get_decoder(ts).iter_array(source.fp, **opts))


def _first_frame(decoded: Iterator[tuple[np.ndarray, dict[str, Any]]], ts: UID) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        return next(decoded)
    except StopIteration:
        raise TranscodeError("Pixel Data holds no frame") from None
    except (TranscodeError, DicomReadError):
        raise
    except Exception as exc:
        raise TranscodeError(f"cannot decode the stored {ts.name} pixel data: {_reason(exc)}") from None


def _describe_decoded_pixels(out: Dataset, properties: dict[str, Any], source: SourceInstance) -> None:
    """Image Pixel attributes for decoded pixels: always full resolution and colour-by-pixel."""
    photometric = str(properties["photometric_interpretation"])
    if photometric == "YBR_FULL_422":  # decoded chroma is no longer subsampled
        photometric = "YBR_FULL"
    _put(out, "PhotometricInterpretation", photometric)
    if int(properties["samples_per_pixel"]) > 1:
        _put(out, "PlanarConfiguration", 0)
    for keyword in _STALE_ENCAPSULATION:
        if keyword in out:
            del out[keyword]
    method = syntaxes.LOSSY_METHOD.get(source.transfer_syntax)
    if method is not None:  # once lossy, always marked lossy (PS3.3 C.7.6.1.1.5)
        _put(out, "LossyImageCompression", "01")
        if "LossyImageCompressionMethod" not in out:
            _put(out, "LossyImageCompressionMethod", method)
            ratio = _stored_ratio(source)
            if ratio and "LossyImageCompressionRatio" not in out:
                _put(out, "LossyImageCompressionRatio", ratio)


def _stored_ratio(source: SourceInstance) -> str | None:
    ref = source.pixel_data
    if ref is None or ref.end_offset <= ref.value_offset:
        return None
    ratio = expected_length(source.dataset) / (ref.end_offset - ref.value_offset)
    return f"{ratio:.2f}"[:16]


def _put(ds: Dataset, keyword: str, value: Any) -> None:
    """Set by replacing the element: `ds` shares element objects with the caller's header."""
    tag = tag_for_keyword(keyword)
    ds[tag] = DataElement(tag, dictionary_VR(tag), value)


def _edited(frames: Iterable[np.ndarray], out: Dataset, pixel_edit: PixelEdit | None) -> Iterator[np.ndarray]:
    for arr in frames:
        if pixel_edit is not None:
            shape, dtype = arr.shape, arr.dtype
            try:
                arr = pixel_edit(arr, out)
            except Exception as exc:
                raise _PixelEditFailed() from exc
            if not isinstance(arr, np.ndarray) or arr.shape != shape:
                raise TranscodeError("the pixel edit changed the shape of a frame")
            if arr.dtype != dtype:
                if arr.dtype.kind not in "iub":
                    raise TranscodeError("the pixel edit returned non-integer pixels")
                arr = arr.astype(dtype)
        yield arr


def _native_element(frames: Iterator[np.ndarray], out: Dataset, target: UID, count: int) -> Iterator[bytes]:
    implicit_vr, little_endian = syntaxes.data_set_encoding(target)
    opts = pixel_options(out)
    bits_allocated = opts["bits_allocated"]
    pixels_per_frame = opts["rows"] * opts["columns"] * opts.get("samples_per_pixel", 1)
    total = (count * pixels_per_frame * bits_allocated + 7) // 8
    if total >= 0xFFFFFFFE:
        raise TranscodeError("uncompressed Pixel Data would exceed the 4 GB element length limit")
    if bits_allocated == 1:
        values = _packed_bits(frames)
    else:
        values = (_native_bytes(arr, bits_allocated, little_endian) for arr in frames)
    first = next(values)  # done before the first yield: errors surface before any byte goes out
    yield pixel_element_header(implicit_vr, little_endian, "OB" if bits_allocated <= 8 else "OW", total + total % 2)
    yield first
    written = len(first)
    for value in values:
        written += len(value)
        if written > total:
            raise TranscodeError("decoded frames are larger than the Image Pixel attributes say")
        yield value
    if written != total:
        raise TranscodeError("Pixel Data holds fewer frames than Number of Frames says")
    if total % 2:
        yield b"\0"


def _native_bytes(arr: np.ndarray, bits_allocated: int, little_endian: bool) -> bytes:
    """Frame values in the target byte order: whole pixel values swap for big endian (PS3.5 7.3)."""
    dtype = np.dtype(f"{'<' if little_endian else '>'}{arr.dtype.kind}{bits_allocated // 8}")
    return np.ascontiguousarray(arr).astype(dtype, copy=False).tobytes()


def _packed_bits(frames: Iterator[np.ndarray]) -> Iterator[bytes]:
    """Bits Allocated 1: frames share bytes unless each holds a multiple of 8 pixels; then we must pack
    all frames at once (the only case held in memory whole; such frames are small)."""
    first = next(frames)
    if first.size % 8 == 0:
        yield pack_bits(first, pad=False)
        for arr in frames:
            yield pack_bits(arr, pad=False)
        return
    yield pack_bits(np.concatenate([first.ravel(), *(arr.ravel() for arr in frames)]), pad=False)


def _encapsulated_element(frames: Iterator[np.ndarray], out: Dataset, target: UID) -> Iterator[bytes]:
    encoder = get_encoder(target)
    options = pixel_options(out, number_of_frames=1)  # we hand over one frame at a time
    if int(options.get("samples_per_pixel", 1)) > 1:
        options["planar_configuration"] = 0
    # Some encoder plugins (JPEG-LS) return bytearray; WSGI servers accept only bytes.
    encoded = without_panics(bytes(encoder.encode(arr, **options)) for arr in frames)
    first = next(encoded)  # done before the first yield: errors surface before any byte goes out
    yield pixel_element_header(False, True, "OB", None)
    yield EMPTY_OFFSET_TABLE
    for fragment in chain([first], encoded):
        pad = len(fragment) % 2
        yield item_header(len(fragment) + pad)
        yield fragment + b"\0" if pad else fragment
    yield SEQUENCE_DELIMITER


def _guarded(pieces: Iterator[bytes], target: UID) -> Iterator[bytes]:
    """Run the element generator up to its first frame now; later failures become TranscodeError too."""
    try:
        ready = [next(pieces)]  # the generators finish their first frame before their first yield
    except Exception as exc:
        raise _translated(exc, f"cannot encode the pixel data as {target.name}") from None
    return _continue(ready, pieces, target)


def _continue(ready: list[bytes], pieces: Iterator[bytes], target: UID) -> Iterator[bytes]:
    yield from ready
    try:
        yield from pieces
    except Exception as exc:
        raise _translated(exc, f"encoding the pixel data as {target.name} failed") from None


def _translated(exc: Exception, what: str) -> Exception:
    """Our own errors pass; a failed pixel edit is re-raised as itself; codec errors become TranscodeError
    naming the reason only (their texts may quote values)."""
    if isinstance(exc, (TranscodeError, DicomReadError)):
        return exc
    if isinstance(exc, _PixelEditFailed):
        return exc.__cause__
    return TranscodeError(f"{what}: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    """The codec's own words, shortened: they name formats and Image Pixel attribute values, never pixel values."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()).replace(":;", ":")
    return f"{type(exc).__name__}: {text[:300]}"
