"""DICOM values as people read them: names, dates, times, numbers (shared by annotations and text reports)."""

from __future__ import annotations

from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName


def person_name(value: object) -> str:
    """`Family, Given Middle` from the alphabetic group, with prefix and suffix; the raw components otherwise."""
    if value in (None, ""):
        return ""
    name = value if isinstance(value, PersonName) else PersonName(str(value))
    given = " ".join(part for part in (name.given_name, name.middle_name) if part)
    formatted = ", ".join(part for part in (name.family_name, given) if part)
    full = " ".join(part for part in (name.name_prefix, formatted, name.name_suffix) if part)
    return full or str(name).replace("^", " ").replace("=", " ").strip()


def date(value: object) -> str:
    """DA `YYYYMMDD` as `YYYY-MM-DD`; anything else as it is."""
    text = plain(value)
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def time(value: object) -> str:
    """TM `HHMMSS.frac` as `HH:MM:SS.frac`."""
    text = plain(value)
    if len(text) >= 4 and text[:4].isdigit() and ":" not in text:
        return ":".join(text[i:i + 2] for i in range(0, min(len(text), 6), 2)) + text[6:]
    return text


def datetime(value: object) -> str:
    text = plain(value)
    return f"{date(text[:8])} {time(text[8:])}".strip() if len(text) >= 8 else text


def number(value: object, unit: str = "") -> str:
    """Up to two decimals, trailing zeros dropped; "" for no or unreadable value."""
    if value in (None, ""):
        return ""
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    text = f"{as_float:.2f}".rstrip("0").rstrip(".")
    return f"{text} {unit}" if unit else text


def plain(value: object) -> str:
    return "" if value is None else str(value).strip()


def as_list(value: object) -> list[object]:
    """A multi-valued element's values, or the one value as a list."""
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
