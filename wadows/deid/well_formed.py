"""Whether a value is well formed for its VR (PS3.5 6.2): the walker keeps an original value only then.

Malformed bytes can carry anything: a name as five US values where the dictionary allows one, a code string whose
length field was stretched over the elements after it (their headers and values included), text after the digits
of a class UID. So a value is kept only when it is

* binary numbers (US, SS, UL, SL, FL, FD, SV, UV, AT): whole values, as many as the dictionary's VM allows; one
  when the dictionary does not know the tag; private elements, judged by Retain Safe Private, by length only;
* OW, OF, OL, OD, OV: whole words;
* CS, UI, AS, DA, DT, TM, IS, DS: characters of the VR's repertoire only, each value within the VR's maximum
  length (but DS: an over-long decimal string is a common vendor habit, and holds digits all the same); a UID
  that names a class or a coding scheme must moreover be a valid UID;
* text (AE, SH, LO, PN, ST, LT, UC, UT, UR): no control character but ESC (and CR, LF, FF, TAB in ST, LT, UT),
  each value within the VR's maximum length in characters.

An element of a VR that is not a DICOM VR is never well formed.
"""

from __future__ import annotations

import functools
import re

from pydicom.datadict import DicomDictionary, RepeatersDictionary, mask_match
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from wadows.deid.elements import converted, text_of
from wadows.deid.uids import is_valid_uid

VRS = frozenset("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR "
                "US UT UV".split())

_NUMBER_SIZE = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8, "AT": 4}
_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}

# One value (no backslash), padding stripped; the length bound is the VR's maximum (PS3.5 Table 6.2-1).
_STRING = {
    "CS": re.compile(rb"[A-Z0-9 _]{0,16}"),
    "UI": re.compile(rb"[0-9.]{0,64}"),
    "AS": re.compile(rb"(?:[0-9]{3}[DWMY])?"),
    "DA": re.compile(rb"[0-9\- ]{0,18}"),
    "TM": re.compile(rb"[0-9.:\- ]{0,28}"),
    "DT": re.compile(rb"[0-9.+\- ]{0,54}"),
    "IS": re.compile(rb"[0-9+\- ]{0,12}"),
    "DS": re.compile(rb"[0-9+\-.eE ]*"),
}
_TEXT_MAX = {"AE": 16, "SH": 16, "LO": 64, "PN": 64, "UC": None, "ST": 1024, "LT": 10240, "UT": None, "UR": None}
_MULTI_VALUED_TEXT = frozenset({"AE", "SH", "LO", "PN", "UC"})
_CONTROL = re.compile(r"[\x00-\x1a\x1c-\x1f]")                   # all but ESC
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")  # ST, LT, UT: also TAB, LF, FF, CR


def well_formed(src: Dataset, tag: int, vr: str, elem: DataElement | RawDataElement, uid_syntax: bool = False) -> bool:
    """Whether `elem` of `src` (judged as `vr`) may be kept as it is; `uid_syntax`: a UI must be valid UIDs."""
    if vr not in VRS:
        return False
    raw = elem.value if type(elem) is RawDataElement else _encoded(vr, elem)
    if raw is None:  # no value read (pydicom found none): nothing to judge, no byte of it goes out
        return True
    size = _NUMBER_SIZE.get(vr)
    if size is not None:
        return len(raw) % size == 0 and _multiplicity_allowed(tag, len(raw) // size)
    size = _WORD_SIZE.get(vr)
    if size is not None:
        return len(raw) % size == 0
    pattern = _STRING.get(vr)
    if pattern is not None:
        raw = raw.rstrip(b"\0 ")
        values = raw.split(b"\\") if b"\\" in raw else (raw,)
        for value in values:
            if pattern.fullmatch(value) is None or (uid_syntax and vr == "UI" and value
                                                    and not is_valid_uid(value.decode())):
                return False
        return True
    if vr in _TEXT_MAX:
        return _text_well_formed(src, vr, elem, raw)
    return True  # OB, UN: any bytes; SQ: its items are walked


def _encoded(vr: str, elem: DataElement) -> bytes:
    """A decoded value as the bytes the checks read (text: Latin-1, anything else becomes '?')."""
    value = elem.value
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    size = _NUMBER_SIZE.get(vr)
    if size is not None:
        values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
        if not all(isinstance(v, (int, float)) for v in values):
            return b"?"  # text where numbers belong: no whole number of values
        return bytes(size * len(values))
    return text_of(value).encode("latin-1", "replace")


def _text_well_formed(src: Dataset, vr: str, elem: DataElement | RawDataElement, raw: bytes) -> bool:
    if type(elem) is RawDataElement and (not raw.isascii() or b"\x1b" in raw):
        text = text_of(converted(src, elem).value)  # another character set: lengths count characters
    elif type(elem) is RawDataElement:
        text = raw.decode("ascii")
    else:
        text = text_of(elem.value)
    text = text.rstrip("\0 ")
    if (_CONTROL_IN_TEXT if vr in ("ST", "LT", "UT") else _CONTROL).search(text):
        return False
    limit = _TEXT_MAX[vr]
    if limit is None:
        return True
    values = text.split("\\") if vr in _MULTI_VALUED_TEXT else [text]
    if vr == "PN":  # the limit is per component group (alphabetic, ideographic, phonetic)
        values = [group for value in values for group in value.split("=")]
    return all(len(value) <= limit for value in values)


@functools.lru_cache(maxsize=4096)
def _vm_range(tag: int) -> tuple[int, int | None, int] | None:
    """(least, most or None for no bound, step) of the dictionary's VM; None for private tags."""
    if (tag >> 16) & 1:
        return None
    entry = DicomDictionary.get(tag)
    if entry is None:
        mask = mask_match(tag)
        entry = RepeatersDictionary.get(mask) if mask else None
    if entry is None:
        return (1, 1, 1)  # a public tag the dictionary does not know: one value, the least that is any use
    vm = entry[1]
    if "-" not in vm:
        return (int(vm), int(vm), 1)
    low, high = vm.split("-")
    if high.endswith("n"):
        return (int(low), None, int(high[:-1] or 1))
    return (int(low), int(high), 1)


def _multiplicity_allowed(tag: int, count: int) -> bool:
    vm = _vm_range(tag)
    if vm is None or count == 0:
        return True
    low, high, step = vm
    return count >= low and (high is None or count <= high) and count % step == 0
