"""Replacement values for the D ("dummy") and Z ("zero length") actions, one per VR.

Every dummy is a valid value of its VR (PS3.5 Table 6.2-1) and plainly not real data: text and names
become ``ANONYMIZED``, dates ``19000101``, times ``000000``, DT ``19000101000000``, ages ``000Y``,
numbers 0, URIs the nil UUID URN, binary values zero bytes of the original length (capped, so that an
encapsulated document is not replaced by megabytes of zeros).

Replacements are built as encoded (raw) elements: their bytes are the same in every transfer syntax
(ASCII text, zeros), so they are written without conversion, and being immutable they are shared.
"""

from __future__ import annotations

import functools

from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

DUMMY_TEXT = "ANONYMIZED"
_MAX_BINARY_DUMMY = 1024

_DUMMY_TEXT_BY_VR: dict[str, str] = {
    "AE": DUMMY_TEXT, "CS": DUMMY_TEXT, "LO": DUMMY_TEXT, "LT": DUMMY_TEXT, "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT, "ST": DUMMY_TEXT, "UC": DUMMY_TEXT, "UT": DUMMY_TEXT,
    "UR": "urn:uuid:00000000-0000-0000-0000-000000000000",
    "UI": "2.25.0",   # the engine remaps UIDs instead; this is only a valid last resort
    "AS": "000Y", "DA": "19000101", "DT": "19000101000000", "TM": "000000", "DS": "0", "IS": "0",
}
_ZERO_SIZE_BY_VR: dict[str, int] = {"FL": 4, "FD": 8, "SS": 2, "US": 2, "SL": 4, "UL": 4, "SV": 8, "UV": 8,
                                    "AT": 4}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def raw_element(tag: int, vr: str, value: bytes) -> RawDataElement:
    """An encoded element whose bytes do not depend on the transfer syntax."""
    if len(value) & 1:
        value += b"\0" if vr in ("UI", "OB", "UN") else b" "
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True, True)


def text_element(tag: int, vr: str, text: str) -> RawDataElement:
    return raw_element(tag, vr, text.encode("ascii"))


@functools.lru_cache(maxsize=4096)
def _dummy(tag: int, vr: str) -> RawDataElement:
    size = _ZERO_SIZE_BY_VR.get(vr)
    if size is not None:
        return raw_element(tag, vr, bytes(size))
    return text_element(tag, vr, _DUMMY_TEXT_BY_VR.get(vr, DUMMY_TEXT))


def dummy_element(tag: int, vr: str, original_length: int = 2) -> DataElement | RawDataElement:
    """A D replacement (the engine remaps a UI value instead of dummying it)."""
    if vr in BINARY_VRS:
        size = min(max(original_length, 2), _MAX_BINARY_DUMMY)
        return raw_element(tag, vr, bytes(size + (size & 1)))
    if vr == "SQ":
        return DataElement(tag, vr, Sequence(), validation_mode=config.IGNORE)
    return _dummy(tag, vr)


@functools.lru_cache(maxsize=4096)
def _empty(tag: int, vr: str) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, 0, b"", 0, False, True, True)


def empty_element(tag: int, vr: str) -> DataElement | RawDataElement:
    """A Z replacement: the element stays, with no value (an empty sequence for SQ)."""
    if vr == "SQ":
        return DataElement(tag, vr, Sequence(), validation_mode=config.IGNORE)
    return _empty(tag, vr)
