"""Interop: JAX-WS (Debian's `jaxws`, Java 17) as a WADO-WS client of a real server on loopback.

`wsimport -extension` turns the contract (wsdl/, as the package ships it) into client classes;
examples/java/src/wadows/example/WadoWsExample.java calls the three operations through them with MTOMFeature and
AddressingFeature(true, true), i.e. what Java consumers of RAD-69 send: MTOM-packaged requests (multipart/related,
the action inside start-info), wsa:Action mustUnderstand="true", a MessageID "uuid:..." without "urn:". One batch
runs every call in one JVM, through a relay that keeps every byte both ways, so the test checks what JAX-WS put
on the wire as well as what it handed to the program: stored objects byte for byte (one ends in CR LF) and the same
as wadows.client gets, anonymized objects without any planted value and with new SOP Instance UIDs, rendered
images and metadata answers equal to what our Python requests get, RegistryErrors, requests with every
addressing header mustUnderstand (dcm4che's wadows tool), with a wsse:Security block (XUA callers) and with chunked
transfer coding (JAX-WS's streaming option), and a MustUnderstand fault that JAX-WS must see as our fault (with
required addressing it rejects a fault without wsa:RelatesTo).

The compiled client is cached by a hash of the contract, the Java source and the toolchain (in the virtualenv,
else under pytest's temporary root), so only the first run pays for wsimport + javac. Skipped, with the reason,
only when wsimport, javac or java is missing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pydicom
import pytest
from lxml import etree

import planting
from conftest import interop_store
from support import SOAP12, WSA, ServerProcess, doc, relay, serve_loopback, split_mtom, validate_envelope
from test_anonymize import leaks
from test_metadata import ask as python_metadata
from test_rad69 import ALL_SYNTAXES
from test_rendered import render as python_render
from wadows.client import DocumentSpec, WadoWsClient
from wadows.soap import contract

REPO = Path(__file__).resolve().parents[1]
JAVA_SOURCES = REPO / "examples" / "java" / "src"
MAIN_CLASS = "wadows.example.WadoWsExample"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
NATIVE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
ACTIONS = {  # request action -> response action, as the WSDL names them
    "urn:ihe:rad:2009:RetrieveImagingDocumentSet": "urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet":
        "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSetResponse",
    "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation":
        "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformationResponse",
}
ANONYMIZED_KEYS = [k for k in planting.SOURCES if k != "sc-jpeg"]  # sc-jpeg: a secondary capture, refused
UNKNOWN_SOP = "1.2.826.0.1.3680043.8.498.404404404"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE_BLOCK = f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:env="{SOAP12}" env:mustUnderstand="true"/>'
UNKNOWN_BLOCK = f'<x:Unknown xmlns:x="urn:example:unknown" xmlns:env="{SOAP12}" env:mustUnderstand="true">x</x:Unknown>'
FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"
XPATHS = ["/", 'string(//DicomAttribute[@keyword="Modality"]/Value)',
          'string(//DicomAttribute[@keyword="PatientName"]/PersonName/Alphabetic/FamilyName)']
JVM_OPTIONS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]  # light on a shared machine


# ---- the toolchain and the cached build ----

def toolchain() -> dict[str, str]:
    found = {name: shutil.which(name) for name in ("wsimport", "javac", "java")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.skip(f"interop with JAX-WS needs {', '.join(missing)} on PATH (Debian: jaxws, default-jdk-headless; "
                    f"see .ci/debian-packages)")
    # wsimport is a script that runs $JAXWS_HOME/lib/jaxws-tools.jar; the runtime sits next to it, and its
    # manifest's Class-Path brings JAXB, SAAJ, mimepull, stax-ex and the rest.
    home = Path(os.environ.get("JAXWS_HOME") or Path(os.path.realpath(found["wsimport"])).parent.parent)
    runtime = next((p for p in (home / "lib" / "jaxws-rt.jar", Path("/usr/share/java/jaxws-rt.jar")) if p.is_file()),
                   None)
    if runtime is None:
        pytest.skip(f"wsimport is at {found['wsimport']} but no jaxws-rt.jar was found under {home}/lib")
    found["runtime"] = str(runtime)
    return found


def cache_root(tmp_path_factory) -> Path:
    """In the virtualenv when there is one (it outlives pytest's temporary folders), else pytest's temp root."""
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        root = Path(sys.prefix) / "var" / "wadows-interop-java"
    else:
        root = tmp_path_factory.getbasetemp().parent / "wadows-interop-java"
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_client(tools: dict[str, str], root: Path) -> Path:
    """wsimport + javac into root/<hash>/classes, unless that build exists. Builds in a scratch folder and
    renames it into place, so an interrupted or concurrent build never leaves a half-built cache."""
    files = contract.contract_files()
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    for path in sources:
        digest.update(str(path.relative_to(JAVA_SOURCES)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in ("wsimport", "javac", "runtime"):
        digest.update(os.path.realpath(tools[name]).encode() + b"\0")
    target = root / digest.hexdigest()[:20]
    if (target / "classes").is_dir():
        return target / "classes"
    for stale in root.iterdir():  # earlier builds of other versions of the contract or the program
        if stale.is_dir() and not stale.name.startswith("build-"):
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        wsdl_dir, generated, classes = work / "wsdl", work / "generated", work / "classes"
        for folder in (wsdl_dir, generated, classes):
            folder.mkdir()
        for name, content in files.items():
            (wsdl_dir / name).write_bytes(content)
        env = {**os.environ, "WSIMPORT_OPTS": " ".join(JVM_OPTIONS)}
        run([tools["wsimport"], "-extension", "-Xnocompile", "-quiet", "-encoding", "UTF-8", "-s", str(generated),
             "-d", str(generated), "-wsdllocation", "http://localhost:8080/wado-ws?wsdl",
             str(wsdl_dir / contract.WSDL_NAME)], env=env)
        java_files = sorted(generated.rglob("*.java")) + sources
        run([tools["javac"], *(f"-J{o}" for o in JVM_OPTIONS), "-nowarn", "-encoding", "UTF-8", "-d", str(classes),
             "-cp", tools["runtime"], *map(str, java_files)])
        try:
            work.rename(target)
        except OSError:  # another process finished the same build first
            if not (target / "classes").is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "classes"


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{Path(args[0]).name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


# ---- a relay that keeps the bytes on the wire ----

class WireRecorder:
    """A TCP relay in front of the server: every connection's bytes, both ways, as JAX-WS and the server sent them
    (JAX-WS would bypass an HTTP proxy for 127.0.0.1, so the client is simply pointed at the relay)."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.connections: list[tuple[bytearray, bytearray]] = []  # (client -> server, server -> client)
        self._sockets: list[socket.socket] = []
        self._pipes: list[threading.Thread] = []
        self.listener = serve_loopback(self._connect)
        self.port = self.listener.getsockname()[1]

    def _connect(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        record = (bytearray(), bytearray())
        self.connections.append(record)
        self._sockets += [client, upstream]
        for source, sink, buffer in ((client, upstream, record[0]), (upstream, client, record[1])):
            pipe = threading.Thread(target=relay, args=(source, sink, buffer), daemon=True)
            pipe.start()
            self._pipes.append(pipe)

    def close(self) -> None:
        self.listener.close()
        for pipe in list(self._pipes):
            pipe.join(timeout=10)
        for sock in self._sockets:
            sock.close()

    def exchanges(self) -> list[dict]:
        """Every request with its response (HTTP/1.1 answers in order on a connection)."""
        out = []
        for sent, received in self.connections:
            requests_, responses = http_messages(bytes(sent)), http_messages(bytes(received))
            assert len(requests_) == len(responses), "a request without its response"
            out += [{"request": q, "response": r} for q, r in zip(requests_, responses)]
        return out


def http_messages(stream: bytes) -> list[dict]:
    """Split one direction of an HTTP/1.1 connection into messages (Content-Length or chunked bodies)."""
    messages = []
    while stream:
        head, _, rest = stream.partition(b"\r\n\r\n")
        start, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        chunks = 0  # data chunks of a chunked body
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                body += rest[:size]
                rest = rest[size + 2:]
                if size == 0:
                    break
                chunks += 1
            body = bytes(body)
        else:
            length = int(headers.get("content-length", "0"))
            body, rest = rest[:length], rest[length:]
        messages.append({"start": start, "headers": headers, "body": body, "chunks": chunks})
        stream = rest
    return messages


def root_part(content_type: str, body: bytes) -> bytes:
    """The SOAP part of a multipart/related message, found by the `start` Content-ID (lenient about the epilogue:
    JAX-WS ends its requests right after the closing boundary)."""
    params = dict(re.findall(r';\s*([\w-]+)="((?:[^"\\]|\\.)*)"', content_type))
    boundary = b"--" + params["boundary"].encode()
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if re.search(rb"(?im)^content-id:\s*" + re.escape(params["start"].encode()), head):
            return content[:-2] if content.endswith(b"\r\n") else content
    raise AssertionError(f"no part with Content-ID {params['start']}")


# ---- the world: a store, a server, one JAX-WS batch ----

def doc_arg(row: dict) -> str:
    return f"{row['study_uid']}/{row['series_uid']}/{row['sop_instance_uid']}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tools = toolchain()
    classes = build_client(tools, cache_root(tmp_path_factory))
    root = tmp_path_factory.mktemp("interop-java")
    store = root / "store"
    sample, crlf, planted = interop_store(store)
    by_modality = {r["modality"]: r for r in reversed(sample)}  # the first row of each modality
    ct, mr, dose = by_modality["CT"], by_modality["MR"], by_modality["RTDOSE"]
    unknown = {**ct, "sop_instance_uid": UNKNOWN_SOP}

    server = ServerProcess(store, root / "data", root / "server.log", ["--unauthenticated", "full"])
    recorder = WireRecorder(server.port)
    out = root / "out"
    syntaxes = [a for ts in ALL_SYNTAXES for a in ("--transfer-syntax", ts)]
    xpaths = [a for x in XPATHS for a in ("--xpath", x)]
    calls = {
        "plain": ["retrieve", *syntaxes, *map(doc_arg, sample + [crlf])],
        "anonymized": ["retrieve", "--anonymize", *syntaxes, *(doc_arg(planted[k]) for k in ANONYMIZED_KEYS)],
        "partial": ["retrieve", doc_arg(ct), doc_arg(unknown)],
        "rendered": ["render", "--content-type", "image/png", "--rows", "64", "--window-center", "40",
                     "--window-width", "400", doc_arg(ct), doc_arg(mr)],
        "rendered-frame": ["render", "--frame", "3", doc_arg(dose)],
        "rendered-anonymized": ["render", "--anonymize", "--annotation", "patient", "--content-type", "image/png",
                                doc_arg(planted["ct"])],
        "metadata": ["metadata", *xpaths, doc_arg(ct), doc_arg(planted["ct2"])],
        "metadata-anonymized": ["metadata", "--anonymize", "--xpath", "/", doc_arg(planted["ct"])],
        "must-understand-all": ["retrieve", "--must-understand-all", doc_arg(crlf)],
        "chunked": ["retrieve", "--chunk-size", "128", *syntaxes, doc_arg(ct), doc_arg(mr)],
        "wsse-security": ["retrieve", "--header", WSSE_BLOCK, doc_arg(ct)],  # XUA callers' block: accepted
        "unknown-header": ["retrieve", "--header", UNKNOWN_BLOCK, doc_arg(ct)],  # the one call that faults
    }
    batch = root / "batch.tsv"
    batch.write_text("".join("\t".join([args[0], "--out", str(out / name), *args[1:]]) + "\n"
                             for name, args in calls.items()))
    endpoint = f"http://127.0.0.1:{recorder.port}/wado-ws"
    try:
        java = subprocess.run([tools["java"], *JVM_OPTIONS, "-cp", os.pathsep.join([str(classes), tools["runtime"]]),
                               MAIN_CLASS, endpoint, "batch", str(batch)],
                              capture_output=True, text=True, timeout=600)
        recorder.close()
        # exit status 1: one call failed, "unknown-header" (its fault is checked below)
        assert java.returncode == 1, f"the JAX-WS client: exit {java.returncode}\n{java.stdout}\n{java.stderr}"
        yield {"out": out, "server": server, "recorder": recorder, "endpoint": endpoint, "sample": sample,
               "crlf": crlf, "planted": planted, "ct": ct, "mr": mr, "dose": dose}
    finally:
        recorder.close()
        server.stop()


def answer(world, name: str, fault: bool = False) -> dict:
    """answer.tsv of one call: status, errors, and one entry per returned document (its file's bytes read); or the
    fault JAX-WS raised (SOAPFaultException) when `fault`."""
    folder = world["out"] / name
    got = {"status": None, "errors": [], "documents": [], "fault": None}
    for line in (folder / "answer.tsv").read_text(encoding="utf-8").splitlines():
        kind, *fields = [None if f == "-" else f for f in line.split("\t")]
        if kind == "status":
            got["status"] = fields[0]
        elif kind == "error":
            got["errors"].append(dict(zip(("code", "location", "severity", "context"), fields)))
        elif kind == "document":
            keys = ("uid", "new_uid", "repository", "mime", "file", "size")
            got["documents"].append(dict(zip(keys, fields)))
        elif kind == "rendered":
            keys = ("uid", "mime", "frame", "rows", "columns", "window_center", "window_width", "anonymize", "file",
                    "size")
            got["documents"].append(dict(zip(keys, fields)))
        elif kind == "information":
            got["documents"].append(dict(zip(("uid", "repository", "index", "file"), fields)))
        elif kind == "fault" and fault:
            got["fault"] = tuple(fields)
        else:
            raise AssertionError(f"{name}: the client reported {line!r}")
    for entry in got["documents"]:
        entry["data"] = (folder / entry["file"]).read_bytes()
    return got


def python_retrieve(world, rows: list[dict], anonymize: bool) -> dict[str, tuple[str | None, bytes]]:
    """DocumentUniqueId -> (NewDocumentUniqueId, bytes) as wadows.client receives them."""
    specs = [DocumentSpec(r["study_uid"], r["series_uid"], r["sop_instance_uid"]) for r in rows]
    with WadoWsClient(world["server"].endpoint).retrieve(specs, ALL_SYNTAXES, anonymize=anonymize) as result:
        assert result.status == SUCCESS, result.errors
        return {d.document_uid: (d.new_document_uid, d.read()) for d in result.documents}


# ---- what JAX-WS sent, and what came back on the wire ----

def soap_exchanges(world) -> list[dict]:
    """The POSTs: each request's envelope, headers and action, and the parsed response."""
    out = []
    for exchange in world["recorder"].exchanges():
        request, response = exchange["request"], exchange["response"]
        if not request["start"].startswith("POST "):
            continue
        content_type = request["headers"]["content-type"]
        envelope = etree.fromstring(root_part(content_type, request["body"]))
        header = envelope.find(f"{{{SOAP12}}}Header")
        reply_type = response["headers"]["content-type"]
        reply = split_mtom(reply_type, response["body"]) if reply_type.startswith("multipart/related") else None
        out.append({"content_type": content_type, "envelope": envelope, "header": header, "chunks": request["chunks"],
                    "action": header.findtext(f"{{{WSA}}}Action"), "message_id": header.findtext(f"{{{WSA}}}MessageID"),
                    "status": response["start"], "reply": reply, "reply_raw": response["body"],
                    "reply_envelope": etree.fromstring(reply.root if reply else response["body"])})
    return out


def must_understand(element) -> bool:
    return element.get(f"{{{SOAP12}}}mustUnderstand") in ("true", "1")


def test_jaxws_sends_mtom_requests_with_its_own_addressing_that_our_xsds_accept(world):
    exchanges = soap_exchanges(world)
    assert len(exchanges) == 12
    assert {e["action"] for e in exchanges} == set(ACTIONS)
    for e in exchanges:
        # MTOM-packaged even without attachments; SOAP 1.2 with the action inside start-info
        assert e["content_type"].startswith("multipart/related"), e["content_type"]
        assert 'type="application/xop+xml"' in e["content_type"]
        assert re.search(r'start-info="application/soap\+xml;\s*action=\\"' + re.escape(e["action"]),
                         e["content_type"]), e["content_type"]
        assert e["envelope"].tag == f"{{{SOAP12}}}Envelope"
        header = e["header"]
        assert must_understand(header.find(f"{{{WSA}}}Action"))
        assert re.fullmatch(r"uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", e["message_id"]), e["message_id"]
        assert header.findtext(f"{{{WSA}}}To") == world["endpoint"]
        assert header.findtext(f"{{{WSA}}}ReplyTo/{{{WSA}}}Address") == ANONYMOUS
        contract.validate(e["envelope"].find(f"{{{SOAP12}}}Body")[0])
    anonymize = [e for e in exchanges if e["envelope"].findall(".//{urn:dicom:wado:ws:2011}Anonymize")]
    assert len(anonymize) == 3
    assert {x.text for e in anonymize for x in e["envelope"].iter("{urn:dicom:wado:ws:2011}Anonymize")} == {"yes"}


def test_every_answer_relates_to_the_jaxws_message_id_and_is_valid(world):
    exchanges = soap_exchanges(world)
    for e in exchanges:
        header = e["reply_envelope"].find(f"{{{SOAP12}}}Header")
        assert header.findtext(f"{{{WSA}}}RelatesTo") == e["message_id"]  # echoed as sent: uuid:, no urn:
        if e["reply"] is None:
            continue  # the fault, below
        assert e["status"].startswith("HTTP/1.1 200"), e["status"]
        assert header.findtext(f"{{{WSA}}}Action") == ACTIONS[e["action"]]
        validate_envelope(e["reply_envelope"], e["reply"].parts)
    assert len([e for e in exchanges if e["reply"] is None]) == 1


def test_a_fault_reaches_jaxws_as_the_servers_fault(world):
    # JAX-WS with AddressingFeature(required=true) checks the fault's addressing headers too: without RelatesTo
    # it would throw its own "A required header representing a Message Addressing Property is not present".
    got = answer(world, "unknown-header", fault=True)
    assert got["fault"] == (f"{{{SOAP12}}}MustUnderstand", "A header block marked mustUnderstand was not understood")
    [e] = [e for e in soap_exchanges(world) if e["reply"] is None]
    assert e["header"].find("{urn:example:unknown}Unknown") is not None
    assert e["status"].startswith("HTTP/1.1 500")  # SOAP 1.2 HTTP binding for MustUnderstand
    header = e["reply_envelope"].find(f"{{{SOAP12}}}Header")
    assert header.findtext(f"{{{WSA}}}Action") == FAULT_ACTION
    assert header.find(f"{{{SOAP12}}}NotUnderstood").get("qname").endswith(":Unknown")


def test_a_chunked_request_from_jaxws_is_read(world):
    [e] = [e for e in soap_exchanges(world) if e["chunks"]]
    assert e["chunks"] > 5  # 128-byte chunks
    got = answer(world, "chunked")
    assert got["status"] == SUCCESS, got["errors"]
    assert [d["data"] for d in got["documents"]] == [world["ct"]["path"].read_bytes(), world["mr"]["path"].read_bytes()]


def test_a_wsse_security_block_marked_mustunderstand_is_accepted(world):
    got = answer(world, "wsse-security")
    assert got["status"] == SUCCESS
    assert [d["data"] for d in got["documents"]] == [world["ct"]["path"].read_bytes()]
    [e] = [e for e in soap_exchanges(world) if e["header"].find(f"{{{WSSE}}}Security") is not None]
    assert must_understand(e["header"].find(f"{{{WSSE}}}Security"))


def test_every_addressing_header_mustunderstand_is_accepted(world):
    marked = [e for e in soap_exchanges(world)
              if all(must_understand(h) for h in e["header"] if etree.QName(h).namespace == WSA)]
    assert len(marked) == 1
    names = {etree.QName(h).localname for h in marked[0]["header"]}
    assert {"To", "Action", "ReplyTo", "MessageID"} <= names
    got = answer(world, "must-understand-all")
    assert got["status"] == SUCCESS
    assert [d["data"] for d in got["documents"]] == [world["crlf"]["path"].read_bytes()]


# ---- what JAX-WS handed to the program ----

def test_plain_retrieval_is_byte_exact_and_the_same_as_the_python_client(world):
    got = answer(world, "plain")
    rows = world["sample"] + [world["crlf"]]
    by_uid = {r["sop_instance_uid"]: r for r in rows}
    assert got["status"] == SUCCESS and got["errors"] == []
    assert [d["uid"] for d in got["documents"]] == [r["sop_instance_uid"] for r in rows]  # request order
    python = python_retrieve(world, rows, anonymize=False)
    for entry in got["documents"]:
        assert entry["new_uid"] is None and entry["mime"] == "application/dicom"
        assert entry["repository"] and int(entry["size"]) == len(entry["data"])
        assert entry["data"] == by_uid[entry["uid"]]["path"].read_bytes(), entry["uid"]
        assert entry["data"] == python[entry["uid"]][1]
    crlf = next(d for d in got["documents"] if d["uid"] == world["crlf"]["sop_instance_uid"])
    assert crlf["data"].endswith(b"\r\n")  # kept by JAX-WS's MIME parser (zeep loses it)


def test_anonymized_retrieval_has_no_planted_value_new_uids_and_the_python_clients_bytes(world):
    got = answer(world, "anonymized")
    planted = world["planted"]
    assert got["status"] == SUCCESS, got["errors"]
    assert len(got["documents"]) == len(ANONYMIZED_KEYS)
    by_uid = {planted[k]["sop_instance_uid"]: planted[k] for k in ANONYMIZED_KEYS}
    original_uids = set().union(*(planted[k]["uids"] for k in ANONYMIZED_KEYS))
    python = python_retrieve(world, [planted[k] for k in ANONYMIZED_KEYS], anonymize=True)
    for entry in got["documents"]:
        item = by_uid[entry["uid"]]
        new_uid = entry["new_uid"]
        assert new_uid and new_uid.startswith("2.25.") and new_uid != item["sop_instance_uid"]
        assert entry["file"] == f"{new_uid}.dcm"
        ds = pydicom.dcmread(io.BytesIO(entry["data"]))
        assert ds.SOPInstanceUID == new_uid == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.PatientIdentityRemoved == "YES"
        assert leaks(entry["data"], planting.PLANTED) == []
        assert leaks(entry["data"], original_uids | {item["sop_instance_uid"]}) == []
        assert python[entry["uid"]] == (new_uid, entry["data"])  # the same keyed UIDs, the same bytes
    # the whole answer as it went over the wire: the requested SOP UIDs are echoed (DocumentUniqueId), nothing else
    [wire] = [e for e in soap_exchanges(world) if e["action"].endswith("RetrieveImagingDocumentSet")
              and e["envelope"].find(".//{urn:dicom:wado:ws:2011}Anonymize") is not None]
    assert leaks(wire["reply_raw"], planting.PLANTED) == []
    assert leaks(wire["reply_raw"], original_uids) == []


def test_registry_errors_reach_jaxws_with_the_documents_that_were_found(world):
    got = answer(world, "partial")
    assert got["status"] == PARTIAL
    assert [(e["code"], e["location"]) for e in got["errors"]] == [("XDSDocumentUniqueIdError", UNKNOWN_SOP)]
    assert got["errors"][0]["severity"].endswith("ErrorSeverityType:Error")
    assert [d["uid"] for d in got["documents"]] == [world["ct"]["sop_instance_uid"]]
    assert got["documents"][0]["data"] == world["ct"]["path"].read_bytes()


def test_rendered_images_are_what_python_gets(world):
    ct, mr = world["ct"], world["mr"]
    params = {"Rows": 64, "WindowCenter": 40, "WindowWidth": 400, "ContentType": ["image/png"]}
    _, status, errors, python = python_render(world["server"], [(doc(ct), params), (doc(mr), params)])
    got = answer(world, "rendered")
    assert got["status"] == status == SUCCESS, got["errors"]
    assert [d["uid"] for d in got["documents"]] == [ct["sop_instance_uid"], mr["sop_instance_uid"]]
    for entry, expected in zip(got["documents"], python):
        assert entry["mime"] == "image/png" and entry["data"].startswith(b"\x89PNG\r\n\x1a\n")
        assert (entry["rows"], entry["columns"]) == (expected["Rows"], expected["Columns"])
        assert int(entry["rows"]) <= 64 and (entry["window_center"], entry["window_width"]) == ("40", "400")
        assert entry["anonymize"] is None
        assert entry["data"] == expected["data"]

    frame = answer(world, "rendered-frame")
    _, _, _, python = python_render(world["server"], [(doc(world["dose"]), {"FrameNumber": 3})])
    assert frame["status"] == SUCCESS, frame["errors"]
    [entry] = frame["documents"]
    assert entry["mime"] == "image/jpeg" and entry["frame"] == "3" and entry["data"] == python[0]["data"]


def test_anonymized_rendering_is_what_python_gets(world):
    item = world["planted"]["ct"]
    params = {"Annotation": "patient", "Anonymize": "yes", "ContentType": ["image/png"]}
    _, status, errors, python = python_render(world["server"], [(doc(item), params)])
    got = answer(world, "rendered-anonymized")
    assert got["status"] == status == SUCCESS, (got["errors"], errors)
    [entry] = got["documents"]
    assert entry["anonymize"] == "yes" and entry["mime"] == "image/png"
    assert entry["data"] == python[0]["data"]


def without_bulk_uuids(value):
    """Each answer names its bulk data with fresh UUIDs (PS3.19 BulkData uuid); everything else must match."""
    if isinstance(value, dict):
        return {k: without_bulk_uuids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_bulk_uuids(v) for v in value]
    return re.sub(r'(<BulkData uuid=")[^"]*"', r'\1"', value)


def test_metadata_answers_are_what_python_gets_with_non_ascii_text_intact(world):
    ct, ct2 = world["ct"], world["planted"]["ct2"]
    _, status, errors, python = python_metadata(world["server"], [(doc(ct), XPATHS, None), (doc(ct2), XPATHS, None)])
    got = answer(world, "metadata")
    assert got["status"] == status == SUCCESS, got["errors"]
    received: dict[str, list[str]] = {}
    for entry in got["documents"]:
        received.setdefault(entry["uid"], []).append(entry["data"].decode("utf-8"))
    assert without_bulk_uuids(received) == without_bulk_uuids(python)
    assert received[ct["sop_instance_uid"]][1:] == ["CT", ct["patient_name"].split("^")[0]]
    assert received[ct2["sop_instance_uid"]][2] == planting.UTF8_NAME.split("^")[0]
    model = etree.fromstring(received[ct["sop_instance_uid"]][0].encode())
    assert model.tag == f"{{{NATIVE}}}NativeDicomModel"


def test_anonymized_metadata_has_no_planted_value_and_the_uid_of_the_anonymized_object(world):
    item = world["planted"]["ct"]
    _, status, _, python = python_metadata(world["server"], [(doc(item), ["/"], "yes")])
    got = answer(world, "metadata-anonymized")
    assert got["status"] == status == SUCCESS, got["errors"]
    [entry] = got["documents"]
    assert entry["uid"] == item["sop_instance_uid"]  # the request's DocumentUniqueId, echoed (PS3.18 6.4.3.2)
    model = entry["data"]
    assert without_bulk_uuids(model.decode("utf-8")) == without_bulk_uuids(python[item["sop_instance_uid"]][0])
    assert leaks(model, planting.PLANTED) == []
    assert leaks(model, item["uids"] | {item["sop_instance_uid"]}) == []
    new_sop = etree.fromstring(model).find(f'{{{NATIVE}}}DicomAttribute[@tag="00080018"]/{{{NATIVE}}}Value').text
    retrieved = next(d for d in answer(world, "anonymized")["documents"] if d["uid"] == item["sop_instance_uid"])
    assert new_sop == retrieved["new_uid"]
