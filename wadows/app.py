"""The one WSGI application: /wado-ws (SOAP, ?wsdl, ?xsd=NAME), /wado (WADO-URI), the QIDO-RS instance listing,
/health and /metrics. Every request that can return data first identifies its caller (wadows.policy) and is
accounted for afterwards in the audit trail and the metrics."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from urllib.parse import parse_qs

from wadows import logs, uri
from wadows.policy.access import AccessPolicy, AuthenticationFailed, is_tls
from wadows.policy.audit import AuditLog
from wadows.policy.credentials import WWW_AUTHENTICATE
from wadows.policy.metrics import CONTENT_TYPE as METRICS_TYPE
from wadows.policy.metrics import ABORTED, Metrics
from wadows.soap import contract
from wadows.soap.endpoint import Limits, SoapEndpoint, fault_answer
from wadows.soap.errors import sender
from wadows.streaming import ResponseAborted
from wadows.store.base import StoreError
from wadows.wado import codes
from wadows.wado.anonymize import anonymize_requested
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import is_valid_uid
from wadows.zero_copy import wire_bytes

log = logging.getLogger(__name__)

SOAP_PATH = "/wado-ws"
_BASIC_NEEDS_TLS = "HTTP Basic credentials are accepted only over TLS"
_INSTANCES_PATH = re.compile(r"/studies/([^/]+)(?:/series/([^/]+))?/instances")

# What an audit record of a refused login names as the operation: the body of such a request is never read.
_REFUSED_OPERATION = {"soap": "WADO-WS", "uri": "WADO-URI", "qido": "QIDO-RS"}

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 410: "Gone", 413: "Payload Too Large",
            422: "Unprocessable Content", 500: "Internal Server Error", 501: "Not Implemented",
            503: "Service Unavailable"}


class WadowsApp:
    def __init__(self, source: ImagingDocumentSource, limits: Limits = Limits(), public_url: str = "",
                 policy: AccessPolicy | None = None, audit: AuditLog | None = None, metrics: Metrics | None = None,
                 basic_over_http: bool = False):
        self.source = source
        self.soap = SoapEndpoint(source, limits)
        self.public_url = public_url.rstrip("/")
        self.policy = policy or AccessPolicy()
        self.audit = audit or AuditLog(None, b"")
        self.metrics = metrics or Metrics()
        self.basic_over_http = basic_over_http

    def __call__(self, environ, start_response):
        try:
            return self._route(environ, start_response)
        except Exception as exc:
            # Never let an exception reach gunicorn before the answer starts: its own log line would carry the
            # request URI (WADO-URI puts UIDs there) and the exception's text.
            log.error("request failed: %s at %s", type(exc).__name__, logs.where(exc))
            return _plain(start_response, 500, "The server could not answer this request\n")

    def _route(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == SOAP_PATH:
            if method == "POST":
                return self._answer(environ, start_response, "soap")
            if method in ("GET", "HEAD"):
                return self._contract(environ, start_response)
            return _plain(start_response, 405, "Use POST for SOAP requests, GET ?wsdl for the contract\n",
                          [("Allow", "GET, HEAD, POST")])
        if path == "/wado" and method in ("GET", "HEAD"):
            return self._answer(environ, start_response, "uri")
        if path == "/health" and method in ("GET", "HEAD"):
            return self._health(start_response)
        if path == "/metrics" and method in ("GET", "HEAD"):
            data = self.metrics.render()
            start_response("200 OK", [("Content-Type", METRICS_TYPE), ("Content-Length", str(len(data)))])
            return [data]
        if path.startswith("/studies/") and method in ("GET", "HEAD"):
            return self._answer(environ, start_response, "qido")
        return _plain(start_response, 404, "Not found. The SOAP endpoint is /wado-ws (WSDL: /wado-ws?wsdl)\n")

    def _answer(self, environ, start_response, kind: str):
        started = time.monotonic()
        try:
            caller = self._caller(environ)
        except AuthenticationFailed as failure:
            self.metrics.count_authentication_failure()
            status = 403 if failure.reason == _BASIC_NEEDS_TLS else 401
            log.info("authentication failed: %s", failure.reason)
            self._audit(operation=_REFUSED_OPERATION[kind], outcome=status, duration_ms=_ms_since(started))
            if kind == "soap":
                answer = fault_answer(sender(f"Authentication failed: {failure.reason}", http_status=status), None)
            else:
                answer = _text_answer(status, f"Authentication failed: {failure.reason}")
            headers = answer.headers + ([("WWW-Authenticate", WWW_AUTHENTICATE)] if status == 401 else [])
            start_response(_status(status), headers)
            return answer.body
        if kind == "qido":
            answer = self._instances(environ["PATH_INFO"], caller)
        elif kind == "soap":
            answer = self.soap.handle(environ, caller)
        else:
            answer = _started(uri.handle(self.source, environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT"),
                                         caller))
        headers = answer.headers
        if answer.status == 401:
            headers = headers + [("WWW-Authenticate", WWW_AUTHENTICATE)]
        start_response(_status(answer.status), headers)
        length_framed = any(name.lower() == "content-length" for name, _ in headers)
        return _Accounted(wire_bytes(answer.body, environ, length_framed),
                          lambda delivered: self._account(answer, caller, started, delivered))

    def _caller(self, environ):
        if "HTTP_AUTHORIZATION" in environ and not (self.basic_over_http or is_tls(environ)):
            raise AuthenticationFailed(_BASIC_NEEDS_TLS)
        return self.policy.identify(environ)

    def _account(self, answer, caller, started: float, delivered: bool) -> None:
        """The audit record and the metrics of an answered request (counts, codes, hashed UIDs: no data), once
        its body is sent or cut short (`delivered` False: the client may not have everything returned)."""
        response, operation = answer.response, answer.operation or "other"
        seconds = time.monotonic() - started
        # A policy refusal of WADO-URI is an HTTP status: counted as such, not as a failed retrieval.
        outcome = answer.status if answer.status in (401, 403) or response is None else response.status
        documents = list(response.documents) if response is not None else []
        refused = [e.code for e in response.errors if e.severity == codes.SEVERITY_ERROR] if response else []
        requested = list(response.requested) if response is not None else list(getattr(answer, "requested", ()))
        anonymized = sum(1 for d in documents if anonymize_requested(d.ref.anonymize))
        self.metrics.count_request(operation, outcome if delivered else ABORTED, caller.kind,
                                   returned=len(documents) if delivered else 0, refused=len(refused),
                                   anonymized=anonymized if delivered else 0, seconds=seconds)
        self._audit(operation=operation, outcome=outcome, caller=caller, documents=requested, returned=len(documents),
                    refused=refused, anonymized=anonymized, duration_ms=seconds * 1000, delivered=delivered)

    def _audit(self, **fields) -> None:
        try:
            self.audit.record(**fields)
        except (OSError, ValueError) as exc:
            log.error("the audit record could not be written: %s", type(exc).__name__)

    def endpoint_url(self, environ) -> str:
        if self.public_url:
            return self.public_url + SOAP_PATH
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
        return f"{scheme}://{host}{SOAP_PATH}"

    def _contract(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if "wsdl" in query or "WSDL" in query:
            name = contract.WSDL_NAME
        elif "xsd" in query:
            name = query["xsd"][0]
        else:
            return _plain(start_response, 400, "Ask for the contract with ?wsdl (schemas: ?xsd=NAME)\n")
        try:
            document = contract.render(name, self.endpoint_url(environ))
        except KeyError:
            return _plain(start_response, 404, "No such schema in this server's contract\n")
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                  ("Content-Length", str(len(document)))])
        return [document]

    def _instances(self, path, caller) -> uri.UriAnswer:
        """QIDO-RS instance listing of one study or series (PS3.18 §10.6), UIDs only: what a RAD-69 caller needs
        to name documents, nothing else about them."""
        answer = self._listing(path, caller)
        answer.operation = "QIDO-RS"
        return answer

    def _listing(self, path, caller) -> uri.UriAnswer:
        if not caller.allowed:
            return _text_answer(401, "Authentication required")
        match = _INSTANCES_PATH.fullmatch(path)
        if match is None or not all(is_valid_uid(uid) for uid in match.groups() if uid):
            return _text_answer(404, "Use /studies/{study}/instances or /studies/{study}/series/{series}/instances")
        try:
            records = self.source.store.instances(match.group(1), match.group(2))
        except StoreError as exc:
            return _text_answer(503, f"The image store is not available: {exc}")
        listed = uri.UriAnswer(204, [], [b""])
        listed.requested = [match.group(1)]
        if records:
            data = json.dumps([{
                "0020000D": {"vr": "UI", "Value": [r.study_uid]},
                "0020000E": {"vr": "UI", "Value": [r.series_uid]},
                "00080016": {"vr": "UI", "Value": [r.sop_class_uid]},
                "00080018": {"vr": "UI", "Value": [r.sop_instance_uid]},
            } for r in records]).encode()
            listed = uri.UriAnswer(200, [("Content-Type", "application/dicom+json"),
                                         ("Content-Length", str(len(data)))], [data])
            listed.requested = [match.group(1)]
        return listed

    def _health(self, start_response):
        """200 while the store answers; 503 with the reason when it does not (a load balancer's signal)."""
        try:
            body = {"status": "ok", "instances": self.source.store.health(),
                    "repositoryUniqueId": self.source.repository_uid}
            status = 200
        except StoreError as exc:
            body, status = {"status": "unavailable", "reason": str(exc)}, 503
        except Exception as exc:
            log.error("health check failed: %s at %s", type(exc).__name__, logs.where(exc))
            body, status = {"status": "error"}, 500
        data = json.dumps(body).encode()
        start_response(_status(status), [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def _status(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Error')}"


def _text_answer(status: int, text: str) -> uri.UriAnswer:
    data = (text + "\n").encode()
    return uri.UriAnswer(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
                         [data])


def _started(answer: uri.UriAnswer) -> uri.UriAnswer:
    """The answer with its first chunk already made: a document that fails at once becomes a proper error answer
    here, instead of an exception that gunicorn would log with the request URI (and its UIDs)."""
    body = iter(answer.body)
    try:
        first = next(body, b"")
    except ResponseAborted:
        failed = _text_answer(503 if answer.status == 200 else 500, "The object could not be produced")
        failed.response, failed.operation = answer.response, answer.operation
        return failed
    answer.body = itertools.chain([first], body)
    return answer


def _plain(start_response, code: int, text: str, extra: list[tuple[str, str]] | None = None):
    data = text.encode()
    start_response(_status(code), [("Content-Type", "text/plain; charset=utf-8"),
                                   ("Content-Length", str(len(data)))] + (extra or []))
    return [data]


class _Accounted:
    """The body as the WSGI server iterates it; `account(delivered)` exactly once: when it is all out, or when the
    server closes it early (the client went away, a stored file failed mid-stream), even before its first chunk
    (a generator closed before it started would never run its `finally`)."""

    def __init__(self, body, account) -> None:
        self._body, self._account, self._accounted = body, account, False

    def __iter__(self):
        try:
            yield from self._body
        except BaseException:
            self._finish(False)
            raise
        self._finish(True)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(False)

    def _finish(self, delivered: bool) -> None:
        if not self._accounted:
            self._accounted = True
            self._account(delivered)


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000

