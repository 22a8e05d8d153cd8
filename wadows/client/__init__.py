"""A small RAD-69 client: zeep builds the request from our WSDL; the response is streamed and every byte of
every document kept (zeep's own attachment handling strips trailing CR/LF and buffers the whole study).

    client = WadoWsClient("http://127.0.0.1:8080/wado-ws")
    with client.retrieve(client.instances(study_uid), anonymize=True) as result:
        for document in result.documents:
            document.save(folder / f"{document.returned_uid}.dcm")
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple
from urllib.parse import unquote

import requests
from lxml import etree

from wadows.multipart import MultipartReader
from wadows.soap import namespaces as ns
from wadows.soap.mtom_in import media_type_params
from wadows.wado.uids import is_valid_uid

RETRIEVE_OPERATION = "ImagingDocumentSource_RetrieveImagingDocumentSet"
RETRIEVE_ACTION = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"

# Accept what archives commonly store, so objects arrive as stored (byte for byte) whenever possible.
DEFAULT_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",      # Explicit VR Little Endian
    "1.2.840.10008.1.2",        # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",   # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",      # Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50",   # JPEG Baseline
    "1.2.840.10008.1.2.4.51",   # JPEG Extended
    "1.2.840.10008.1.2.4.57",   # JPEG Lossless
    "1.2.840.10008.1.2.4.70",   # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",   # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",   # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",   # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",   # JPEG 2000
    "1.2.840.10008.1.2.5",      # RLE Lossless
)


class ClientError(Exception):
    """The server answered with a SOAP fault, an HTTP error, or something that is not a RAD-69 response."""


class DocumentSpec(NamedTuple):
    study_uid: str
    series_uid: str
    document_uid: str


@dataclass
class RegistryErrorInfo:
    code: str
    context: str
    location: str | None
    severity: str


@dataclass
class ReceivedDocument:
    document_uid: str
    new_document_uid: str | None
    repository_uid: str | None
    mime_type: str | None
    chunks: Iterator[bytes]

    @property
    def returned_uid(self) -> str:
        """The SOP Instance UID inside the object: the new one when the server anonymized it. Checked, because
        callers name files after it: a server could send "../../somewhere"."""
        uid = self.new_document_uid or self.document_uid
        if not is_valid_uid(uid):
            raise ClientError("the server answered with a DocumentUniqueId that is not a DICOM UID")
        return uid

    def read(self) -> bytes:
        return b"".join(self.chunks)

    def save(self, path: Path) -> int:
        size = 0
        with open(path, "wb") as f:
            for chunk in self.chunks:
                f.write(chunk)
                size += len(chunk)
        return size


@dataclass
class RetrieveResult:
    status: str
    errors: list[RegistryErrorInfo]
    documents: Iterator[ReceivedDocument]
    document_count: int
    _response: requests.Response | None = field(default=None, repr=False)

    def __enter__(self) -> "RetrieveResult":
        return self

    def __exit__(self, *exc) -> None:
        if self._response is not None:
            self._response.close()


class WadoWsClient:
    def __init__(self, url: str, session: requests.Session | None = None, timeout: tuple[float, float] = (10, 600)):
        import zeep
        import zeep.transports

        self.url = url
        self.session = session or requests.Session()
        self.timeout = timeout
        transport = zeep.transports.Transport(session=self.session, timeout=timeout[1])
        self._zeep = zeep.Client(f"{url}?wsdl", transport=transport)

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[DocumentSpec]:
        """The instances of a study (or series), from the server's QIDO-RS listing (our server offers it)."""
        base = self.url.rsplit("/", 1)[0]
        path = f"/studies/{study_uid}" + (f"/series/{series_uid}" if series_uid else "") + "/instances"
        response = self.session.get(base + path, timeout=self.timeout, verify=self.session.verify,
                                    headers={"Accept": "application/dicom+json"})
        if response.status_code == 204:
            return []
        if response.status_code != 200:
            raise ClientError(f"listing the study failed: HTTP {response.status_code}")
        return [DocumentSpec(item["0020000D"]["Value"][0], item["0020000E"]["Value"][0],
                             item["00080018"]["Value"][0]) for item in json.loads(response.content)]

    def envelope(self, documents: Iterable[DocumentSpec], transfer_syntaxes: Iterable[str],
                 anonymize: bool, repository_uid: str | None = None) -> bytes:
        """The RAD-69 request as zeep builds it from the WSDL (WS-Addressing headers included)."""
        studies: dict[str, dict[str, list[dict]]] = {}
        for doc in documents:
            request = {"RepositoryUniqueId": repository_uid, "DocumentUniqueId": doc.document_uid}
            if anonymize:
                request["Anonymize"] = "yes"
            studies.setdefault(doc.study_uid, {}).setdefault(doc.series_uid, []).append(request)
        study_requests = [
            {"studyInstanceUID": study, "SeriesRequest": [
                {"seriesInstanceUID": series, "DocumentRequest": docs} for series, docs in series_map.items()]}
            for study, series_map in studies.items()
        ]
        message = self._zeep.create_message(
            self._zeep.service, RETRIEVE_OPERATION, StudyRequest=study_requests,
            TransferSyntaxUIDList={"TransferSyntaxUID": list(transfer_syntaxes)})
        return etree.tostring(message, xml_declaration=True, encoding="UTF-8")

    def retrieve(self, documents: Iterable[DocumentSpec], transfer_syntaxes: Iterable[str] = DEFAULT_TRANSFER_SYNTAXES,
                 anonymize: bool = False, repository_uid: str | None = None) -> RetrieveResult:
        """RAD-69 for these documents. The result's documents stream: read each before taking the next."""
        body = self.envelope(documents, transfer_syntaxes, anonymize, repository_uid)
        response = self.session.post(
            self.url, data=body, stream=True, timeout=self.timeout, verify=self.session.verify,
            headers={"Content-Type": f'application/soap+xml; charset=utf-8; action="{RETRIEVE_ACTION}"'})
        try:
            return _read_response(response)
        except Exception:
            response.close()
            raise


def _read_response(response: requests.Response) -> RetrieveResult:
    media_type, params = media_type_params(response.headers.get("Content-Type", ""))
    chunks = response.iter_content(chunk_size=1 << 20)
    if media_type == "multipart/related":
        parts = MultipartReader(chunks, params.get("boundary", "")).parts()
        try:
            _, root_body = next(parts)
        except StopIteration:
            raise ClientError("the multipart response holds no part") from None
        envelope = _parse(b"".join(root_body), response.status_code)
    else:
        envelope = _parse(b"".join(chunks), response.status_code)
        parts = iter(())
    status, errors, entries = _read_envelope(envelope)

    def documents() -> Iterator[ReceivedDocument]:
        by_cid = {entry["cid"]: entry for entry in entries if entry.get("cid")}
        for entry in entries:
            if entry.get("inline") is not None:
                yield _received(entry, iter([entry["inline"]]))
        for headers, body in parts:
            entry = by_cid.get(headers.content_id or "")
            if entry is not None:
                yield _received(entry, body)

    return RetrieveResult(status, errors, documents(), len(entries), response)


def _received(entry: dict, chunks: Iterator[bytes]) -> ReceivedDocument:
    return ReceivedDocument(entry["uid"], entry["new_uid"], entry["repository"], entry["mime"], chunks)


def _parse(xml: bytes, http_status: int) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        envelope = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError:
        raise ClientError(f"HTTP {http_status}: the response is not XML") from None
    fault = envelope.find(f"{{{ns.SOAP12}}}Body/{{{ns.SOAP12}}}Fault")
    if fault is not None:
        code = fault.findtext(f"{{{ns.SOAP12}}}Code/{{{ns.SOAP12}}}Value")
        reason = fault.findtext(f"{{{ns.SOAP12}}}Reason/{{{ns.SOAP12}}}Text")
        raise ClientError(f"SOAP fault {code}: {reason}")
    return envelope


def _read_envelope(envelope: etree._Element):
    answer = envelope.find(f"{{{ns.SOAP12}}}Body/{{{ns.XDS}}}RetrieveDocumentSetResponse")
    if answer is None:
        raise ClientError("the response is not a RetrieveDocumentSetResponse")
    registry = answer.find(f"{{{ns.RS}}}RegistryResponse")
    status = registry.get("status", "") if registry is not None else ""
    errors = [RegistryErrorInfo(e.get("errorCode", ""), e.get("codeContext", ""), e.get("location"),
                                e.get("severity", ""))
              for e in answer.iter(f"{{{ns.RS}}}RegistryError")]
    entries = []
    for doc in answer.findall(f"{{{ns.XDS}}}DocumentResponse"):
        entry = {
            "uid": doc.findtext(f"{{{ns.XDS}}}DocumentUniqueId", "").strip(),
            "new_uid": (doc.findtext(f"{{{ns.XDS}}}NewDocumentUniqueId") or "").strip() or None,
            "repository": (doc.findtext(f"{{{ns.XDS}}}RepositoryUniqueId") or "").strip() or None,
            "mime": (doc.findtext(f"{{{ns.XDS}}}mimeType") or "").strip() or None,
            "cid": None, "inline": None,
        }
        document = doc.find(f"{{{ns.XDS}}}Document")
        include = document.find(f"{{{ns.XOP}}}Include") if document is not None else None
        if include is not None:
            href = include.get("href", "")
            entry["cid"] = unquote(href[4:]) if href.lower().startswith("cid:") else None
        elif document is not None:
            entry["inline"] = base64.b64decode(document.text or "")
        entries.append(entry)
    return status, errors, entries


def retrieve_to_folder(url: str, study: str, series: str | None, anonymize: bool,
                       transfer_syntaxes: list[str] | None, out: Path, session: requests.Session | None = None) -> int:
    """`wadows retrieve`: a whole study or series into a folder, with a progress bar and a summary."""
    from tqdm import tqdm

    client = WadoWsClient(url, session=session)
    documents = client.instances(study, series)
    if not documents:
        print("wadows retrieve: the server lists no instance for this study/series", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    saved = size = 0
    with client.retrieve(documents, transfer_syntaxes or DEFAULT_TRANSFER_SYNTAXES, anonymize) as result:
        with tqdm(total=result.document_count, unit="doc", file=sys.stderr, disable=None) as bar:
            for document in result.documents:
                # Anonymized objects are named by their new UID: the original must not travel with them.
                size += document.save(out / f"{document.returned_uid}.dcm")
                saved += 1
                bar.update(1)
    for error in result.errors:
        print(f"  {error.severity.rsplit(':', 1)[-1]} {error.code} {error.location or ''}: {error.context}",
              file=sys.stderr)
    print(f"{saved} of {len(documents)} documents saved in {out} ({size / 1e6:.1f} MB); "
          f"status {result.status.rsplit(':', 1)[-1]}")
    return 0 if saved == len(documents) else 1
