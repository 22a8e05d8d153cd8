"""Keyed UID remapping: ``2.25.`` + the integer of HMAC-SHA256(key, UID) truncated to 128 bits.

Deterministic (same key, same UID, same answer on every host and request, so references between
instances keep pointing at the right objects) and one-way without the key (PS3.15 E.1.1 Note 3 warns
against unkeyed hashes). ``2.25.`` is the UUID-derived root of PS3.5 B.2; 128 bits give at most 39
digits, so a new UID is at most 44 characters.
"""

from __future__ import annotations

import hmac
import re

WELL_KNOWN_PREFIX = "1.2.840.10008."   # everything the standard itself defines (classes, syntaxes, DCM ...)
_NUL_SPACE = "\0 "
_RECENT_LIMIT = 64  # within a document, not across requests: a few are enough
_UID_TEXT = re.compile(r"[0-9.]+")
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")  # PS3.5 9.1


def is_valid_uid(uid: str) -> bool:
    """Digits in dot-separated components without leading zeros, at most 64 characters."""
    return len(uid) <= 64 and _UID.fullmatch(uid) is not None


def is_uid_text(uid: str) -> bool:
    """Only what UIDs are made of (digits and dots, at most 64): text cannot hide in it."""
    return len(uid) <= 64 and _UID_TEXT.fullmatch(uid) is not None


def is_well_known(uid: str) -> bool:
    """Defined by the standard: under its root, and a valid UID (text after the root is no class, it is text)."""
    return uid.startswith(WELL_KNOWN_PREFIX) and is_valid_uid(uid)


class UidMapper:
    """Maps instance UIDs to their keyed replacement; well-known UIDs map to themselves (one that only looks
    well known, its root followed by anything but a valid UID, is remapped like any other value)."""

    __slots__ = ("_key", "_recent")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the anonymization key must not be empty")
        self._key = bytes(key)
        # A document's SOP Instance UID is mapped once for its plan and once in its header: remember the last few.
        self._recent: dict[str, str] = {}

    def map(self, uid: str) -> str:
        mapped = self._recent.get(uid)
        if mapped is not None:
            return mapped
        mapped = stripped = uid.strip(_NUL_SPACE)
        if stripped and not is_well_known(stripped):
            digest = hmac.digest(self._key, stripped.encode("utf-8", "surrogateescape"), "sha256")
            mapped = "2.25." + str(int.from_bytes(digest[:16], "big"))
        if len(self._recent) >= _RECENT_LIMIT:
            self._recent.clear()  # (threads may race here: at worst a UID is mapped again)
        self._recent[uid] = mapped
        return mapped

    def map_multi(self, value: str) -> str:
        """A UI value that may hold several UIDs separated by backslashes."""
        if "\\" not in value:
            return self.map(value)
        return "\\".join(self.map(part) for part in value.split("\\"))

    def keyed_digest(self, purpose: bytes, text: str) -> bytes:
        """HMAC of ``text`` for another purpose (date shift, pseudonym); the purpose prefix keeps the
        results independent of the UID mapping and of each other."""
        return hmac.digest(self._key, purpose + b"\0" + text.encode("utf-8", "surrogateescape"), "sha256")
