"""Sending a document whose bytes are produced while they go out: when producing fails half-way, the
connection is cut (so the caller cannot take a truncated object for a whole one) and the log says why
without quoting data (exception texts of libraries may quote values from the object)."""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

from wadows.deid import PixelEditError, Refusal
from wadows.dicom.part10 import DicomReadError, TranscodeError
from wadows.store.base import StoreError

log = logging.getLogger(__name__)

# Our own exceptions carry texts written to be shown; anything else is named by its type only.
_OWN_MESSAGES = (StoreError, DicomReadError, TranscodeError, PixelEditError)


class ResponseAborted(Exception):
    """A document failed after the answer's head went out; the server closes the connection."""


def describe(exc: Exception) -> str:
    if isinstance(exc, Refusal):
        return f"anonymization refused: {exc.reason}"
    if isinstance(exc, _OWN_MESSAGES):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def guarded(chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """`chunks`, with a failure turned into a logged, data-free ResponseAborted (`where` names the place)."""
    try:
        yield from chunks
    except Exception as exc:
        log.error("response aborted at %s: %s", where, describe(exc))
        raise ResponseAborted(f"response aborted at {where}") from None
