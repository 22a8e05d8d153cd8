"""Test helpers: a real `wadows serve` process on loopback, raw HTTP, and an MTOM splitter written
independently of the server's and the client's own MIME code."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
from lxml import etree

from wadows.soap import contract

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
RAD = "urn:ihe:rad:xdsi-b:2009"
XDS = "urn:ihe:iti:xds-b:2007"
WADO = "urn:dicom:wado:ws:2011"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


def doc(row: dict) -> tuple[str, str, str]:
    """(study, series, sop) of a sample row."""
    return row["study_uid"], row["series_uid"], row["sop_instance_uid"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_loopback(handle: Callable[[socket.socket], None]) -> socket.socket:
    """A listener on 127.0.0.1 (its port: .getsockname()[1]) whose connections go to handle(connection), each in a
    thread of its own, until the listener is closed."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def relay(source: socket.socket, sink: socket.socket, record: bytearray | None = None) -> None:
    """Copy what `source` sends to `sink` (and to `record`) until `source` ends, then end `sink`'s sending side."""
    try:
        while data := source.recv(1 << 16):
            if record is not None:
                record += data
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class ServerProcess:
    """`python -m wadows serve ...` as a child process, its output kept in a log file."""

    store_kind = "folder"

    def __init__(self, store: Path | None, data_dir: Path, log_path: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, https_ca: str | None = None, healthy: bool = True):
        """healthy=False: the server counts as started once /health answers at all (its store may be down)."""
        self.port = free_port()
        self.data_dir = data_dir
        self.verify = https_ca or True
        self.url = f"{'https' if https_ca else 'http'}://127.0.0.1:{self.port}"
        self.endpoint = f"{self.url}/wado-ws"
        self.log_path = log_path
        store_args = ["--store", str(store)] if store is not None else []
        args = [sys.executable, "-m", "wadows", "serve", *store_args, "--data-dir", str(data_dir),
                "--host", "127.0.0.1", "--port", str(self.port)] + (extra_args or [])
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        self._wait_ready(healthy)

    def _wait_ready(self, healthy: bool, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"wadows serve exited early:\n{self.log()}")
            try:
                status = requests.get(f"{self.url}/health", timeout=1, verify=self.verify).status_code
                if status == 200 or not healthy:
                    return
            except (requests.ConnectionError, requests.exceptions.SSLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"wadows serve did not become ready:\n{self.log()}")

    def health(self) -> dict:
        return requests.get(f"{self.url}/health", timeout=5, verify=self.verify).json()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass
class Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    raw: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def mtom(self) -> "Mtom":
        return split_mtom(self.content_type, self.raw)

    def envelope(self) -> etree._Element:
        xml = self.mtom().root if self.content_type.startswith("multipart/related") else self.raw
        return etree.fromstring(xml)


def post(endpoint: str, body: bytes, content_type: str = 'application/soap+xml; charset=utf-8', **kw) -> Reply:
    r = requests.post(endpoint, data=body, headers={"Content-Type": content_type, **kw.pop("headers", {})},
                      timeout=60, **kw)
    return Reply(r.status_code, r.headers, r.content)


@dataclass
class Mtom:
    params: dict[str, str]
    root_headers: dict[str, str]
    root: bytes
    parts: dict[str, bytes]          # Content-ID (no brackets) -> exact bytes
    part_headers: dict[str, dict[str, str]]


def split_mtom(content_type: str, body: bytes) -> Mtom:
    """Split by the boundary with plain byte operations: exact, and independent of the code under test."""
    params = dict(re.findall(r';\s*([\w-]+)="?([^";]*)"?', content_type))
    boundary = params["boundary"].encode()
    assert body.startswith(b"--" + boundary + b"\r\n"), "body must open with the boundary"
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n"), "body must close with the final boundary"
    inner = body[len(boundary) + 4: -(len(boundary) + 8)]
    chunks = inner.split(b"\r\n--" + boundary + b"\r\n")
    parsed = []
    for chunk in chunks:
        head, _, content = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parsed.append((headers, content))
    root_headers, root = parsed[0]
    assert params.get("start") == root_headers.get("content-id"), "start must name the root part"
    parts = {h["content-id"].strip("<>"): c for h, c in parsed[1:]}
    part_headers = {h["content-id"].strip("<>"): h for h, _ in parsed[1:]}
    return Mtom(params, root_headers, root, parts, part_headers)


def validate_envelope(envelope: etree._Element, parts: dict[str, bytes]) -> None:
    """Validate the Body child against wsdl/ as its XOP Infoset: each xop:Include replaced by base64 content."""
    envelope = etree.fromstring(etree.tostring(envelope))
    for include in list(envelope.iter(f"{{{XOP}}}Include")):
        cid = include.get("href")[4:]
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode(parts[cid]).decode()
    body = envelope.find(f"{{{SOAP12}}}Body")
    contract.validate(body[0])


def envelope(body_xml: str, action: str = "urn:ihe:rad:2009:RetrieveImagingDocumentSet",
             message_id: str = "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", extra_headers: str = "",
             soap_ns: str = SOAP12) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="{soap_ns}" xmlns:a="{WSA}">
  <s:Header>
    <a:Action s:mustUnderstand="1">{action}</a:Action>
    <a:MessageID>{message_id}</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    {extra_headers}
  </s:Header>
  <s:Body>{body_xml}</s:Body>
</s:Envelope>""".encode()


def rad69_body(documents: list[tuple[str, str, str]], syntaxes: list[str] = (EXPLICIT_LE,),
               repository: str | None = None, anonymize: str | None = None, frame: str | None = None) -> str:
    """documents: (study, series, sop) in request order; consecutive ones of a series share a SeriesRequest."""
    studies: dict[str, dict[str, list[str]]] = {}
    for study, series, sop in documents:
        studies.setdefault(study, {}).setdefault(series, []).append(sop)
    out = [f'<iherad:RetrieveImagingDocumentSetRequest xmlns:iherad="{RAD}" xmlns:ihe="{XDS}" xmlns:wado="{WADO}">']
    for study, series_map in studies.items():
        out.append(f'<iherad:StudyRequest studyInstanceUID="{study}">')
        for series, sops in series_map.items():
            out.append(f'<iherad:SeriesRequest seriesInstanceUID="{series}">')
            for sop in sops:
                out.append("<ihe:DocumentRequest>")
                if repository is not None:
                    out.append(f"<ihe:RepositoryUniqueId>{repository}</ihe:RepositoryUniqueId>")
                out.append(f"<ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>")
                if anonymize is not None:
                    out.append(f"<wado:Anonymize>{anonymize}</wado:Anonymize>")
                if frame is not None:
                    out.append(f"<wado:FrameNumber>{frame}</wado:FrameNumber>")
                out.append("</ihe:DocumentRequest>")
            out.append("</iherad:SeriesRequest>")
        out.append("</iherad:StudyRequest>")
    out.append("<iherad:TransferSyntaxUIDList>")
    out.extend(f"<iherad:TransferSyntaxUID>{ts}</iherad:TransferSyntaxUID>" for ts in syntaxes)
    out.append("</iherad:TransferSyntaxUIDList></iherad:RetrieveImagingDocumentSetRequest>")
    return "".join(out)


def registry(envelope_el: etree._Element) -> tuple[str, list[dict]]:
    response = envelope_el.find(f"{{{SOAP12}}}Body")[0]
    rr = response.find(f"{{{RS}}}RegistryResponse")
    errors = [dict(e.attrib) for e in rr.iter(f"{{{RS}}}RegistryError")]
    return rr.get("status"), errors


def document_responses(envelope_el: etree._Element) -> list[dict]:
    response = envelope_el.find(f"{{{SOAP12}}}Body")[0]
    out = []
    for doc in response.findall(f"{{{XDS}}}DocumentResponse"):
        include = doc.find(f"{{{XDS}}}Document/{{{XOP}}}Include")
        out.append({
            "uid": doc.findtext(f"{{{XDS}}}DocumentUniqueId"),
            "new_uid": doc.findtext(f"{{{XDS}}}NewDocumentUniqueId"),
            "repository": doc.findtext(f"{{{XDS}}}RepositoryUniqueId"),
            "mime": doc.findtext(f"{{{XDS}}}mimeType"),
            "cid": include.get("href")[4:] if include is not None else None,
        })
    return out


def parse_http_answer(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of the bytes of a whole HTTP/1.1 answer read off a socket:
    interim 1xx answers skipped, a chunked body decoded."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    while 100 <= status < 200:  # an interim answer (100 Continue): the final one follows
        head, _, body = body.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, headers, body

