"""Retain Longitudinal Temporal Information with Modified Dates: a whole-day shift of DA and DT values.

The shift is a whole number of days, the same for every date of a patient, so every interval (study to
acquisition, birth to study, one study to the next) and therefore the Patient's Age stay exactly as
they were; times of day (TM, and the time part of DT) are unchanged, so TM stays consistent with DT.
Values that are not valid dates are not guessed at: :func:`shift_da` / :func:`shift_dt` return None and
the caller falls back to the Basic Profile action.
"""

from __future__ import annotations

import datetime as _dt
import re

_DA = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")          # YYYYMMDD, or the ACR-NEMA YYYY.MM.DD
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(.*)", re.DOTALL)
# What may follow the date of a DT (HHMMSS.FFFFFF&ZZXX, PS3.5 6.2): it is copied, so nothing else may.
_DT_REST = re.compile(r"(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,6})?)?)?)?(?:[+-][0-9]{4})?")


def _shifted(year: int, month: int, day: int, days: int) -> _dt.date | None:
    try:
        return _dt.date(year, month, day) + _dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (possibly multi-valued); None when any part is not a date."""
    return _each_value(value, lambda part: _shift_one_da(part, days))


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping its precision, time and UTC offset; None if invalid."""
    return _each_value(value, lambda part: _shift_one_dt(part, days))


def _each_value(value: str, shift_one) -> str | None:
    """Apply `shift_one` to every value of a multi-valued string; None as soon as one value is not valid."""
    out = []
    for part in value.split("\\"):
        part = part.strip()
        if not part:
            out.append("")
            continue
        shifted = shift_one(part)
        if shifted is None:
            return None
        out.append(shifted)
    return "\\".join(out)


def _shift_one_da(part: str, days: int) -> str | None:
    match = _DA.fullmatch(part)
    if match is None:
        return None
    date = _shifted(int(match[1]), int(match[2]), int(match[3]), days)
    return date.strftime("%Y%m%d") if date is not None else None


def _shift_one_dt(part: str, days: int) -> str | None:
    match = _DT.fullmatch(part)
    if match is None:
        return None
    year, month, day, rest = match[1], match[2], match[3], match[4]
    if rest and not month or rest and not day:
        # A time after a partial date is not a valid DT; do not guess.
        if not (rest.startswith(("+", "-")) and rest[1:].isdigit()):
            return None
    if rest and not _DT_REST.fullmatch(rest):
        return None
    # Partial dates (YYYY, YYYYMM) are shifted as their first day, then cut back to their precision.
    date = _shifted(int(year), int(month or 1), int(day or 1), days)
    if date is None:
        return None
    return date.strftime("%Y%m%d")[: 4 + (2 if month else 0) + (2 if day else 0)] + rest


def shift_days(digest: bytes, min_days: int, max_days: int) -> int:
    """The (negative) shift in days taken from a keyed digest: uniform in [-max_days, -min_days]."""
    span = max_days - min_days + 1
    return -(min_days + int.from_bytes(digest[:8], "big") % span)
