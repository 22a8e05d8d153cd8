"""The value of the Anonymize element (PS3.18 §8.1.7; DESIGN.md §3)."""

from __future__ import annotations

import enum

from pydicom.dataset import Dataset

from wadows.deid import Plan, Refusal

from wadows.wado import codes
from wadows.wado.rejected import Rejected


class AnonymizeChoice(enum.Enum):
    NO = "no"
    YES = "yes"


# "yes" is the standard's value; "true"/"1" come from clients built on a boolean-typed schema.
_YES = {"yes", "true", "1"}
_NO = {"no", "false", "0"}


def anonymize_requested(value: str | None) -> bool:
    """Whether a (valid) Anonymize value asks for anonymization; for counting, never raises."""
    return value is not None and value.strip().lower() in _YES


def parse_anonymize(value: str | None) -> AnonymizeChoice:
    if value is None:
        return AnonymizeChoice.NO
    word = value.strip().lower()
    if word in _YES:
        return AnonymizeChoice.YES
    if word in _NO:
        return AnonymizeChoice.NO
    raise Rejected(codes.INVALID_PARAMETER, "Anonymize must be yes (or true/1), or no (or false/0)")


def deidentified(source, header: Dataset) -> tuple[Dataset, Plan]:
    """The header as the de-identifier sends it, and its plan (for the pixel edit). Rejected with
    urn:dicom:wado:0002 when the server has no de-identifier, urn:dicom:wado:0001 when it refuses."""
    if source.deidentifier is None:
        raise Rejected(codes.ANONYMIZE_NOT_SUPPORTED, "This server is not configured to anonymize")
    try:
        plan = source.deidentifier.plan(header)
    except Refusal as refusal:
        raise Rejected(codes.UNABLE_TO_ANONYMIZE, f"Unable to anonymize: {refusal.reason}")
    return source.deidentifier.apply(header, plan), plan
