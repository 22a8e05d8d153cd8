"""The VOI transformation (PS3.3 C.11.2): modality values to display intensities 0..1.

Sources, first found wins: the request's window, a presentation state's Softcopy VOI LUT item, the image's
first Window Center/Width, the image's first VOI LUT, and last the data range of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from wadows.render.luts import Lut, read_lut

_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Voi:
    window: tuple[float, float] | None = None  # center, width
    function: str = "LINEAR"
    lut: Lut | None = None

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.lut is not None:
            return self.lut.apply(x) / self.lut.top
        assert self.window is not None
        return _windowed(x, *self.window, self.function)


def _windowed(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """A new array; arithmetic in place on it, as frames can be tens of megapixels."""
    if function == "SIGMOID":  # C.11.2.1.3.1
        y = np.multiply(x - center, -4.0 / width)
        np.exp(y, out=y)
        y += 1.0
        return np.reciprocal(y, out=y)
    if function == "LINEAR_EXACT":  # C.11.2.1.3.2
        y = x - center
        y /= width
    elif width <= 1.0:  # C.11.2.1.2.1 degenerates to a threshold at c - 0.5
        return (x > center - 0.5).astype(x.dtype)
    else:  # C.11.2.1.2.1
        y = x - (center - 0.5)
        y /= width - 1.0
    y += 0.5
    return np.clip(y, 0.0, 1.0, out=y)


def window_of(item: Dataset) -> Voi | None:
    """The first Window Center/Width pair of `item`, with its VOI LUT Function; None if absent or unusable."""
    center, width = _first_number(item.get("WindowCenter")), _first_number(item.get("WindowWidth"))
    if center is None or width is None:
        return None
    function = str(item.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in _FUNCTIONS:
        function = "LINEAR"
    minimum = 1.0 if function == "LINEAR" else 0.0  # LINEAR needs width >= 1, the others width > 0
    if width < minimum or width <= 0.0:
        return None
    return Voi(window=(center, width), function=function)


def lut_of(item: Dataset, little_endian: bool, signed_input: bool) -> Voi | None:
    """The first item of the VOI LUT Sequence of `item`, if any."""
    sequence = item.get("VOILUTSequence")
    if not sequence:
        return None
    return Voi(lut=read_lut(sequence[0], little_endian, signed_input))


def voi_of(item: Dataset, little_endian: bool, signed_input: bool) -> Voi | None:
    """A window if `item` has one, else its VOI LUT (PS3.3 C.11.2.1: when both exist, a window is the usual choice)."""
    return window_of(item) or lut_of(item, little_endian, signed_input)


def data_range(values: np.ndarray, keep: np.ndarray | None) -> Voi:
    """The window spanning the frame's values (without padding pixels): minimum to black, maximum to white."""
    where = keep if keep is not None and keep.any() else True
    if not values.size:
        return Voi(window=(0.5, 1.0))
    low = float(np.min(values, where=where, initial=np.inf))
    high = float(np.max(values, where=where, initial=-np.inf))
    # C.11.2.1.2.1 maps c - 0.5 - (w-1)/2 to black and c - 0.5 + (w-1)/2 to white
    return Voi(window=((low + high) / 2.0 + 0.5, high - low + 1.0))


def _first_number(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None  # type: ignore[index, arg-type]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
