"""The one WSGI application: /wado-ws (SOAP, ?wsdl, ?xsd=NAME) and /health."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs

from wadows import uri
from wadows.soap import contract
from wadows.soap.endpoint import Limits, SoapEndpoint
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import is_valid_uid

log = logging.getLogger(__name__)

SOAP_PATH = "/wado-ws"
_INSTANCES_PATH = re.compile(r"/studies/([^/]+)(?:/series/([^/]+))?/instances")

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 410: "Gone", 413: "Payload Too Large",
            422: "Unprocessable Content", 500: "Internal Server Error", 501: "Not Implemented",
            503: "Service Unavailable"}


class WadowsApp:
    def __init__(self, source: ImagingDocumentSource, limits: Limits = Limits(), public_url: str = ""):
        self.source = source
        self.soap = SoapEndpoint(source, limits)
        self.public_url = public_url.rstrip("/")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == SOAP_PATH:
            if method == "POST":
                answer = self.soap.handle(environ)
                start_response(_status(answer.status), answer.headers)
                return answer.body
            if method in ("GET", "HEAD"):
                return self._contract(environ, start_response)
            return _plain(start_response, 405, "Use POST for SOAP requests, GET ?wsdl for the contract\n",
                          [("Allow", "GET, HEAD, POST")])
        if path == "/wado" and method in ("GET", "HEAD"):
            answer = uri.handle(self.source, environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT"))
            start_response(_status(answer.status), answer.headers)
            return answer.body
        if path == "/health" and method in ("GET", "HEAD"):
            return self._health(start_response)
        if path.startswith("/studies/") and method in ("GET", "HEAD"):
            return self._instances(path, start_response)
        return _plain(start_response, 404, "Not found. The SOAP endpoint is /wado-ws (WSDL: /wado-ws?wsdl)\n")

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

    def _instances(self, path, start_response):
        """QIDO-RS instance listing of one study or series (PS3.18 §10.6), UIDs only: what a RAD-69 caller needs
        to name documents, nothing else about them."""
        match = _INSTANCES_PATH.fullmatch(path)
        if match is None or not all(is_valid_uid(uid) for uid in match.groups() if uid):
            return _plain(start_response, 404, "Use /studies/{study}/instances or "
                                               "/studies/{study}/series/{series}/instances\n")
        records = self.source.store.instances(match.group(1), match.group(2))
        if not records:
            start_response("204 No Content", [])
            return [b""]
        data = json.dumps([{
            "0020000D": {"vr": "UI", "Value": [r.study_uid]},
            "0020000E": {"vr": "UI", "Value": [r.series_uid]},
            "00080016": {"vr": "UI", "Value": [r.sop_class_uid]},
            "00080018": {"vr": "UI", "Value": [r.sop_instance_uid]},
        } for r in records]).encode()
        start_response("200 OK", [("Content-Type", "application/dicom+json"), ("Content-Length", str(len(data)))])
        return [data]

    def _health(self, start_response):
        try:
            body = {"status": "ok", "instances": self.source.store.count(),
                    "repositoryUniqueId": self.source.repository_uid}
            status = 200
        except Exception:
            log.exception("health check failed")
            body, status = {"status": "error"}, 500
        data = json.dumps(body).encode()
        start_response(_status(status), [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def _status(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Error')}"


def _plain(start_response, code: int, text: str, extra: list[tuple[str, str]] | None = None):
    data = text.encode()
    start_response(_status(code), [("Content-Type", "text/plain; charset=utf-8"),
                                   ("Content-Length", str(len(data)))] + (extra or []))
    return [data]
