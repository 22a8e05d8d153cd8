"""The de-identification profile: PS3.15 Annex E options as switches.

Each ``retain_*`` / ``clean_*`` switch selects exactly the Table E.1-1 column of the same option
(E.3.3-E.3.11); ``clean_pixel_data`` and ``clean_recognizable_visual_features`` act on pixels (E.3.1,
E.3.2). The defaults are DESIGN.md's default profile: Basic Application Confidentiality Profile + Clean
Pixel Data.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

# CID 7050 "De-identification Method" (scheme DCM); meanings as in PS3.16.
CODE_MEANINGS: dict[str, str] = {
    "113100": "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option",
    "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option",
    "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option",
    "113111": "Retain Safe Private Option",
    "113112": "Retain Institution Identity Option",
}

# Switch -> its CID 7050 code, for the options that are applied as a whole whenever switched on.
_SWITCH_CODES: dict[str, str] = {
    "clean_graphics": "113103",
    "clean_structured_content": "113104",
    "clean_descriptors": "113105",
    "retain_long_full_dates": "113106",
    "retain_long_modified_dates": "113107",
    "retain_patient_characteristics": "113108",
    "retain_device_identity": "113109",
    "retain_uids": "113110",
    "retain_safe_private": "113111",
    "retain_institution_identity": "113112",
}

# Longest plausible shift: 100 years back still leaves dates valid for any real acquisition.
_MAX_SHIFT_DAYS = 36_525


@dataclass(frozen=True)
class Profile:
    """What to protect, and how. Every field is one documented switch."""

    retain_safe_private: bool = False
    """E.3.10: keep private attributes known to be safe (declared SAFE in the instance's Private Data
    Element Characteristics Sequence, or listed in data/safe_private.json); all others are removed."""
    retain_uids: bool = False
    """E.3.9: keep every UID as it is (no remapping); the SOP Instance UID is then kept too."""
    retain_device_identity: bool = False
    """E.3.8: keep station names, serial numbers, detector IDs ...; AE titles are cleaned."""
    retain_institution_identity: bool = False
    """E.3.11: keep institution name, address, department ..."""
    retain_patient_characteristics: bool = False
    """E.3.7: keep sex, age, size, weight, smoking and pregnancy status ...; free-text ones are cleaned."""
    retain_long_full_dates: bool = False
    """E.3.6: keep dates and times unchanged ((0028,0303) UNMODIFIED)."""
    retain_long_modified_dates: bool = False
    """E.3.6: shift every date by a keyed per-patient number of whole days ((0028,0303) MODIFIED)."""
    clean_descriptors: bool = False
    """E.3.5: keep descriptions and comments whose words are all on the descriptor vocabulary; any other
    value gets the Basic Profile action of its row."""
    clean_structured_content: bool = False
    """E.3.4: SR content trees, acquisition context and specimen preparation are cleaned item by item
    instead of dummied or removed."""
    clean_graphics: bool = False
    """E.3.3: text in Graphic Annotation Sequence is cleaned instead of dummied. Overlay bitmaps and
    curves cannot be checked for burned-in text, so they are still removed."""
    clean_pixel_data: bool = True
    """E.3.1: blank the regions of the first matching pixel rule. Objects with burned-in annotation
    (declared, or suspected by modality) and no matching rule are refused in any case."""
    clean_recognizable_visual_features: bool = False
    """E.3.2: we do not deface; with this switch on, only objects whose (0028,0302) is NO are released
    (others are refused), and 113102 is never claimed because nothing was edited."""
    burned_in_suspect_modalities: tuple[str, ...] = ("US", "SC", "OT", "XC", "ES")
    """Modalities whose images are presumed to carry burned-in annotation when (0028,0301) is absent."""
    date_shift_min_days: int = 366
    """Modified Dates: the keyed shift moves dates back by at least this many days ..."""
    date_shift_max_days: int = 3652
    """... and at most this many (inclusive)."""

    def __post_init__(self) -> None:
        if self.retain_long_full_dates and self.retain_long_modified_dates:
            raise ValueError("retain_long_full_dates and retain_long_modified_dates exclude each other: "
                             "dates are either kept or shifted")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool",) and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{f.name} must be a whole number of days")
        if not all(isinstance(m, str) and m.strip() for m in self.burned_in_suspect_modalities):
            raise ValueError("burned_in_suspect_modalities must be a list of modality codes (e.g. [\"US\", \"SC\"])")
        object.__setattr__(self, "burned_in_suspect_modalities",
                           tuple(m.strip().upper() for m in self.burned_in_suspect_modalities))
        if not 1 <= self.date_shift_min_days <= self.date_shift_max_days <= _MAX_SHIFT_DAYS:
            raise ValueError(f"date shift range must satisfy 1 <= date_shift_min_days <= date_shift_max_days "
                             f"<= {_MAX_SHIFT_DAYS}")

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "Profile":
        """A profile from the TOML ``[anonymize]`` table (keys = field names). Unknown keys, wrong types
        and contradictory options raise ValueError naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(m) - known)
        if unknown:
            raise ValueError(f"unknown anonymize setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(m)
        modalities = values.get("burned_in_suspect_modalities")
        if isinstance(modalities, str):
            # From an environment variable: "US,SC,OT".
            values["burned_in_suspect_modalities"] = tuple(p for p in modalities.split(",") if p.strip())
        elif isinstance(modalities, (list, tuple)):
            values["burned_in_suspect_modalities"] = tuple(modalities)
        elif modalities is not None:
            raise ValueError("burned_in_suspect_modalities must be a list of modality codes")
        return cls(**values)

    def option_codes(self, pixels_cleaned: bool) -> list[tuple[str, str]]:
        """The CID 7050 (code value, code meaning) pairs for (0012,0064): 113100 always, each switched-on
        retain/clean option, and 113101 only when ``pixels_cleaned`` (regions were really blanked)."""
        codes = ["113100"]
        if self.clean_pixel_data and pixels_cleaned:
            codes.append("113101")
        codes.extend(code for switch, code in _SWITCH_CODES.items() if getattr(self, switch))
        return [(code, CODE_MEANINGS[code]) for code in sorted(codes)]

    @property
    def keeps_dates(self) -> bool:
        return self.retain_long_full_dates or self.retain_long_modified_dates

    def temporal_marker(self) -> str:
        """(0028,0303) Longitudinal Temporal Information Modified for this profile."""
        if self.retain_long_full_dates:
            return "UNMODIFIED"
        if self.retain_long_modified_dates:
            return "MODIFIED"
        return "REMOVED"
