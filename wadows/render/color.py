"""Colour frames to 8-bit RGB: palette colour through its LUTs (pydicom's apply_color_lut), true colour scaled
from Bits Stored. YCbCr frames arrive as RGB already (wadows.dicom.frames decodes them so)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from wadows.render.request import RenderError, RenderFailure


def palette_to_rgb(stored: np.ndarray, header: Dataset) -> np.ndarray:
    try:
        rgb = apply_color_lut(stored, header)
    except Exception as exc:  # a missing or inconsistent palette; pydicom's text quotes no pixel values
        raise RenderError(RenderFailure.PROCESSING_FAILURE,
                          f"the palette colour lookup tables cannot be applied ({type(exc).__name__})") from None
    rgb = rgb[..., :3]  # an alpha palette has no meaning in a rendered image
    if rgb.dtype.itemsize > 1:  # 16-bit palette entries
        return (rgb >> 8).astype(np.uint8)
    return rgb.astype(np.uint8, copy=False)


def true_color_to_rgb(frame: np.ndarray, header: Dataset) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    bits_stored = int(header.get("BitsStored") or frame.dtype.itemsize * 8)
    top = float((1 << bits_stored) - 1)
    return np.rint(np.clip(frame.astype(np.float64), 0.0, top) * (255.0 / top)).astype(np.uint8)
