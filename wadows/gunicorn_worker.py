"""gunicorn's gthread worker, answering the requests gunicorn refuses before the application runs in our own way.

gunicorn answers them with an HTML page quoting the offending request line or header value, and logs that text at
WARNING; a WADO-URI request line carries UIDs, which are patient data. Here the answer quotes nothing of the
request: a SOAP 1.2 Sender fault (HTTP 400) on the SOAP endpoint or when the path could not be read, a short
text/plain with a documented status (docs/conformance.md) on the other paths; the log line names the kind of
refusal only.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import unquote, urlsplit

from gunicorn.http import errors
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import ThreadWorker

from wadows import logs
from wadows.app import SOAP_PATH
from wadows.soap import faults
from wadows.soap.errors import receiver, sender

log = logging.getLogger(__name__)

# What went wrong, said without request values, and the status on the non-SOAP paths (SOAP: always 400).
_REFUSALS: list[tuple[type | tuple[type, ...], str, int]] = [
    (errors.LimitRequestLine, "its request line is longer than this server accepts", 414),
    (errors.LimitRequestHeaders, "its header fields are larger or more numerous than this server accepts", 431),
    (errors.ExpectationFailed, "its Expect header asks for something other than 100-continue", 417),
    (errors.UnsupportedTransferCoding, "its Transfer-Encoding is not one this server supports (chunked)", 501),
    (errors.InvalidRequestLine, "its request line is malformed (bytes outside printable ASCII must be "
                                "percent-encoded)", 400),
    ((errors.InvalidRequestMethod, errors.InvalidHTTPVersion), "its method or HTTP version is not valid", 400),
    ((errors.InvalidHeader, errors.InvalidHeaderName, errors.ObsoleteFolding), "a header field is malformed", 400),
    ((errors.InvalidChunkSize, errors.ChunkMissingTerminator, errors.InvalidChunkExtension),
     "its chunked body is malformed", 400),
    (errors.ForbiddenProxyRequest, "it came through a proxy this server does not trust", 403),
    (errors.ConfigurationProblem, "the server's HTTP configuration does not allow it", 500),
    (errors.ParseException, "it is not HTTP this server can read", 400),
]
_REASONS = {400: "Bad Request", 403: "Forbidden", 414: "URI Too Long", 417: "Expectation Failed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented"}


class _Request(Request):
    """gunicorn's request, keeping the path it had read when parsing fails: which endpoint the refusal is for."""

    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except errors.ParseException as exc:
            exc.wadows_path = _path_of(getattr(self, "path", None) or getattr(self, "uri", None))
            raise

    def read_line(self, unreader, buf, limit=0):
        try:
            return super().read_line(unreader, buf, limit)
        except errors.LimitRequestLine:
            # Too long to be parsed, but its start (method, path) has been read.
            parts = bytes(buf[:limit or None]).split(b" ", 2)
            self.uri = parts[1].decode("latin-1") if len(parts) > 1 else None
            raise


class WadowsWorker(ThreadWorker):
    def init_process(self):
        # gthread makes its parser inside the connection's set-up, with no hook: the request class is set on the
        # parser class, in this worker process only.
        RequestParser.mesg_class = _Request
        super().init_process()

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, ssl.SSLError):
            return super().handle_error(req, client, addr, exc)  # TLS failures quote no request values
        path = _path_of(req.path) if req is not None else getattr(exc, "wadows_path", None)
        what, status = _refusal(exc)
        if what is None:
            log.error("request failed before an answer: %s at %s", type(exc).__name__, logs.where(exc))
            text = "The server could not answer this request"
        else:
            log.info("refused an HTTP request gunicorn cannot read: %s", type(exc).__name__)
            text = f"The HTTP request cannot be read: {what}"
        if path in (SOAP_PATH, None):
            fault = receiver() if status == 500 else sender(text)
            body, content_type = faults.envelope(fault), "application/soap+xml; charset=utf-8"
            status = faults.http_status(fault)
        else:
            body, content_type = f"{text}\n".encode(), "text/plain; charset=utf-8"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nConnection: close\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode("ascii")
        try:
            client.sendall(head + body)
        except OSError:
            pass  # the client is gone


def _refusal(exc: BaseException) -> tuple[str | None, int]:
    for kind, what, status in _REFUSALS:
        if isinstance(exc, kind):
            return what, status
    return None, 500


def _path_of(target: str | None) -> str | None:
    """The decoded path of a request target (origin or absolute form), as the application would route it."""
    if not target:
        return None
    if target.startswith("/"):
        path = target.split("?", 1)[0].split("#", 1)[0]
    elif "://" in target:
        try:
            path = urlsplit(target).path
        except ValueError:
            return None
    else:
        return None
    return unquote(path, encoding="latin-1")
