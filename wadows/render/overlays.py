"""Overlay planes (PS3.3 C.9.2) of the image, as one mask per frame: bit-packed Overlay Data, or the retired
embedded form (a bit of the stored pixel values above Bits Stored)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

_GROUPS = range(0x6000, 0x6020, 2)


def overlay_mask(header: Dataset, frame_index: int, raw_frame: np.ndarray, little_endian: bool) -> np.ndarray | None:
    """True where any overlay plane of `header` marks frame `frame_index` (0-based); None when none does.
    `raw_frame` is the frame as stored (embedded overlays need the bits above Bits Stored)."""
    shape = raw_frame.shape[:2]
    mask: np.ndarray | None = None
    for group in _GROUPS:
        plane = _plane(header, group, frame_index, raw_frame, little_endian)
        if plane is None:
            continue
        origin = header.get((group, 0x0050))
        row, column = (int(origin.value[0]), int(origin.value[1])) if origin is not None and origin.VM == 2 else (1, 1)
        placed = _placed(plane, row - 1, column - 1, shape)
        mask = placed if mask is None else mask | placed
    return mask


def _plane(header: Dataset, group: int, frame_index: int, raw_frame: np.ndarray,
           little_endian: bool) -> np.ndarray | None:
    rows, columns = _int(header, group, 0x0010), _int(header, group, 0x0011)
    if not rows or not columns:
        return None
    first = (_int(header, group, 0x0051) or 1) - 1  # Image Frame Origin
    frames = _int(header, group, 0x0015)  # Number of Frames in Overlay
    if frames is None:
        offset = 0  # a single plane: it marks every frame
    elif first <= frame_index < first + frames:
        offset = frame_index - first
    else:
        return None
    data = header.get((group, 0x3000))
    if data is not None and data.value:
        return _unpacked(bytes(data.value), data.VR, rows, columns, offset, little_endian)
    bit = _int(header, group, 0x0102)  # Overlay Bit Position: embedded in the pixel values
    if bit is None or raw_frame.ndim != 2 or raw_frame.dtype.kind not in "iu" or bit >= raw_frame.dtype.itemsize * 8:
        return None
    unsigned = raw_frame.astype(raw_frame.dtype.newbyteorder("="), copy=False).view(f"u{raw_frame.dtype.itemsize}")
    return ((unsigned >> bit) & 1).astype(bool)[:rows, :columns]


def _unpacked(data: bytes, vr: str, rows: int, columns: int, offset: int, little_endian: bool) -> np.ndarray | None:
    if vr == "OW" and not little_endian:  # words were read in big endian byte order; bits count within words
        data = np.frombuffer(data[: len(data) // 2 * 2], dtype=">u2").astype("<u2").tobytes()
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")  # PS3.5 8.1.2: first pixel in bit 0
    size = rows * columns
    start = offset * size
    if start + size > len(bits):
        return None  # the data hold fewer frames than the attributes say: draw nothing rather than garbage
    return bits[start:start + size].reshape(rows, columns).astype(bool)


def _placed(plane: np.ndarray, top: int, left: int, shape: tuple[int, ...]) -> np.ndarray:
    """The plane put at its origin in an image-sized mask; parts outside the image are cut off."""
    mask = np.zeros(shape, dtype=bool)
    src_top, src_left = max(0, -top), max(0, -left)
    dst_top, dst_left = max(0, top), max(0, left)
    height = min(plane.shape[0] - src_top, shape[0] - dst_top)
    width = min(plane.shape[1] - src_left, shape[1] - dst_left)
    if height > 0 and width > 0:
        mask[dst_top:dst_top + height, dst_left:dst_left + width] = \
            plane[src_top:src_top + height, src_left:src_left + width]
    return mask


def _int(header: Dataset, group: int, element: int) -> int | None:
    elem = header.get((group, element))
    if elem is None or elem.value in (None, "", b""):
        return None
    value = elem.value[0] if elem.VM > 1 else elem.value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

