"""A store as one request sees it: the instances it fetched with their series are read from local files.

A local copy is a real file that nothing else writes, so it has a file identity: an anonymized document is
prepared from it and sent from it (sendfile) without being fetched again. Every other instance, and a copy whose
header does not match the record asked for, is the store's business as usual.
"""

from __future__ import annotations

from typing import BinaryIO

from wadows.store.base import InstanceRecord, Store
from wadows.store.series_spool import LocalCopy, SeriesSpool


class LocalCopies:
    """The Store protocol: local copies first, the store behind for the rest. close() (or dropping the last
    reference, when the request's response is dropped) removes the copies."""

    def __init__(self, store: Store, spool: SeriesSpool | None = None,
                 records: dict[str, InstanceRecord] | None = None) -> None:
        """records: those of the local copies, by SOP Instance UID (the store made them from the copies)."""
        self.store = store
        self._spool = spool
        self._records = records or {}

    def locate(self, sop_instance_uid: str) -> InstanceRecord | None:
        return self._records.get(sop_instance_uid) or self.store.locate(sop_instance_uid)

    def available(self, record: InstanceRecord) -> int | None:
        copy = self._copy(record)
        return copy.size if copy is not None else self.store.available(record)

    def open(self, record: InstanceRecord) -> BinaryIO:
        copy = self._copy(record)
        if copy is not None:
            try:
                return open(copy.path, "rb")
            except OSError:
                pass  # removed under us (the spool closed): a copy from the store is as good
        return self.store.open(record)

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRecord]:
        return self.store.instances(study_uid, series_uid)

    def count(self) -> int:
        return self.store.count()

    def health(self) -> int | None:
        return self.store.health()

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def _copy(self, record: InstanceRecord) -> LocalCopy | None:
        copy = self._spool.copy(record.sop_instance_uid) if self._spool is not None else None
        if copy is None:
            return None
        facts = copy.facts
        if (facts.study_uid, facts.series_uid, facts.transfer_syntax_uid) != (
                record.study_uid, record.series_uid, record.transfer_syntax_uid):
            return None  # the copy is not of the object the record describes: the store decides
        return copy
