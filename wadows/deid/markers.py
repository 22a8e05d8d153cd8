"""The attributes that say what was done (PS3.15 E.1.1 step 4, E.2, E.3.1, E.3.6).

* (0012,0062) Patient Identity Removed = YES.
* (0012,0063) De-identification Method: "wadows <version> PS3.15 E.1-1 <edition>"; when the input was
  already de-identified its earlier values come first (the attribute is multi-valued for successive
  steps).
* (0012,0064) De-identification Method Code Sequence: exactly the CID 7050 codes of this run
  (:meth:`Profile.option_codes`), replacing earlier ones: the profile is re-applied in full, so these
  codes describe the object as it leaves.
* (0028,0301) Burned In Annotation = NO only when the pixel edit blanks regions; otherwise the input's
  value (if any) is left as it was.
* (0028,0303) Longitudinal Temporal Information Modified: UNMODIFIED / MODIFIED / REMOVED for the dates
  option, never weaker than what an earlier de-identification recorded (REMOVED > MODIFIED > UNMODIFIED).
"""

from __future__ import annotations

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.tag import BaseTag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import wadows
from wadows.deid.elements import element, text_of, text_value, value_of, vr_of
from wadows.deid.profile import Profile
from wadows.deid.well_formed import well_formed

PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
BURNED_IN_ANNOTATION = 0x00280301
TEMPORAL_INFORMATION_MODIFIED = 0x00280303

_TEMPORAL_STRENGTH = {"UNMODIFIED": 0, "MODIFIED": 1, "REMOVED": 2}


def method_text(edition: str) -> str:
    return f"wadows {wadows.__version__} PS3.15 E.1-1 {edition}"[:64]


def is_already_deidentified(header: Dataset) -> bool:
    """(0012,0062) YES and a De-identification Method or Method Code Sequence present (DESIGN.md §3)."""
    if text_value(header, PATIENT_IDENTITY_REMOVED).upper() != "YES":
        return False
    return bool(text_of(value_of(header, DEIDENTIFICATION_METHOD)).strip()
                or value_of(header, DEIDENTIFICATION_METHOD_CODES))


def add_markers(out: Dataset, original: Dataset, profile: Profile, edition: str,
                already_deidentified: bool, pixels_cleaned: bool) -> None:
    _put(out, PATIENT_IDENTITY_REMOVED, "CS", "YES")

    methods = []
    earlier_method = element(original, DEIDENTIFICATION_METHOD)
    # Earlier steps are copied as they were recorded: only when well formed, like any value kept.
    if already_deidentified and earlier_method is not None and well_formed(
            original, DEIDENTIFICATION_METHOD, vr_of(DEIDENTIFICATION_METHOD, earlier_method), earlier_method):
        earlier = value_of(original, DEIDENTIFICATION_METHOD)
        if earlier:
            methods = [v for v in ([earlier] if isinstance(earlier, str) else list(earlier)) if str(v).strip()]
    methods.append(method_text(edition))
    _put(out, DEIDENTIFICATION_METHOD, "LO", methods if len(methods) > 1 else methods[0])

    items = Sequence()
    for value, meaning in profile.option_codes(pixels_cleaned):
        item = Dataset()
        _put(item, 0x00080100, "SH", value)
        _put(item, 0x00080102, "SH", "DCM")
        _put(item, 0x00080104, "LO", meaning)
        items.append(item)
    _put(out, DEIDENTIFICATION_METHOD_CODES, "SQ", items)

    if pixels_cleaned:
        _put(out, BURNED_IN_ANNOTATION, "CS", "NO")

    temporal = profile.temporal_marker()
    recorded = text_value(original, TEMPORAL_INFORMATION_MODIFIED).upper()
    if _TEMPORAL_STRENGTH.get(recorded, -1) > _TEMPORAL_STRENGTH[temporal]:
        temporal = recorded
    _put(out, TEMPORAL_INFORMATION_MODIFIED, "CS", temporal)


def _put(ds: Dataset, tag: int, vr: str, value: object) -> None:
    ds[BaseTag(tag)] = DataElement(tag, vr, value, validation_mode=config.IGNORE)
