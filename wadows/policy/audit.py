"""The audit trail: one JSON line per request, with no patient data.

Requested UIDs are written as keyed hashes ("h:" + 32 hex digits of HMAC-SHA256 under the audit key, with a
label of its own so that the hash differs from anything else made with the same key): whoever holds the key can
link records about one object, or check whether a given UID was asked for; nobody else can. Every other field is
a count, a code or a name chosen by the server, and is checked to look like one, so that a value taken from a
DICOM object cannot slip in by mistake.

Each record is one write() to a file opened with O_APPEND: lines from all threads and worker processes stay
whole (Linux serialises appends to a local file). The file is opened per record, so log rotation by renaming
needs no signal. A disabled audit (path None) returns at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from wadows.policy.access import Caller

_LABEL = b"wadows audit document uid\x00"
_HASH_HEX_DIGITS = 32          # 128 bits: no collisions among any archive's UIDs
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9:._-]{0,127}")   # operation names, status URNs, error codes; not a UID
MAX_DOCUMENTS = 100            # hashes per record; the rest are counted in documents_omitted


class AuditLog:
    def __init__(self, path: Path | str | None, key: bytes, max_documents: int = MAX_DOCUMENTS):
        if path is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ValueError("the audit key must be at least 16 bytes")
        self.path = Path(path) if path is not None else None
        self._key = key
        self.max_documents = max_documents

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def hash_uid(self, uid: str) -> str:
        """The keyed hash of a UID as it appears in records; also usable in log lines."""
        # DICOM pads UIDs with NUL or space; the same object must give the same hash however it was written.
        text = uid.strip(" \x00").encode("ascii", "backslashreplace")
        return "h:" + hmac.new(self._key, _LABEL + text, hashlib.sha256).hexdigest()[:_HASH_HEX_DIGITS]

    def record(self, *, operation: str, outcome: str | int, caller: Caller | None = None,
               documents: Iterable[str] = (), requested: int | None = None, returned: int = 0,
               refused: Iterable[str] = (), anonymized: int = 0, duration_ms: float | None = None,
               delivered: bool = True) -> None:
        """Append one record. `documents`: the requested UIDs (hashed here); `refused`: one error code per refused
        document (counted by code); `outcome`: the response status URN or the HTTP status; `delivered`: False when
        the answer was cut short while being sent (the caller may lack some of what `returned` counts). Raises
        ValueError for a field that does not look like what it should be, OSError when the line cannot be
        written."""
        if self.path is None:
            return
        # A lone string is one item, not a sequence of characters.
        uids = [documents] if isinstance(documents, str) else list(documents)
        refusals = Counter([refused] if isinstance(refused, str) else refused)
        for value in (operation, *refusals):
            _check_code(value)
        if not isinstance(outcome, int):
            _check_code(outcome)
        kept = uids[: self.max_documents]
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "caller_kind": caller.kind if caller else None,
            "caller_name": caller.name if caller else None,
            "operation": operation,
            "requested": _count(len(uids) if requested is None else requested),
            "returned": _count(returned),
            "refused": sum(refusals.values()),
            "refusals": dict(sorted(refusals.items())),
            "anonymized": _count(anonymized),
            "outcome": outcome,
            "delivered": bool(delivered),
            "duration_ms": None if duration_ms is None else round(float(duration_ms), 1),
            "documents": [self.hash_uid(uid) for uid in kept],
            "documents_omitted": len(uids) - len(kept),
        }
        data = (json.dumps(line, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):  # a full disk: say so rather than leave a silent half line
            raise OSError(f"audit record cut short ({written} of {len(data)} bytes) in {self.path}")


def _check_code(value: object) -> None:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError("audit fields take operation names, status and error codes only")


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("audit counts must be non-negative integers")
    return value
