"""The store interface the operations call. A folder store and a DICOMweb store implement it.

Nothing here knows about SOAP or HTTP; the operations never see paths or URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class InstanceRecord:
    """What the store knows about one instance without opening it."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    size: int
    locator: str  # store-specific (a path for the folder store); never shown to callers
    modified_ns: int | None = None  # folder store: the file's mtime when it was indexed


class StoreError(Exception):
    """The store could not deliver an instance it knows about (reason in the message, no patient data)."""


class StoreUnavailable(StoreError):
    """The store is down, busy or refusing; a later request may work."""


class InstanceGone(StoreError):
    """The store listed the instance but it is no longer there (deleted, moved)."""


class Store(Protocol):
    def locate(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The record of an instance, or None when the store does not hold it."""

    def available(self, record: InstanceRecord) -> int | None:
        """Check, without reading content, that the instance can be delivered now; its current size in bytes
        when known. Raises StoreError (InstanceGone, StoreUnavailable) otherwise."""

    def open(self, record: InstanceRecord) -> BinaryIO:
        """A readable, seekable binary file of the Part 10 object. Raises StoreError."""

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        """The instances of a study, or of one of its series (for the QIDO-RS instance listing)."""

    def count(self) -> int:
        """How many instances the store holds (printed when the server starts)."""

    def health(self) -> int | None:
        """A cheap check that the store answers, for /health (often polled): raises StoreError when it does not;
        returns the number of instances when that is cheap to know, else None."""
