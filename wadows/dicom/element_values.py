"""Element values read on the side, the one place where wadows has pydicom convert an encoded element.

pydicom converts a raw element the first time it is read through ``ds[tag]`` and keeps the result in the data
set; reading through here leaves the data set as it was (the de-identifier promises not to touch its input, and
the paths by difference compare encoded elements). Conversion fails on stored bytes that are not what their
element says (an unknown VR, a malformed sequence, which pydicom parses only now, a US of 3 bytes): that is a
DicomReadError naming the tag, never pydicom's message, which may quote the value.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset

from wadows.dicom.pixel_span import DicomReadError

__all__ = ["code_string", "converted", "element", "value_of", "whole_number"]


def converted(ds: Dataset, elem: DataElement | RawDataElement) -> DataElement:
    """`elem` of `ds` with its value decoded (in `ds`'s character set); `ds` is not changed."""
    if not isinstance(elem, RawDataElement):
        return elem
    try:
        return convert_raw_data_element(elem, encoding=ds._character_set, ds=ds)
    except Exception as exc:
        raise DicomReadError(f"data element {_tag(elem.tag)} cannot be read ({type(exc).__name__})") from None


def element(ds: Dataset, tag: int) -> DataElement | RawDataElement | None:
    """ds.get_item(tag) for an int tag, without its Tag() conversion (half the cost of reading a few values)."""
    elem = ds._dict.get(tag)
    if type(elem) is RawDataElement and elem.value is None and elem.length:
        try:  # a value pydicom deferred (or an element it could not read at all): pydicom reads and converts it
            return ds.get_item(tag)
        except Exception as exc:
            raise DicomReadError(f"data element {_tag(tag)} cannot be read ({type(exc).__name__})") from None
    return elem


def value_of(ds: Dataset, tag: int, default: Any = None) -> Any:
    elem = element(ds, tag)
    if elem is None:
        return default
    value = converted(ds, elem).value
    return default if value is None else value


def whole_number(ds: Dataset, tag: int) -> int | None:
    """A single whole number (US, SS, UL, IS ...): None when absent or empty; DicomReadError for anything else
    (text, several values), which pydicom would pass on to whoever computes with it."""
    elem = element(ds, tag)
    if elem is None:
        return None
    if (type(elem) is RawDataElement and elem.value is not None and elem.length == 2 and elem.VR in ("US", None)
            and _is_us(tag, elem)):
        return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")  # the common case, quickly
    value = converted(ds, elem).value
    if value is None or value == "":
        return None
    if isinstance(value, str):  # IS, or a number written as text under another VR
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise DicomReadError(f"data element {_tag(tag)} is not a whole number")


def code_string(ds: Dataset, tag: int) -> str | None:
    """A single CS value, stripped (None when absent); DicomReadError for several values or another type."""
    elem = element(ds, tag)
    if elem is None:
        return None
    if type(elem) is RawDataElement and elem.value is not None and elem.VR in ("CS", None):
        value: Any = elem.value.decode("latin-1")  # CS is ASCII in every character set: no conversion needed
    else:
        value = converted(ds, elem).value
    if value is None:
        return None
    if not isinstance(value, str) or "\\" in value:
        raise DicomReadError(f"data element {_tag(tag)} is not a single code string")
    return value.strip("\0 ")


def _is_us(tag: int, elem: RawDataElement) -> bool:
    if elem.VR == "US":
        return True
    try:  # implicit VR: the dictionary says
        return dictionary_VR(tag) == "US"
    except KeyError:
        return False


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
