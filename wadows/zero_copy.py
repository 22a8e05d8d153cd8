"""Putting a document's unchanged stored bytes on the wire without copying them through Python.

The operations yield FileSpans for stretches of a stored file (wadows.wado.messages). Under gunicorn, over plain
TCP, a span goes straight from the file to the client's socket with sendfile(2): gunicorn writes each item of
the body before it asks for the next, so the bytes before the span are already out. In a response framed by its
Content-Length the span is sent as it is; in a chunked one (no Content-Length: an answer whose documents are
finished while they are sent) it is sent as one chunk of its own, framed here the way gunicorn frames the
others. Anywhere else the span is read and yielded in chunks. TLS sockets never take the shortcut: sendfile
would bypass the encryption.
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
COALESCE_LIMIT = 64 << 10  # bytes held back to be written together


def wire_bytes(items: Iterable[bytes | FileSpan], environ: dict, length_framed: bool) -> Iterator[bytes]:
    """The response body as the WSGI server wants it (bytes only), sending spans itself where it can."""
    chunked = not length_framed and _gunicorn_chunks(environ)
    sock = _sendfile_socket(environ) if length_framed or chunked else None
    if sock is None:
        for item in items:
            if isinstance(item, FileSpan):
                yield from _read(item)
            else:
                yield item
        return
    # gunicorn writes each item with its own send(2): in a response framed by its length, the small pieces
    # between two spans (a part's MIME headers, a de-identified head) are joined into one write, which also keeps
    # them in one TCP segment.
    pending: list[bytes] = []
    pending_size = 0
    headers_out = False
    for item in items:
        if chunked and not isinstance(item, FileSpan):
            # Nothing held back: the next piece may take a while (fetched from a PACS), and the client should
            # have what is ready, the envelope first of all.
            yield item
            headers_out = True
        elif not isinstance(item, FileSpan):
            pending.append(item)
            pending_size += len(item)
            if pending_size >= COALESCE_LIMIT:
                yield b"".join(pending)
                pending, pending_size, headers_out = [], 0, True
        elif not item.count:
            continue
        elif not _has_fileno(item.fp):
            if pending:
                yield b"".join(pending)
                pending, pending_size, headers_out = [], 0, True
            yield from _read(item)
        else:
            if pending or not headers_out:
                yield b"".join(pending)  # b"" first: gunicorn writes the status line and headers with it
                pending, pending_size, headers_out = [], 0, True
            if chunked:
                sock.sendall(b"%X\r\n" % item.count)
            if sock.sendfile(item.fp, item.offset, item.count) != item.count:
                raise _short()
            if chunked:
                sock.sendall(b"\r\n")
    if pending:
        yield b"".join(pending)


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


def _gunicorn_chunks(environ: dict) -> bool:
    """Whether gunicorn sends this response (no Content-Length) in chunks, as gunicorn 27 decides it: HTTP/1.1,
    a body allowed (HEAD never gets here), plain HTTP protocol (not uwsgi, which wadows does not configure)."""
    return (environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/")
            and environ.get("SERVER_PROTOCOL") == "HTTP/1.1")


def _has_fileno(fp) -> bool:
    try:
        fp.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
