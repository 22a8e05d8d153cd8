"""Reading multipart/related bodies (RFC 2046) while keeping every byte of every part: a streaming reader for
answers (MTOM responses, WADO-RS), and a splitter for a request body already in memory (MTOM requests).

zeep strips CR/LF from the ends of binary parts (zeep issue 1249) and holds the whole response in memory; a DICOM
object may well end in 0x0D 0x0A, and a study can be gigabytes. The reader yields each part's bytes as they arrive.
The splitter takes linear time in the body's size whatever its shape (the email package spends about a millisecond
per part: a 10 MB request of empty parts held a server thread for minutes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

MAX_HEADER_BYTES = 16384  # of one part's header block: a part needs three short fields
_AFTER_DELIMITER = re.compile(rb"(?:--|[ \t]*\r\n)")  # the close delimiter's "--", or padding and CRLF


class MultipartError(ValueError):
    pass


@dataclass
class PartHeaders:
    fields: dict[str, str]  # lower-case names

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(name.lower(), default)

    @property
    def content_id(self) -> str | None:
        value = self.get("content-id")
        return value.strip().strip("<>") if value else None


class MultipartReader:
    def __init__(self, chunks: Iterator[bytes], boundary: str):
        self._chunks = iter(chunks)
        self._buffer = b""
        self._dash_boundary = b"--" + boundary.encode("ascii")
        self._delimiter = b"\r\n" + self._dash_boundary
        self._done = False

    def parts(self) -> Iterator[tuple[PartHeaders, Iterator[bytes]]]:
        """Each part's headers and a generator of its body; consume the body before asking for the next part."""
        self._skip_preamble()
        while not self._done:
            headers = self._read_headers()
            body = self._body()
            yield headers, body
            for _ in body:  # drain what the caller left unread
                pass

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return True
        return False

    def _skip_preamble(self) -> None:
        while True:
            at = self._buffer.find(self._dash_boundary)
            if at >= 0 and (at == 0 or self._buffer[at - 2:at] == b"\r\n"):
                self._buffer = self._buffer[at + len(self._dash_boundary):]
                self._after_delimiter()
                return
            if not self._fill():
                raise MultipartError("the body holds no multipart boundary")

    def _after_delimiter(self) -> None:
        # After a boundary: "--" closes the body; otherwise optional padding, then CRLF.
        while len(self._buffer) < 2 and self._fill():
            pass
        if self._buffer.startswith(b"--"):
            self._done = True
            return
        while b"\r\n" not in self._buffer:
            if not self._fill():
                raise MultipartError("the body ends inside a boundary line")
        self._buffer = self._buffer[self._buffer.index(b"\r\n") + 2:]

    def _read_headers(self) -> PartHeaders:
        while b"\r\n\r\n" not in self._buffer:
            if self._buffer.startswith(b"\r\n"):  # a part without headers
                self._buffer = self._buffer[2:]
                return PartHeaders({})
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise MultipartError("a part's headers are too long")
            if not self._fill():
                raise MultipartError("the body ends inside part headers")
        raw, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return parse_headers(raw)

    def _body(self) -> Iterator[bytes]:
        keep = len(self._delimiter) - 1
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                data, self._buffer = self._buffer[:at], self._buffer[at + len(self._delimiter):]
                if data:
                    yield data
                self._after_delimiter()
                return
            if len(self._buffer) > keep:
                data, self._buffer = self._buffer[:-keep], self._buffer[-keep:]
                yield data
            if not self._fill():
                raise MultipartError("the body ends before the closing boundary")


Part = tuple[PartHeaders, bytes]  # headers, content


def split(body: bytes, boundary: bytes, max_parts: int) -> list[Part]:
    """The parts of a whole multipart body, each as its headers and its content; [] when the body closes without a
    part. One forward search finds every delimiter (a literal prefix: linear, in C), and each part's headers are
    read from its own bytes only."""
    dash = b"--" + boundary
    delimiter = re.compile(re.escape(b"\r\n" + dash) + _AFTER_DELIMITER.pattern)
    found = _AFTER_DELIMITER.match(body, len(dash)) if body.startswith(dash) else None
    found = found or delimiter.search(body)  # after a preamble
    if found is None:
        raise MultipartError("the body holds no multipart boundary delimiter")
    parts = []
    while not found.group().endswith(b"--"):
        if len(parts) == max_parts:
            raise MultipartError(f"the body holds more than {max_parts} parts")
        start = found.end()
        found = delimiter.search(body, start)
        if found is None:
            raise MultipartError("the body ends before its closing boundary")
        parts.append(_part(body, start, found.start()))
    return parts


def _part(body: bytes, start: int, end: int) -> Part:
    if body.startswith(b"\r\n", start, end):  # no headers
        return PartHeaders({}), body[start + 2:end]
    blank = body.find(b"\r\n\r\n", start, min(end, start + MAX_HEADER_BYTES + 4))
    if blank < 0:
        if end - start > MAX_HEADER_BYTES:
            raise MultipartError("a part's headers are too long")
        return parse_headers(body[start:end]), b""  # headers and no content
    return parse_headers(body[start:blank]), body[blank + 4:end]


def parse_headers(raw: bytes) -> PartHeaders:
    """A part's header fields: names lower-cased, the first of repeated fields, folded lines joined."""
    fields: dict[str, str] = {}
    current = None  # the field a folded line continues (None: a repeated field, dropped)
    for line in raw.decode("latin-1").split("\r\n"):
        if line[:1] in (" ", "\t"):
            if current is not None:
                fields[current] = (fields[current] + " " + line.strip()).strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        current = name if sep and name not in fields else None
        if current is not None:
            fields[current] = value.strip()
    return PartHeaders(fields)
