"""What "C" (clean) means for free text: keep a value only when it provably says nothing about a person.

Free text cannot be parsed for names reliably, so the cleaner is an allow-list, not a detector:

1. A value is rejected outright if it contains a run of 5 or more digits (identifiers, compact dates),
   something shaped like a date (``12/03/2021``, ``2021-03-12``, ``2021.03.12``), a time (``10:32``)
   or an ``@``.
2. The rest is split into words at spaces, punctuation and the PN component separator ``^``. Every
   word must be on the descriptor vocabulary (``data/descriptor_vocabulary.json``: technique, anatomy,
   laterality, contrast and purpose words, no word that is also a common name), or a short number
   with an optional unit (``5``, ``0.625MM``, ``120KV``, ``1.5T``), or a short sequence token
   (one or two letters and at most two digits: ``T1``, ``T2W``, ``L5``; or a b-value ``B1000``),
   or a single letter. A word joined by ``-``, ``/`` or ``.``
   passes when all its parts do (``W/O``, ``T1-W``).
3. Values of several words pass only when all pass; multi-valued text passes when every value does.

A value that passes is kept unchanged ("CT CHEST W/O CONTRAST"); one that fails is never partly kept
(dropping unknown words could turn "NO CONTRAST" into "CONTRAST"): the caller applies the Basic Profile
action of the attribute instead (remove, empty or dummy).
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

_REJECT = re.compile(r"\d{5,}|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}:\d{2}|@")
_WORD_SPLIT = re.compile(r"[\s,;:()\[\]{}<>+=&\"'|^_*#~!?%$]+")
_PART_SPLIT = re.compile(r"[-/.]+")
_NUMBER = re.compile(
    r"\d{1,4}(?:\.\d{1,4})?(?:MM|CM|M|ML|MG|KG|G|KV|KVP|MA|MAS|MS|S|SEC|MIN|H|HZ|KHZ|MHZ|T|DEG|KEV|X|%)?")
# T1, T2W, L5, C7, T12, B1000: short enough that no record number fits.
_SEQUENCE_TOKEN = re.compile(r"[A-Z]{1,2}\d{1,2}[A-Z]?|B\d{1,4}")
_LETTER = re.compile(r"[A-Z]")


@functools.cache
def vocabulary() -> frozenset[str]:
    data = json.loads(resources.files("wadows.deid").joinpath("data", "descriptor_vocabulary.json")
                      .read_text(encoding="utf-8"))
    return frozenset(word.upper() for word in data["words"])


def _word_ok(word: str, words: frozenset[str]) -> bool:
    if word in words or _NUMBER.fullmatch(word) or _SEQUENCE_TOKEN.fullmatch(word) or _LETTER.fullmatch(word):
        return True
    parts = [p for p in _PART_SPLIT.split(word) if p]
    if len(parts) < 2 and parts == [word]:
        return False
    return all(p in words or _NUMBER.fullmatch(p) or _SEQUENCE_TOKEN.fullmatch(p) or _LETTER.fullmatch(p)
               for p in parts)


def is_clean(text: str) -> bool:
    """True when every word of every value of ``text`` is on the allow-list (see module docstring)."""
    words = vocabulary()
    for value in text.split("\\"):
        upper = value.upper()
        if _REJECT.search(upper):
            return False
        for word in _WORD_SPLIT.split(upper):
            if word and not _word_ok(word, words):
                return False
    return True
