"""DICOM UID syntax (PS3.5 §9.1): digits and dots, no leading zeros in a component, at most 64 characters."""

import re

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def is_valid_uid(value: str) -> bool:
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def shown(value: str, limit: int = 64) -> str:
    """A caller-supplied identifier as we may echo it back in a location attribute: bounded in length."""
    return value if len(value) <= limit else value[:limit] + "..."
