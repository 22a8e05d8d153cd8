"""How one DICOM value is written as text in the PS3.19 Native DICOM Model.

PS3.19 A.1 gives the structure; the text of each value is ours: DS and IS keep the text the data set
holds (no reformatting: the sender's precision is the value); binary integers are decimal; FL and FD are
the shortest decimal that reads back as the same float32/float64 (xs:float/xs:double spelling); AT is 8
upper-case hex digits; person names are split into their three groups and five components.
"""

from __future__ import annotations

import math
import re
import struct

from pydicom.valuerep import PersonName

# PS3.19 A.1.6: the component elements of a name group, in PS3.5 6.2 order.
PERSON_NAME_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PERSON_NAME_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")

FLOAT_VRS = frozenset({"FL", "FD"})
INTEGER_VRS = frozenset({"SL", "SS", "SV", "UL", "US", "UV"})
_BOTH_ENDS_INSIGNIFICANT = frozenset({"AE", "CS", "DS", "IS", "LO", "SH"})
_TRAILING_INSIGNIFICANT = frozenset({"DA", "DT", "TM", "LT", "ST", "UC", "UR", "UT"})

# Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF).
# They reach us from values that are not text in the declared character set; lxml would refuse them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def xml_text(text: str) -> str:
    """`text` with every character XML 1.0 cannot hold replaced by U+FFFD (the Unicode replacement character)."""
    return _NOT_XML.sub(REPLACEMENT, text)


def value_text(vr: str, value: object) -> str:
    """The text of one value of a non-sequence, non-PN, non-binary attribute."""
    if vr == "AT":
        return f"{int(value):08X}"
    if vr in FLOAT_VRS:
        return float_text(float(value), single=(vr == "FL"))
    if vr in INTEGER_VRS:
        return str(int(value))
    if vr in ("DS", "IS"):
        # pydicom keeps the text it read (original_string); values set in code print as Python would
        return xml_text(str(getattr(value, "original_string", value)).strip(" "))
    if isinstance(value, (bytes, bytearray)):  # text pydicom could not decode: keep what can be read of it
        value = bytes(value).decode("latin-1")
    return xml_text(_without_padding(vr, str(value)))


def _without_padding(vr: str, text: str) -> str:
    """`text` less the spaces (or NULs, for UI) PS3.5 Table 6.2-1 calls insignificant for `vr`.

    pydicom strips the padding of a whole element, not of each value of a multi-valued one."""
    if vr in _BOTH_ENDS_INSIGNIFICANT:
        return text.strip(" ")
    if vr in _TRAILING_INSIGNIFICANT:
        return text.rstrip(" ")
    if vr == "UI":
        return text.rstrip("\0 ")
    return text


def float_text(number: float, single: bool) -> str:
    """The shortest decimal text that reads back as the same float32 (`single`) or float64.

    Infinities and NaN are written as xs:double spells them (INF, -INF, NaN), not as Python does."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "INF" if number > 0 else "-INF"
    if not single:
        return _plain_exponent(repr(number))
    target = struct.pack("<f", number)
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = f"{number:.{digits}g}"
        if struct.pack("<f", float(text)) == target:
            return _plain_exponent(text)
    return _plain_exponent(f"{number:.9g}")


def _plain_exponent(text: str) -> str:
    """'1e-05' -> '1E-5': the same number, exponent without padding (both forms are valid xs:float)."""
    mantissa, sep, exponent = text.partition("e")
    return f"{mantissa}E{int(exponent)}" if sep else text


def person_name_groups(name: PersonName | str) -> list[tuple[str, dict[str, str]]]:
    """(group, {component: text}) for each non-empty group of a PN value, empty components left out."""
    groups = name.components if isinstance(name, PersonName) else tuple(str(name).split("="))
    result = []
    for group_name, group in zip(PERSON_NAME_GROUPS, groups):
        components = {
            component: xml_text(part)
            for component, part in zip(PERSON_NAME_COMPONENTS, group.split("^"))
            if part
        }
        if components:
            result.append((group_name, components))
    return result
