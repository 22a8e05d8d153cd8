"""WADO-URI (`GET /wado`, PS3.18 chapter 9 in its current form): the query parsed into the same operations as
WS mode, their per-document result turned into one HTTP answer.

Names are case-sensitive and an unknown or repeated parameter is refused (400): a misspelled `studyuid`
silently ignored would look like a server bug. `anonymize` goes only with `contentType=application/dicom` and
only as `yes`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import parse_qs

from wadows.streaming import guarded
from wadows.wado import codes
from wadows.wado.rejected import GONE, NOT_AUTHORIZED
from wadows.wado.messages import DocumentRef, RegistryError, RenderedRequest, RenderingParameters, RetrieveRequest
from wadows.wado.rendered import rendered
from wadows.wado.retrieve import retrieve
from wadows.wado.source import ImagingDocumentSource
from wadows.wado.uids import is_valid_uid

log = logging.getLogger(__name__)

DICOM = "application/dicom"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ALL_SYNTAXES = (  # transferSyntax=*: whatever is stored, else Explicit VR Little Endian
    EXPLICIT_LE, "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5")

PARAMETERS = frozenset({
    "requestType", "studyUID", "seriesUID", "objectUID", "contentType", "charset", "anonymize", "annotation",
    "rows", "columns", "region", "windowCenter", "windowWidth", "frameNumber", "imageQuality", "presentationUID",
    "presentationSeriesUID", "transferSyntax",
})
_MAX_FIELDS = 64  # of a query: PS3.18 defines 18 parameters
_DICOM_ONLY = ("anonymize", "transferSyntax")
_RENDERED_ONLY = ("annotation", "rows", "columns", "region", "windowCenter", "windowWidth", "frameNumber",
                  "presentationUID", "presentationSeriesUID", "charset")

# RegistryError code -> HTTP status (PS3.18 §9.4: 400, 404, 406, 410; the rest are ours, documented).
_STATUS = {
    codes.REQUEST_ERROR: 400, codes.INVALID_PARAMETER: 400, codes.UNSUPPORTED_PARAMETER: 400,
    codes.FRAME_OUT_OF_RANGE: 400,
    codes.DOCUMENT_UNIQUE_ID_ERROR: 404, codes.UNKNOWN_REPOSITORY: 404, codes.UNKNOWN_COMMUNITY: 404,
    codes.PRESENTATION_UID_UNKNOWN: 404, codes.PRESENTATION_SERIES_UID_UNKNOWN: 404,
    codes.FORMAT_NOT_SUPPORTED: 406, codes.FORMAT_NOT_POSSIBLE: 406, codes.SINGLE_FRAME_NOT_AVAILABLE: 406,
    codes.REPOSITORY_ERROR: 406,  # no requested transfer syntax possible (RAD-69 says it with this code)
    codes.TOO_LARGE: 413,
    codes.UNABLE_TO_ANONYMIZE: 422, codes.ANONYMIZE_NOT_SUPPORTED: 501,
    codes.REPOSITORY_BUSY: 503, codes.PROCESSING_FAILURE: 500,
}


class UriError(Exception):
    def __init__(self, status: int, message: str, response=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.response = response


@dataclass
class UriAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    operation: str | None = "WADO-URI"
    response: object = None  # the operation's wadows.wado Response, when there was one


def handle(source: ImagingDocumentSource, query_string: str, accept: str | None, caller) -> UriAnswer:
    try:
        params = _parse(query_string)
        ref = _document(params)
        content_type = params.get("contentType")
        if "anonymize" in params:
            if params["anonymize"] != "yes":
                raise UriError(400, 'anonymize takes exactly the value "yes"')
            if content_type is None or content_type.split(",")[0].strip() != DICOM:
                raise UriError(400, "anonymize is allowed only with contentType=application/dicom")
        wanted = [t.strip() for t in content_type.split(",")] if content_type else []
        if DICOM in wanted:
            if any(p in params for p in _RENDERED_ONLY):
                raise UriError(400, "rendering parameters do not apply to contentType=application/dicom")
            return _dicom(source, ref, params, accept, caller)
        if any(p in params for p in _DICOM_ONLY):
            raise UriError(400, "anonymize and transferSyntax apply only to contentType=application/dicom")
        return _rendered(source, ref, params, wanted, accept, caller)
    except UriError as error:
        log.info("WADO-URI answered %d", error.status)
        answer = _text(error.status, error.message)
        answer.response = error.response
        return answer


def _parse(query_string: str) -> dict[str, str]:
    try:
        raw = parse_qs(query_string, keep_blank_values=True, strict_parsing=False, max_num_fields=_MAX_FIELDS)
    except ValueError:  # parse_qs counts the separators, empty fields included
        raise UriError(400, f"the query has more than {_MAX_FIELDS} fields") from None
    unknown = sorted(set(raw) - PARAMETERS)
    if unknown:
        shown = ", ".join(name[:40] for name in unknown[:5])
        raise UriError(400, f"unknown parameter(s): {shown} (names are case-sensitive)")
    repeated = sorted(name for name, values in raw.items() if len(values) > 1)
    if repeated:
        raise UriError(400, f"parameter(s) given more than once: {', '.join(repeated)}")
    params = {name: values[0] for name, values in raw.items()}
    if params.get("requestType") != "WADO":
        raise UriError(400, "requestType=WADO is required")
    return params


def _document(params: dict[str, str]) -> DocumentRef:
    for name in ("studyUID", "seriesUID", "objectUID"):
        if not params.get(name):
            raise UriError(400, f"{name} is required")
        if not is_valid_uid(params[name]):
            raise UriError(400, f"{name} is not a valid DICOM UID")
    return DocumentRef(study_uid=params["studyUID"], series_uid=params["seriesUID"], document_uid=params["objectUID"],
                       anonymize="yes" if "anonymize" in params else None, frame_number=params.get("frameNumber"))


def _dicom(source, ref: DocumentRef, params: dict[str, str], accept: str | None, caller) -> UriAnswer:
    _check_accept(accept, DICOM)
    syntax = params.get("transferSyntax")
    if syntax is not None and syntax != "*" and not is_valid_uid(syntax):
        raise UriError(400, "transferSyntax is not a valid UID")
    syntaxes = (EXPLICIT_LE,) if syntax is None else ALL_SYNTAXES if syntax == "*" else (syntax,)
    result = retrieve(source, RetrieveRequest(documents=(ref,), transfer_syntaxes=syntaxes), caller)
    return _single(result, DICOM, caller)


def _rendered(source, ref: DocumentRef, params: dict[str, str], wanted: list[str], accept: str | None,
              caller) -> UriAnswer:
    region = params.get("region")
    rendering = RenderingParameters(
        content_types=tuple(wanted) or _accepted_types(accept),
        charsets=tuple(c.strip() for c in params["charset"].split(",")) if params.get("charset") else (),
        annotation=params.get("annotation"), rows=params.get("rows"), columns=params.get("columns"),
        region=region, window_center=params.get("windowCenter"), window_width=params.get("windowWidth"),
        image_quality=params.get("imageQuality"), presentation_uid=params.get("presentationUID"),
        presentation_series_uid=params.get("presentationSeriesUID"))
    result = rendered(source, RenderedRequest(documents=((ref, rendering),)), caller)
    answer = _single(result, None, caller)
    _check_accept(accept, dict(answer.headers).get("Content-Type", ""))
    return answer


def _accepted_types(accept: str | None) -> tuple[str, ...]:
    """No contentType: the Accept header's types, in order; `*/*` (or nothing) takes our default."""
    if not accept:
        return ("*/*",)
    return tuple(part.split(";")[0].strip() for part in accept.split(",") if part.strip())


def _check_accept(accept: str | None, media_type: str) -> None:
    if not accept:
        return
    media = media_type.split(";")[0].strip()
    for part in accept.split(","):
        wanted = part.split(";")[0].strip()
        if wanted in ("*/*", media) or (wanted.endswith("/*") and media.startswith(wanted[:-1])):
            return
    raise UriError(406, f"the Accept header does not include {media}")


def _single(result, media_type: str | None, caller) -> UriAnswer:
    if not result.documents:
        error = next((e for e in result.errors if e.severity == codes.SEVERITY_ERROR), None)
        if error is None:
            raise UriError(500, "no document and no reason", result)
        raise UriError(_status_of(error, caller), error.context, result)
    body = result.documents[0].body
    headers = [("Content-Type", body.media_type or media_type)]
    if body.size is not None:
        headers.append(("Content-Length", str(body.size)))
    return UriAnswer(200, headers, guarded(body.chunks(), "the WADO-URI object"), response=result)


def _status_of(error: RegistryError, caller) -> int:
    if error.kind == GONE:
        return 410
    if error.kind == NOT_AUTHORIZED:
        return 401 if caller.kind == "anonymous" else 403  # 401: credentials would help
    return _STATUS.get(error.code, 400)


def _text(status: int, message: str) -> UriAnswer:
    data = (message + "\n").encode("utf-8")
    return UriAnswer(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
                     [data])
