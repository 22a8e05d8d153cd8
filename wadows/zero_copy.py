"""Putting a document's unchanged stored bytes on the wire without copying them through Python.

The operations yield FileSpans for stretches of a stored file (wadows.wado.messages). Under gunicorn, over plain
TCP, in a response framed by its Content-Length (no chunk framing to add), a span goes straight from the file to
the client's socket with sendfile(2): gunicorn writes each item of the body before it asks for the next, so the
bytes before the span are already out. Anywhere else the span is read and yielded in chunks. TLS sockets never
take the shortcut: sendfile would bypass the encryption.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Iterable, Iterator

from wadows.streaming import ResponseAborted
from wadows.wado.messages import FileSpan

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20


def wire_bytes(items: Iterable[bytes | FileSpan], environ: dict, length_framed: bool) -> Iterator[bytes]:
    """The response body as the WSGI server wants it (bytes only), sending spans itself where it can."""
    sock = _sendfile_socket(environ) if length_framed else None
    headers_out = False
    for item in items:
        if not isinstance(item, FileSpan):
            headers_out = True  # written by gunicorn before it asks for the next item
            yield item
        elif not item.count:
            continue
        elif sock is None or not _has_fileno(item.fp):
            yield from _read(item)
        else:
            if not headers_out:
                yield b""  # gunicorn writes the status line and the headers with its first write
                headers_out = True
            if sock.sendfile(item.fp, item.offset, item.count) != item.count:
                raise _short()


def _read(span: FileSpan) -> Iterator[bytes]:
    span.fp.seek(span.offset)
    left = span.count
    while left:
        data = span.fp.read(min(READ_SIZE, left))
        if not data:
            raise _short()
        left -= len(data)
        yield data


def _short() -> ResponseAborted:
    log.error("response aborted: a stored file ended before the bytes promised for it")
    return ResponseAborted("a stored file ended early")


def _sendfile_socket(environ: dict) -> socket.socket | None:
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return None
    if environ.get("wsgi.url_scheme") != "http" or environ.get("REQUEST_METHOD") == "HEAD":
        return None  # HEAD: gunicorn drops the body, and so must we
    return sock


def _has_fileno(fp) -> bool:
    try:
        fp.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
