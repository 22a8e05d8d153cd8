"""The grayscale pipeline (PS3.4 N.2): stored values -> Modality LUT -> VOI -> Presentation LUT -> 8-bit.

Values stay floating point until the end; intensities are 0..1 between the VOI and the final quantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from wadows.render.luts import read_lut
from wadows.render.voi import Voi, data_range, voi_of


@dataclass(frozen=True)
class GrayscaleSettings:
    """What may override the image's own attributes: the request and a presentation state."""

    window: tuple[float, float] | None = None  # the request's window: beats everything
    modality: Dataset | None = None  # a presentation state's Modality LUT module, used instead of the image's
    voi: Dataset | None = None  # a presentation state's Softcopy VOI LUT item for this image and frame
    presentation_lut: Dataset | None = None  # a presentation state's Presentation LUT module


def stored_values(frame: np.ndarray, header: Dataset) -> np.ndarray:
    """The frame with the bits above Bits Stored cleared and signed values sign-extended (they stay set
    when the frame was read with its embedded overlay bits)."""
    if frame.dtype.kind not in "iu":
        return frame
    bits_total = frame.dtype.itemsize * 8
    bits_stored = int(header.get("BitsStored") or bits_total)
    if not 0 < bits_stored < bits_total:
        return frame
    unsigned = frame.astype(frame.dtype.newbyteorder("="), copy=False).view(f"u{frame.dtype.itemsize}")
    values = unsigned & np.array((1 << bits_stored) - 1, dtype=unsigned.dtype)
    if int(header.get("PixelRepresentation") or 0) == 1:
        sign = 1 << (bits_stored - 1)
        wide = np.int32 if frame.dtype.itemsize <= 2 else np.int64
        return (values ^ np.array(sign, dtype=unsigned.dtype)).astype(wide) - sign  # two's complement of Bits Stored
    return values


def padding_keep(stored: np.ndarray, header: Dataset) -> np.ndarray | None:
    """Pixels that are not padding (PS3.3 C.7.5.1.1.2), so the data range ignores the air outside a CT."""
    padding = header.get("PixelPaddingValue")
    if padding is None or stored.dtype.kind not in "iu":
        return None
    limit = header.get("PixelPaddingRangeLimit")
    low, high = sorted((int(padding), int(limit if limit is not None else padding)))
    return (stored < low) | (stored > high)


def to_grayscale(stored: np.ndarray, image: Dataset, little_endian: bool,
                 settings: GrayscaleSettings) -> tuple[np.ndarray, tuple[float, float] | None]:
    """8-bit display values of a monochrome frame, and the window used (None when a VOI LUT was used)."""
    modality_source = settings.modality if settings.modality is not None else image
    signed_stored = int(image.get("PixelRepresentation") or 0) == 1
    values = _modality(stored, modality_source, little_endian, signed_stored)
    signed_output = signed_stored or float(modality_source.get("RescaleIntercept") or 0) < 0
    if settings.window is not None:
        voi = Voi(window=settings.window)
    else:
        voi = (settings.voi is not None and voi_of(settings.voi, little_endian, signed_output)) or \
            voi_of(image, little_endian, signed_output) or data_range(values, padding_keep(stored, image))
    intensities = voi.apply(values)
    del values  # frames can be tens of megapixels: free one before making the next
    intensities = _presentation(intensities, image, settings.presentation_lut, little_endian)
    intensities *= 255.0
    return np.rint(intensities, out=intensities).astype(np.uint8), voi.window


def _modality(stored: np.ndarray, source: Dataset, little_endian: bool, signed: bool) -> np.ndarray:
    """PS3.3 C.11.1: a Modality LUT, else Rescale Slope/Intercept, else the stored values."""
    float_type = np.float64 if stored.dtype.itemsize >= 4 else np.float32  # float32 is exact to 2^24
    sequence = source.get("ModalityLUTSequence")
    if sequence:
        return read_lut(sequence[0], little_endian, signed).apply(stored).astype(float_type)
    values = stored.astype(float_type)
    slope, intercept = source.get("RescaleSlope"), source.get("RescaleIntercept")
    if slope not in (None, "") and float(slope) != 1.0:
        values *= float(slope)
    if intercept not in (None, "") and float(intercept) != 0.0:
        values += float(intercept)
    return values


def _presentation(intensities: np.ndarray, image: Dataset, module: Dataset | None, little_endian: bool) -> np.ndarray:
    """A presentation state's Presentation LUT replaces the image's polarity; without one, MONOCHROME1 (or an
    image's own Presentation LUT Shape INVERSE, which says the same thing) shows low values white."""
    if module is not None:
        sequence = module.get("PresentationLUTSequence")
        if sequence:
            lut = read_lut(sequence[0], little_endian)  # its input range is 0 .. entries-1 (PS3.3 C.11.6.1)
            return lut.apply(intensities * (len(lut.values) - 1)) / lut.top
        return _inverted(intensities) if _shape(module) == "INVERSE" else intensities
    photometric = str(image.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "MONOCHROME1" or _shape(image) == "INVERSE":
        return _inverted(intensities)
    return intensities


def _inverted(intensities: np.ndarray) -> np.ndarray:
    return np.subtract(1.0, intensities, out=intensities)


def _shape(ds: Dataset) -> str:
    return str(ds.get("PresentationLUTShape", "") or "").strip().upper()
