"""A streaming reader for multipart/related bodies (MTOM responses, WADO-RS answers) that keeps every byte of
every part.

zeep strips CR/LF from the ends of binary parts (zeep issue 1249) and holds the whole response in memory; a DICOM
object may well end in 0x0D 0x0A, and a study can be gigabytes. This reader yields each part's bytes as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


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
            if not self._fill():
                raise MultipartError("the body ends inside part headers")
        raw, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        fields = {}
        for line in raw.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        return PartHeaders(fields)

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
