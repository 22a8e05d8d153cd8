"""Reading element values from a Dataset without converting it in place.

pydicom converts a raw element the first time it is read through ``ds[tag]`` and stores the result in
the dataset; the de-identifier promises not to touch its input, and most elements never need their
value at all, so values are converted on the side and only when asked for, by
:mod:`wadows.dicom.element_values` (an element pydicom cannot convert is a DicomReadError).
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import DicomDictionary, mask_match, RepeatersDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from wadows.dicom.element_values import converted, element, value_of

__all__ = ["converted", "dictionary_vr", "element", "int_value", "raw_ascii", "text_of", "text_value", "value_of", "vr_of"]

_VR_CACHE: dict[int, str] = {}


def dictionary_vr(tag: int) -> str:
    """The data dictionary's VR for a tag ('UN' when unknown; first choice when ambiguous)."""
    vr = _VR_CACHE.get(tag)
    if vr is None:
        entry = DicomDictionary.get(tag)
        if entry is None and not (tag >> 16) & 1:
            mask = mask_match(tag)
            entry = RepeatersDictionary.get(mask) if mask else None
        vr = entry[0].split(" or ")[0] if entry else "UN"
        if len(_VR_CACHE) < 50_000:  # unknown tags in hostile input must not grow it without end
            _VR_CACHE[tag] = vr
    return vr


def vr_of(tag: int, elem: DataElement | RawDataElement) -> str:
    """The VR to judge an element by: the encoded one, or the dictionary's for implicit VR and UN."""
    vr = elem.VR
    if vr is None or vr == "UN":
        return dictionary_vr(tag) if not (tag >> 16) & 1 else (vr or "UN")
    return vr.split(" or ")[0]


def text_of(value: Any) -> str:
    """A value as one string: multi-values joined by backslashes, person names as written."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(text_of(v) for v in value)
    return str(value)


# VRs whose encoded bytes are ASCII whatever the Specific Character Set: read without conversion.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})


def text_value(ds: Dataset, tag: int) -> str:
    """The value of a string element as stripped text ('' when absent)."""
    elem = element(ds, tag)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement) and elem.value is not None:
        vr = elem.VR or dictionary_vr(tag)
        if vr in _ASCII_VRS:
            return elem.value.decode("latin-1").strip("\0 ")
    return text_of(converted(ds, elem).value).strip()


def int_value(ds: Dataset, tag: int) -> int | None:
    """A US/SS/IS value as int (None when absent, empty or not a whole number)."""
    elem = element(ds, tag)
    if elem is None:
        return None
    if (isinstance(elem, RawDataElement) and elem.value is not None and elem.length == 2
            and (elem.VR or dictionary_vr(tag)) == "US"):
        return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")
    value = converted(ds, elem).value
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def raw_ascii(elem: DataElement | RawDataElement) -> str | None:
    """An ASCII-only value (UI, DA, DT, TM) straight from the encoded bytes when still raw."""
    if isinstance(elem, RawDataElement):
        return None if elem.value is None else elem.value.decode("latin-1").rstrip("\0 ")
    return text_of(elem.value)
