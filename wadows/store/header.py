"""Reading the few header facts the index keeps, as cheaply as a Part 10 file allows.

Only the file meta and the top-level elements up to Series Instance UID (0020,000E) are
parsed: from the bytes for the common case (wadows.store.header_bytes), else by pydicom, the
values of other elements skipped; pixel data is never reached. UID values are decoded here from
the raw bytes, so pydicom's value validation (whose log lines quote the value) never runs on them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

from wadows.store.header_bytes import uid_values

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
HEAD_BYTES = 16 << 10  # read at once: the elements up to Series Instance UID of nearly every file (else pydicom reads)

_SOP_CLASS = BaseTag(0x00080016)
_SOP_INSTANCE = BaseTag(0x00080018)
_STUDY = BaseTag(0x0020000D)
_SERIES = BaseTag(0x0020000E)
_WANTED = [_SOP_CLASS, _SOP_INSTANCE, _STUDY, _SERIES]
_LAST_WANTED = int(_SERIES)  # elements come in tag order: nothing after this is needed
_MAX_UID_LENGTH = 64
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # SOP Class of DICOMDIR files


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What the index stores about an instance."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str


class NotAnInstance(Exception):
    """Not a Part 10 file of an instance: no 128-byte preamble + "DICM", or a DICOMDIR."""


class UnreadableHeader(Exception):
    """A Part 10 file whose header cannot give the facts (corrupt, truncated, UIDs missing, I/O error)."""


def read_header_facts(path: str) -> HeaderFacts:
    """The index facts of the Part 10 file at path. Raises NotAnInstance or UnreadableHeader."""
    try:
        with open(path, "rb") as fp:
            return header_facts(fp)
    except OSError as exc:
        raise UnreadableHeader(f"file could not be read ({exc.strerror or type(exc).__name__})") from None


def header_facts(fp: BinaryIO) -> HeaderFacts:
    """The same facts from a whole Part 10 object open at its start (a file, or the object in memory)."""
    lead = fp.read(HEAD_BYTES)
    if len(lead) < PREAMBLE_LENGTH + len(MAGIC) or lead[PREAMBLE_LENGTH:PREAMBLE_LENGTH + len(MAGIC)] != MAGIC:
        raise NotAnInstance("no DICM magic after the preamble")
    values = uid_values(lead)  # the common case, from the bytes; anything else is for pydicom
    if values is not None:
        read = lambda tag: _clean_uid(values.get(int(tag)))  # noqa: E731 - file meta and data set tags differ
        return _facts(read, read)
    fp.seek(0)
    dataset = _parse_header(fp)
    meta = getattr(dataset, "file_meta", None) or Dataset()
    return _facts(lambda tag: _uid(meta, tag), lambda tag: _uid(dataset, tag))


def _past_series_uid(tag: BaseTag, vr: str | None, length: int) -> bool:
    # int() first: BaseTag's own comparison operators cost several times more, once per element.
    return int(tag) > _LAST_WANTED


def _parse_header(fp: BinaryIO) -> Dataset:
    try:
        # Quirky files make pydicom warn on every update; the index counts them instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_partial(
                fp,
                stop_when=_past_series_uid,
                specific_tags=list(_WANTED),
            )
    except OSError:
        raise
    except Exception as exc:  # any parse failure of a corrupt file is a skip, never a crash
        raise UnreadableHeader(f"header could not be parsed ({type(exc).__name__})") from None


def _facts(meta_uid, uid) -> HeaderFacts:
    """The facts from the UIDs of the file meta and of the data set (each "" when absent or not a UID)."""
    if meta_uid(BaseTag(0x00020002)) == MEDIA_STORAGE_DIRECTORY:
        raise NotAnInstance("a DICOMDIR lists instances but is not one")
    transfer_syntax = meta_uid(BaseTag(0x00020010))
    sop_class = uid(_SOP_CLASS) or meta_uid(BaseTag(0x00020002))
    facts = {
        "transfer syntax": transfer_syntax,
        "SOP class": sop_class,
        "SOP instance": uid(_SOP_INSTANCE),
        "study": uid(_STUDY),
        "series": uid(_SERIES),
    }
    missing = [name for name, value in facts.items() if not value]
    if missing:
        raise UnreadableHeader("missing or invalid UID: " + ", ".join(missing))
    return HeaderFacts(
        study_uid=facts["study"],
        series_uid=facts["series"],
        sop_instance_uid=facts["SOP instance"],
        sop_class_uid=sop_class,
        transfer_syntax_uid=transfer_syntax,
    )


def _uid(dataset: Dataset, tag: BaseTag) -> str:
    """The UID at tag as a clean string, or "" when absent, empty, multi-valued or not a UID shape."""
    if tag not in dataset:
        return ""
    element = dataset.get_item(tag)
    return _clean_uid(element.value if isinstance(element, RawDataElement) or isinstance(element.value, str)
                      else None)


def _clean_uid(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return ""
    if not isinstance(value, str):
        return ""
    value = value.rstrip("\x00 ").strip()
    if not value or len(value) > _MAX_UID_LENGTH or "\\" in value or not value.isprintable():
        return ""
    return value
