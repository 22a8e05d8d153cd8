"""Per-document cost of the three operations through a real `wadows serve`, same study, same run.

50 slices of the 512x512 CT study (bench/ctstudy.py: 256-element headers) asked for in one request per
operation; the best of 3 runs, divided by the number of documents. Usage: .venv/bin/python bench/operations.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import build_ct_study  # noqa: E402
from retrieve import start_server  # noqa: E402

DOCUMENTS = 50
EXPLICIT_LE = "1.2.840.10008.1.2.1"
NS = ('xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:r="urn:ihe:rad:xdsi-b:2009" '
      'xmlns:ihe="urn:ihe:iti:xds-b:2007" xmlns:wado="urn:dicom:wado:ws:2011"')


def envelope(body: str) -> bytes:
    return f'<s:Envelope {NS}><s:Body>{body}</s:Body></s:Envelope>'.encode()


def studies(docs, prefix: str, element: str, inner: str, tail: str = "") -> str:
    study, series = docs[0][0], docs[0][1]
    items = "".join(f"<{element}><ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>{inner}</{element}>"
                    for _, _, sop in docs)
    return (f'<{prefix}:StudyRequest studyInstanceUID="{study}"><{prefix}:SeriesRequest seriesInstanceUID="{series}">'
            f'{items}</{prefix}:SeriesRequest></{prefix}:StudyRequest>{tail}')


def requests_for(docs) -> dict[str, bytes]:
    syntaxes = f"<r:TransferSyntaxUIDList><r:TransferSyntaxUID>{EXPLICIT_LE}</r:TransferSyntaxUID></r:TransferSyntaxUIDList>"
    rad69 = lambda inner: envelope(  # noqa: E731
        f"<r:RetrieveImagingDocumentSetRequest>{studies(docs, 'r', 'ihe:DocumentRequest', inner, syntaxes)}"
        "</r:RetrieveImagingDocumentSetRequest>")
    rendered = lambda inner: envelope(  # noqa: E731
        f"<wado:RetrieveRenderedImagingDocumentSetRequest>"
        f"{studies(docs, 'wado', 'wado:RenderedDocumentRequest', inner)}</wado:RetrieveRenderedImagingDocumentSetRequest>")
    information = lambda inner: envelope(  # noqa: E731
        f"<wado:RetrieveImagingDocumentSetInformationRequest>"
        f"{studies(docs, 'wado', 'wado:DocumentInformationRequest', inner)}"
        "</wado:RetrieveImagingDocumentSetInformationRequest>")
    jpeg = "<wado:ContentTypeList><wado:ContentType>image/jpeg</wado:ContentType></wado:ContentTypeList>"
    return {
        "RAD-69 plain": rad69(""),
        "RAD-69 anonymized": rad69("<wado:Anonymize>yes</wado:Anonymize>"),
        "rendered JPEG": rendered(jpeg),
        "rendered JPEG anonymized": rendered("<wado:Anonymize>yes</wado:Anonymize>" + jpeg),
        'metadata XPath "/"': information("<wado:XPath>/</wado:XPath>"),
        "metadata XPath string()": information(
            '<wado:XPath>string(//DicomAttribute[@keyword="StudyDescription"]/Value)</wado:XPath>'),
        'metadata "/" anonymized': information("<wado:Anonymize>yes</wado:Anonymize><wado:XPath>/</wado:XPath>"),
    }


def timed(endpoint: str, body: bytes) -> float:
    start = time.perf_counter()
    reply = requests.post(endpoint, data=body, headers={"Content-Type": "application/soap+xml"}, timeout=600)
    reply.raise_for_status()
    elapsed = time.perf_counter() - start
    if b"ResponseStatusType:Success" not in reply.content[:8192]:
        raise RuntimeError("the benchmark request did not succeed")
    return elapsed


def main() -> None:
    folder = build_ct_study(200)
    paths = sorted(folder.glob("*.dcm"))[:DOCUMENTS]
    docs = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        docs.append((ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
    with tempfile.TemporaryDirectory() as data:
        proc, endpoint = start_server(folder, Path(data))
        try:
            print(f"{DOCUMENTS} documents per request, best of 3, ms per document")
            base = None
            for name, body in requests_for(docs).items():
                timed(endpoint, body)
                best = min(timed(endpoint, body) for _ in range(3)) / DOCUMENTS * 1000
                base = base or best
                print(f"  {name:28s} {best:7.2f} ms   ({best / base:5.1f}x RAD-69 plain)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
