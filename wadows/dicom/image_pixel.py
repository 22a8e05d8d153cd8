"""The Image Pixel attributes of an object, checked, and what they say its native Pixel Data holds.

pydicom hands these to the codecs as they come: Number of Frames as text multiplies a string, a missing Samples
per Pixel or a list in Rows surface as TypeError, ValueError or AttributeError deep in a plugin. Read here, an
attribute that is not a whole number is a DicomReadError.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from wadows.dicom.element_values import code_string, value_of, whole_number
from wadows.dicom.pixel_span import DicomReadError

__all__ = ["check_described", "expected_length", "pixel_options"]

_NUMBERS = {
    0x00280002: "samples_per_pixel",
    0x00280006: "planar_configuration",
    0x00280008: "number_of_frames",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits_allocated",
    0x00280101: "bits_stored",
    0x00280103: "pixel_representation",
}
_PHOTOMETRIC = 0x00280004
_EXTENDED_OFFSETS = (0x7FE00001, 0x7FE00002)
_REQUIRED = ("rows", "columns", "samples_per_pixel", "bits_allocated")


def pixel_options(ds: Dataset, **overrides: Any) -> dict[str, Any]:
    """What pydicom's as_pixel_options(ds, **overrides) gives, from checked values (`ds` is not changed)."""
    opts: dict[str, Any] = {}
    for tag, key in _NUMBERS.items():
        number = whole_number(ds, tag)
        if number is not None:
            opts[key] = number
    # absent, empty or 0: one frame, as pydicom; a negative count is no count either
    opts["number_of_frames"] = max(opts.get("number_of_frames") or 1, 1)
    photometric = code_string(ds, _PHOTOMETRIC)
    if photometric is not None:
        opts["photometric_interpretation"] = photometric
    if all(tag in ds._dict for tag in _EXTENDED_OFFSETS):
        opts["extended_offsets"] = tuple(value_of(ds, tag) for tag in _EXTENDED_OFFSETS)
    opts.update(overrides)
    return opts


def expected_length(ds: Dataset) -> int:
    """Bytes of native Pixel Data the attributes describe, without the padding of an odd length (as pydicom's
    get_expected_length)."""
    opts = pixel_options(ds)
    missing = [key for key in _REQUIRED if key not in opts]
    if missing:
        raise DicomReadError(f"the Image Pixel attributes lack {', '.join(missing)}")
    if any(opts[key] < 0 for key in (*_REQUIRED, "number_of_frames")):
        raise DicomReadError("an Image Pixel attribute is negative")
    pixels = opts["rows"] * opts["columns"] * opts["samples_per_pixel"] * opts["number_of_frames"]
    bits = opts["bits_allocated"]
    length = (pixels + 7) // 8 if bits == 1 else pixels * (bits // 8)
    if opts.get("photometric_interpretation") == "YBR_FULL_422":
        length = length // 3 * 2  # chroma subsampled two to one (PS3.3 C.7.6.3.1.2)
    return length


def check_described(ds: Dataset, value_length: int | None) -> None:
    """Raise DicomReadError unless the Image Pixel attributes of `ds` account for every byte of a Pixel Data
    value of `value_length` bytes (None: encapsulated, then they must at least be there and readable).

    Called before Pixel Data goes out as it is stored: bytes no attribute describes could be anything, the
    rest of a header whose length field was stretched over it included."""
    try:
        expected = expected_length(ds)
    except DicomReadError as exc:
        raise DicomReadError(f"nothing describes the Pixel Data: {exc}") from None
    if value_length is None or value_length == expected + expected % 2 or value_length == expected:
        return
    shorter = "shorter" if value_length < expected else "longer"
    raise DicomReadError(f"Pixel Data is {shorter} than its Image Pixel attributes say")
