"""What a QIDO-RS answer (DICOM JSON, PS3.18 F.2) says about one instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STUDY_UID, SERIES_UID, SOP_INSTANCE_UID, SOP_CLASS_UID = "0020000D", "0020000E", "00080018", "00080016"
AVAILABLE_TRANSFER_SYNTAX_UID = "00083002"
PATIENT_ID = "00100020"
NUMBER_OF_STUDY_RELATED_INSTANCES = "00201208"

# Asked for explicitly: servers return only their default attributes otherwise.
INSTANCE_FIELDS = (SOP_CLASS_UID, AVAILABLE_TRANSFER_SYNTAX_UID, PATIENT_ID)


@dataclass(frozen=True)
class ListedInstance:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str | None  # None unless the server names exactly one available syntax
    patient_id: str  # only to derive Orthanc's instance identifier; never shown or logged


def listed_instance(item: Any) -> ListedInstance | None:
    """The instance a QIDO-RS result item describes, or None when it lacks one of the four UIDs."""
    if not isinstance(item, dict):
        return None
    uids = [_single(item, tag) for tag in (STUDY_UID, SERIES_UID, SOP_INSTANCE_UID, SOP_CLASS_UID)]
    if not all(uids):
        return None
    return ListedInstance(*uids, transfer_syntax_uid=_single(item, AVAILABLE_TRANSFER_SYNTAX_UID),
                          patient_id=_single(item, PATIENT_ID) or "")


def integer_value(item: Any, tag: str) -> int | None:
    """An IS/US/UL value such as Number of Study Related Instances, or None."""
    value = _single(item, tag) if isinstance(item, dict) else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _single(item: dict, tag: str) -> str | None:
    """The attribute's value when it has exactly one (a list of two available syntaxes names none)."""
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or len(values) != 1 or isinstance(values[0], (dict, list)):
        return None
    text = str(values[0]).strip().rstrip("\0")
    return text or None
