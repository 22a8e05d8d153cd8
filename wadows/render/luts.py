"""Lookup tables of the Modality, VOI and Presentation LUT modules (PS3.3 C.11) as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from wadows.render.request import RenderError, RenderFailure


@dataclass(frozen=True)
class Lut:
    first_mapped: int  # input value mapped to the first entry
    values: np.ndarray  # output values, unsigned integers
    bits: int  # nominal output depth, from the descriptor

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Inputs below the first mapped value take the first entry, inputs beyond the last take the last."""
        index = np.clip(np.rint(x - self.first_mapped), 0, len(self.values) - 1).astype(np.intp)
        return self.values[index]

    @property
    def top(self) -> float:
        """The largest output value, for normalizing to 0..1. Some writers declare 16 bits and fill 12: the
        declared depth wins unless the data exceed it."""
        return float(max(2 ** self.bits - 1, int(self.values.max(initial=1))))


def read_lut(item: Dataset, little_endian: bool, signed_input: bool = False) -> Lut:
    """The LUT of a sequence item holding LUT Descriptor and LUT Data (US values or OW bytes)."""
    try:
        entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
        data = item["LUTData"].value
    except (AttributeError, KeyError, TypeError, ValueError):
        raise RenderError(RenderFailure.PROCESSING_FAILURE, "a LUT has no usable LUT Descriptor or LUT Data") from None
    entries = entries or 65536  # PS3.3 C.11.1.1: 0 means 2^16
    if signed_input and first_mapped > 0x7FFF:  # descriptor read as US although the input values are signed
        first_mapped -= 0x10000
    if isinstance(data, (bytes, bytearray)):
        if bits <= 8 and len(data) in (entries, entries + 1):
            values = np.frombuffer(data[:entries], dtype=np.uint8)  # 8-bit entries written one per byte
        else:
            values = np.frombuffer(data[: len(data) // 2 * 2], dtype="<u2" if little_endian else ">u2")
    else:
        values = np.atleast_1d(np.asarray(data if data is not None else [], dtype=np.int64))
    if len(values) < entries or not 1 <= bits <= 16:
        raise RenderError(RenderFailure.PROCESSING_FAILURE, "a LUT's data do not match its descriptor")
    return Lut(first_mapped, values[:entries].astype(np.float64), bits)
