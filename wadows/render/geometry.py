"""Spatial steps on the 8-bit image: displayed area, rotation and flip, region, output size."""

from __future__ import annotations

import math

from PIL import Image
from pydicom.dataset import Dataset

from wadows.render.presentation import DisplayedArea
from wadows.render.request import MAX_OUTPUT_SIDE

_CLOCKWISE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def pixel_x_stretch(header: Dataset) -> float:
    """Displayed width over height of one pixel, from Pixel Spacing (row \\ column) or Pixel Aspect Ratio
    (vertical \\ horizontal): non-square pixels must not distort the picture."""
    try:
        spacing = header.get("PixelSpacing")
        if spacing and len(spacing) == 2 and float(spacing[0]) > 0 and float(spacing[1]) > 0:
            return _meaningful(float(spacing[1]) / float(spacing[0]))
        aspect = header.get("PixelAspectRatio")
        if aspect and len(aspect) == 2 and int(aspect[0]) > 0 and int(aspect[1]) > 0:
            return _meaningful(int(aspect[1]) / int(aspect[0]))
    except (TypeError, ValueError):
        pass
    return 1.0


def _meaningful(stretch: float) -> float:
    """Rounding noise in spacing values (0.703125 vs 0.703124) is not an aspect ratio; absurd ratios are errors."""
    return stretch if 0.001 < abs(stretch - 1.0) and 0.1 <= stretch <= 10.0 else 1.0


def displayed_area(image: Image.Image, area: DisplayedArea) -> Image.Image:
    """The area between the two corners (1-based, inclusive, in stored image coordinates); parts outside
    the image are black (PS3.3 C.10.4 leaves them undefined)."""
    (c1, r1), (c2, r2) = area.top_left, area.bottom_right
    return image.crop((min(c1, c2) - 1, min(r1, r2) - 1, max(c1, c2), max(r1, r2)))


def oriented(image: Image.Image, rotation: int, flip: bool) -> Image.Image:
    """Rotate clockwise, then flip horizontally (PS3.3 C.10.6 fixes that order)."""
    if rotation in _CLOCKWISE:
        image = image.transpose(_CLOCKWISE[rotation])
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def region(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Normalized x1, y1, x2, y2 to the pixels they cover, at least one."""
    width, height = image.size
    x1, y1, x2, y2 = box
    left, top = min(math.floor(x1 * width), width - 1), min(math.floor(y1 * height), height - 1)
    right, bottom = max(math.ceil(x2 * width), left + 1), max(math.ceil(y2 * height), top + 1)
    return image.crop((left, top, right, bottom))


def output_size(natural: tuple[float, float], rows: int | None, columns: int | None,
                magnification: float | None) -> tuple[int, int]:
    """(width, height) of the output. Rows and Columns are maxima: the image is scaled to fit them with its
    aspect ratio kept (up or down). MAGNIFY scales by its factor, still within Rows/Columns."""
    width, height = natural
    box = [limit / size for limit, size in ((columns, width), (rows, height)) if limit is not None]
    if magnification is not None:
        wanted = magnification
    else:
        wanted = min(box) if box else 1.0
    scale = min([wanted, *box, MAX_OUTPUT_SIDE / width, MAX_OUTPUT_SIDE / height])
    out_width = max(1, min(round(width * scale), columns or MAX_OUTPUT_SIDE))
    out_height = max(1, min(round(height * scale), rows or MAX_OUTPUT_SIDE))
    return out_width, out_height


def resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    # Lanczos keeps edges sharp both ways; reducing_gap makes large reductions fast at no visible cost.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
