"""Faults under a running server: stored files deleted, cut short or overwritten after indexing (and while an
answer is being sent), store folders that stop being folders, a data dir that stops taking the audit trail or
cannot be made at all, and a PACS that is slow, refuses, or drops a WADO-RS answer half-way.

Each fault must give a per-document error or a clean abort with a log line, never a crash: the server keeps
answering /health and good requests. Nothing damaged may leave as a success: when an answer is cut, the client
must be able to tell (the HTTP framing is incomplete, or the MTOM body lacks its closing boundary), and every
object in an answer that arrives whole must be whole. The log names no UID of the objects involved and holds no
Traceback with a value in it.

Every answer is read off a raw socket (not requests): a cut answer must be seen exactly as it arrived.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from lxml import etree
from PIL import Image
from pydicom.uid import generate_uid

from support import (EXPLICIT_LE, IMPLICIT_LE, RS, SOAP12, WADO, XDS, ServerProcess, document_responses, envelope,
                     free_port, rad69_body, split_mtom)
from wadows.sample import IDENTIFYING_STRINGS

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
RENDERED_ACTION = "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"
INFORMATION_ACTION = "urn:dicom:wado:ws:2011:RetrieveImagingDocumentSetInformation"
BUSY, REPOSITORY_ERROR = "XDSRepositoryBusy", "XDSRepositoryError"
ABORT_LINE = "response aborted at document"
AUDIT_FAILED_LINE = "the audit record could not be written"
UID_LIKE = re.compile(r"(?<![\d.])\d+(?:\.\d+){4,}")  # a DICOM UID has more parts than any version number

# ==== raw HTTP ====================================================================================


@dataclass
class Wire:
    """One HTTP answer as it arrived."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # de-chunked
    framing: str  # "length", "chunked" or "close"
    http_complete: bool  # the framing says the whole body arrived (Content-Length reached, last chunk seen)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def mtom_closed(self) -> bool:
        match = re.search(r'boundary="?([^";]+)"?', self.content_type)
        return bool(match) and self.body.endswith(b"\r\n--" + match.group(1).encode() + b"--\r\n")

    @property
    def cut(self) -> bool:
        """An answer the client can tell was cut short."""
        if not self.http_complete:
            return True
        return self.content_type.startswith("multipart/") and not self.mtom_closed


def exchange(port: int, method: str, target: str, body: bytes = b"", timeout: float = 60.0,
             receive_buffer: int | None = None, after_head=None) -> Wire:
    """Send one request (Connection: close) and read until the server closes. `after_head`, when given, runs
    once the first bytes of the answer have arrived (the server is then busy sending)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    raw = bytearray()
    try:
        sock.connect(("127.0.0.1", port))
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        if method == "POST":
            head += f"Content-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise AssertionError("the server neither finished its answer nor closed the connection")
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not data:
                break
            raw += data
            if after_head is not None and len(raw) > (1 << 16):
                after_head()
                after_head = None
    finally:
        sock.close()
    head, sep, rest = bytes(raw).partition(b"\r\n\r\n")
    assert sep, f"no whole HTTP head came back: {bytes(raw[:300])!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body_out, pos, complete = bytearray(), 0, False
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(rest[pos:eol].split(b";")[0], 16)
            start = eol + 2
            if size == 0:
                complete = rest.find(b"\r\n", start - 2) >= 0
                break
            body_out += rest[start:start + size]
            if len(rest) < start + size + 2:
                break
            pos = start + size + 2
        return Wire(status, headers, bytes(body_out), "chunked", complete)
    if "content-length" in headers:
        length = int(headers["content-length"])
        return Wire(status, headers, rest[:length], "length", len(rest) >= length)
    return Wire(status, headers, rest, "close", True)


# ==== requests and their answers ===================================================================


@dataclass
class Obj:
    """One stored object of a test: its UIDs, its file (folder stores) and its bytes as first stored."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    path: Path
    original: bytes = b""
    transfer_syntax_uid: str = EXPLICIT_LE

    @property
    def doc(self) -> tuple[str, str, str]:
        return self.study_uid, self.series_uid, self.sop_instance_uid

    @property
    def uids(self) -> tuple[str, ...]:
        return self.doc


def rendered_body(objs: list[Obj], anonymize: str | None = None) -> str:
    out = [f'<wado:RetrieveRenderedImagingDocumentSetRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">']
    for o in objs:
        out.append(f'<wado:StudyRequest studyInstanceUID="{o.study_uid}"><wado:SeriesRequest seriesInstanceUID='
                   f'"{o.series_uid}"><wado:RenderedDocumentRequest><ihe:DocumentUniqueId>{o.sop_instance_uid}'
                   f'</ihe:DocumentUniqueId>')
        if anonymize:
            out.append(f"<wado:Anonymize>{anonymize}</wado:Anonymize>")
        out.append("<wado:ContentTypeList><wado:ContentType>image/jpeg</wado:ContentType></wado:ContentTypeList>"
                   "</wado:RenderedDocumentRequest></wado:SeriesRequest></wado:StudyRequest>")
    out.append("</wado:RetrieveRenderedImagingDocumentSetRequest>")
    return "".join(out)


def information_body(objs: list[Obj], anonymize: str | None = None) -> str:
    out = [f'<wado:RetrieveImagingDocumentSetInformationRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">']
    for o in objs:
        out.append(f'<wado:StudyRequest studyInstanceUID="{o.study_uid}"><wado:SeriesRequest seriesInstanceUID='
                   f'"{o.series_uid}"><wado:DocumentInformationRequest><ihe:DocumentUniqueId>{o.sop_instance_uid}'
                   f'</ihe:DocumentUniqueId>')
        if anonymize:
            out.append(f"<wado:Anonymize>{anonymize}</wado:Anonymize>")
        out.append("<wado:XPath>/</wado:XPath></wado:DocumentInformationRequest></wado:SeriesRequest>"
                   "</wado:StudyRequest>")
    out.append("</wado:RetrieveImagingDocumentSetInformationRequest>")
    return "".join(out)


@dataclass
class Op:
    """One way of asking for objects: RAD-69 (plain, transcoded, anonymized), rendered, metadata, WADO-URI."""

    name: str
    kind: str  # "rad69", "rendered", "information", "uri"
    syntaxes: tuple[str, ...] | None = None  # RAD-69: None = each object's stored syntax
    anonymize: bool = False

    def request(self, objs: list[Obj]) -> tuple[str, str, bytes]:
        flag = "yes" if self.anonymize else None
        if self.kind == "rad69":
            syntaxes = self.syntaxes or tuple(dict.fromkeys(o.transfer_syntax_uid for o in objs))
            return "POST", "/wado-ws", envelope(rad69_body([o.doc for o in objs], syntaxes, anonymize=flag))
        if self.kind == "rendered":
            return "POST", "/wado-ws", envelope(rendered_body(objs, flag), action=RENDERED_ACTION)
        if self.kind == "information":
            return "POST", "/wado-ws", envelope(information_body(objs, flag), action=INFORMATION_ACTION)
        (o,) = objs
        query = (f"requestType=WADO&studyUID={o.study_uid}&seriesUID={o.series_uid}&objectUID={o.sop_instance_uid}"
                 f"&contentType=application/dicom&transferSyntax=*" + ("&anonymize=yes" if self.anonymize else ""))
        return "GET", f"/wado?{query}", b""


OPS = {op.name: op for op in (
    Op("plain", "rad69"),
    Op("transcoded", "rad69", syntaxes=(IMPLICIT_LE,)),
    Op("anonymized", "rad69", anonymize=True),
    Op("rendered", "rendered"),
    Op("rendered-anonymized", "rendered", anonymize=True),
    Op("metadata", "information"),
    Op("metadata-anonymized", "information", anonymize=True),
    Op("uri", "uri"),
    Op("uri-anonymized", "uri", anonymize=True),
)}


@dataclass
class Answer:
    wire: Wire
    status: str | None = None  # RegistryResponse status (SOAP answers that arrived whole)
    errors: list[dict] = field(default_factory=list)
    results: dict[str, object] = field(default_factory=dict)  # DocumentUniqueId -> bytes, or metadata answers

    def describe(self) -> str:
        if self.wire.cut:
            return (f"HTTP {self.wire.status}, cut short ({self.wire.framing} framing, "
                    f"{'complete' if self.wire.http_complete else 'incomplete'}, MTOM "
                    f"{'closed' if self.wire.mtom_closed else 'not closed'}, {len(self.wire.body)} bytes)")
        if self.status is None:
            return f"HTTP {self.wire.status} {self.wire.content_type} ({len(self.wire.body)} bytes)"
        return (f"HTTP {self.wire.status}, {self.status.rsplit(':', 1)[-1]}, errors "
                f"{[(e['errorCode'], e.get('codeContext')) for e in self.errors]}, results "
                f"{ {uid[-12:]: len(v) for uid, v in self.results.items()} }")


def ask(port: int, op: Op, objs: list[Obj], **kw) -> Answer:
    method, target, body = op.request(objs)
    wire = exchange(port, method, target, body, **kw)
    answer = Answer(wire)
    if wire.cut or op.kind == "uri" or not wire.content_type.startswith("multipart/related"):
        return answer
    mtom = split_mtom(wire.content_type, wire.body)
    env = etree.fromstring(mtom.root)
    response = env.find(f"{{{SOAP12}}}Body")[0]
    rr = response.find(f"{{{RS}}}RegistryResponse")
    answer.status = rr.get("status")
    answer.errors = [dict(e.attrib) for e in rr.iter(f"{{{RS}}}RegistryError")]
    if op.kind == "rad69":
        for d in document_responses(env):
            answer.results[d["uid"]] = mtom.parts[d["cid"]]
    elif op.kind == "rendered":
        for d in response.findall(f"{{{WADO}}}RenderedDocumentResponse"):
            cid = d.find(f"{{{XDS}}}Document")[0].get("href")[4:]
            answer.results[d.findtext(f"{{{WADO}}}SourceDocumentUniqueId")] = mtom.parts[cid]
    else:
        for d in response.findall(f"{{{WADO}}}DocumentInformationResponse"):
            answer.results[d.findtext(f"{{{XDS}}}DocumentUniqueId")] = "".join(
                x.text or "" for x in d.iter(f"{{{WADO}}}XPathResponse"))
    return answer


# ==== what a good answer holds ====================================================================


def assert_whole(op: Op, obj: Obj, result) -> None:
    """A document that came back as a success is the whole object (or a whole rendering / model of it)."""
    if op.kind == "rendered":
        Image.open(io.BytesIO(result)).load()
        return
    if op.kind == "information":
        model = etree.fromstring(result.encode())
        assert etree.QName(model).localname == "NativeDicomModel"
        if op.anonymize:
            assert not [s for s in IDENTIFYING_STRINGS if s in result], "identity in anonymized metadata"
        return
    if not op.anonymize and op.syntaxes is None:
        assert result == obj.original, "a plain retrieval must give the stored file byte for byte"
        return
    original = pydicom.dcmread(io.BytesIO(obj.original))
    got = pydicom.dcmread(io.BytesIO(result))
    assert got.SOPClassUID == original.SOPClassUID
    if op.syntaxes is not None:
        assert got.file_meta.TransferSyntaxUID in op.syntaxes
    assert np.array_equal(got.pixel_array, original.pixel_array), "the pixel data differ from the stored ones"
    if op.anonymize:
        leaked = [s for s in (*IDENTIFYING_STRINGS, *obj.uids) if s.encode() in result]
        assert not leaked, f"an anonymized object carries {leaked}"


def assert_fault_handled(answer: Answer, op: Op, victims: list[Obj], others: list[Obj] = (),
                         codes: set[str] | None = None) -> str:
    """Each victim has a per-document error (or the answer was cut where the client can tell); the others came
    back whole. Returns "cut" or "errors"."""
    wire = answer.wire
    if wire.cut:
        return "cut"
    if op.kind == "uri":
        assert wire.status != 200, f"WADO-URI answered 200 for a damaged object: {answer.describe()}"
        assert wire.status in (404, 410, 500, 503), answer.describe()
        return "errors"
    assert wire.status == 200 and answer.status is not None, answer.describe()
    located = {e.get("location"): e for e in answer.errors if e.get("severity") == ERROR_SEVERITY}
    for victim in victims:
        assert victim.sop_instance_uid not in answer.results, \
            f"{op.name}: the damaged object went out as a success: {answer.describe()}"
        assert victim.sop_instance_uid in located, f"{op.name}: no error for the damaged object: {answer.describe()}"
        if codes is not None:
            assert located[victim.sop_instance_uid]["errorCode"] in codes, answer.describe()
    for other in others:
        assert other.sop_instance_uid in answer.results, f"{op.name}: a good object is missing: {answer.describe()}"
        assert_whole(op, other, answer.results[other.sop_instance_uid])
    assert answer.status == (PARTIAL if others else FAILURE), answer.describe()
    return "errors"


def assert_success(answer: Answer, op: Op, objs: list[Obj]) -> None:
    assert not answer.wire.cut, f"{op.name}: {answer.describe()}"
    if op.kind == "uri":
        assert answer.wire.status == 200, answer.describe()
        assert_whole(op, objs[0], answer.wire.body)
        return
    assert answer.status == SUCCESS, f"{op.name}: {answer.describe()}"
    for obj in objs:
        assert_whole(op, obj, answer.results[obj.sop_instance_uid])


# ==== the log ======================================================================================


class LogWatch:
    """The part of a server's log written since the watch began."""

    def __init__(self, server: ServerProcess, secrets: list[str]):
        self.server = server
        self.start = len(server.log())
        self.secrets = [s for s in secrets if s]

    def text(self) -> str:
        return self.server.log()[self.start:]

    def wait_for(self, line: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while line not in self.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = self.text()
        assert line in text, f"no log line says {line!r}; the log says:\n{text}"
        return text

    def assert_clean(self, objs: list[Obj] = ()) -> None:
        time.sleep(0.05)  # lines written while the answer was closing
        text = self.text()
        for secret in [*self.secrets, *(uid for o in objs for uid in o.uids), *IDENTIFYING_STRINGS]:
            assert secret not in text, f"the log holds {secret!r}:\n{text}"
        for block in tracebacks(text):
            assert not UID_LIKE.search(block), f"a Traceback carries a value:\n{block}"


def tracebacks(text: str) -> list[str]:
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            blocks.append("\n".join(lines[i:j + 1]))
    return blocks


# ==== stores =======================================================================================


def row_of(sample, modality: str, index: int = 0) -> dict:
    return [r for r in sample if r["modality"] == modality][index]


def obj_of(row: dict, path: Path | None = None) -> Obj:
    path = path or row["path"]
    return Obj(row["study_uid"], row["series_uid"], row["sop_instance_uid"], path, Path(row["path"]).read_bytes(),
               row["transfer_syntax_uid"])


def variant(source: Path, target: Path, key: str, series_key: str | None = None) -> Obj:
    """A copy of `source` with UIDs of its own (same patient, so the same identity to leak); objects made with
    the same series_key share their study and series."""
    ds = pydicom.dcmread(source)
    series_key = series_key or key
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["wadows faults study", series_key])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["wadows faults series", series_key])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["wadows faults sop", key])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return Obj(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, target, target.read_bytes(),
               ds.file_meta.TransferSyntaxUID)


def layout(path: Path) -> tuple[int, int, int]:
    """(end of the file meta, start of Pixel Data, file size) of a Part 10 file."""
    data = path.read_bytes()
    meta_end = 144 + int.from_bytes(data[140:144], "little")
    with open(path, "rb") as fp:
        pydicom.dcmread(fp, stop_before_pixels=True)
        pixel_start = fp.tell()
    return meta_end, pixel_start, len(data)


def damage(path: Path, fault: str) -> None:
    """The file faults, each placed relative to the file's own layout."""
    meta_end, pixel_start, size = layout(path)
    data = path.read_bytes()
    if fault == "deleted":
        path.unlink()
    elif fault == "truncated-header":  # the file now ends half-way through the data set
        path.write_bytes(data[:meta_end + (pixel_start - meta_end) // 2])
    elif fault == "truncated-pixels":  # the file now ends half-way through Pixel Data
        path.write_bytes(data[:pixel_start + 12 + (size - pixel_start - 12) // 2])
    elif fault == "corrupted-header":  # 64 random bytes over element headers and values of the data set
        at = meta_end + (pixel_start - meta_end) // 3
        path.write_bytes(data[:at] + random.Random(f"wadows faults {path.name}").randbytes(64) + data[at + 64:])
    else:
        raise ValueError(fault)


def path_secrets(store: Path) -> list[str]:
    """What of the store's paths must not reach the log: the root, and the per-patient folder names."""
    names = {p.name for p in store.rglob("*") if p.is_dir() and p.parent == store / "sample"}
    return [str(store), *sorted(names)]


def start_folder_server(store: Path, data_dir: Path, extra: list[str] | None = None) -> ServerProcess:
    return ServerProcess(store, data_dir, data_dir.parent / f"{data_dir.name}.log",
                         ["--unauthenticated", "full", *(extra or [])])


def assert_serving(server: ServerProcess, good: Obj) -> None:
    """The server is alive and serves a good object whole."""
    health = requests.get(f"{server.url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert_success(ask(server.port, OPS["plain"], [good]), OPS["plain"], [good])


# ==== 1. stored files damaged between indexing and retrieval =========================================

FILE_FAULTS = ("deleted", "truncated-header", "truncated-pixels", "corrupted-header")
FILE_OPS = ("plain", "transcoded", "anonymized", "anonymized-series", "rendered", "rendered-anonymized",
            "metadata", "metadata-anonymized", "uri", "uri-anonymized")

@dataclass
class DamagedStore:
    server: ServerProcess
    control: Obj  # a good object asked for beside each victim
    victims: dict[tuple[str, str], Obj]  # (fault, op name) -> its damaged object
    siblings: dict[tuple[str, str], Obj]  # (fault, op name) -> an intact object of the victim's series
    secrets: list[str]


@pytest.fixture(scope="module")
def damaged_store(sample, store_dir, tmp_path_factory):
    """One server over the sample and one victim per (fault, operation), each damaged once indexed."""
    root = tmp_path_factory.mktemp("faults-files")
    store = root / "store"
    shutil.copytree(store_dir / "sample", store / "sample")
    ct, mr = row_of(sample, "CT"), row_of(sample, "MR")
    surname = ct["file"].split("/")[0]  # the patient's folder name, as in the sample
    control = obj_of(mr, store / "sample" / mr["file"])
    victims, siblings = {}, {}
    for fault in FILE_FAULTS:
        for op in FILE_OPS:
            key = f"{fault} {op}"
            target = store / fault / op / surname / "victim.dcm"
            if op == "anonymized-series":  # the victim is prepared by difference from its intact sibling
                siblings[fault, op] = variant(ct["path"], target.with_name("sibling.dcm"), f"{key} sibling",
                                              series_key=key)
                victims[fault, op] = variant(ct["path"], target, f"{key} victim", series_key=key)
            else:
                victims[fault, op] = variant(ct["path"], target, f"{key} victim")
    server = start_folder_server(store, root / "data")
    for (fault, _), victim in victims.items():  # after the index was built
        damage(victim.path, fault)
    yield DamagedStore(server, control, victims, siblings, path_secrets(store))
    server.stop()


FILE_CASES = [pytest.param(fault, op, id=f"{fault}-{op}") for fault in FILE_FAULTS for op in FILE_OPS]


@pytest.mark.parametrize("fault,op_name", FILE_CASES)
def test_a_damaged_file_is_a_document_error_or_a_clean_abort(damaged_store, fault, op_name):
    d = damaged_store
    op = OPS["anonymized" if op_name == "anonymized-series" else op_name]
    victim = d.victims[fault, op_name]
    watch = LogWatch(d.server, d.secrets)
    if op.kind == "uri":
        others = []
    elif (fault, op_name) in d.siblings:
        others = [d.siblings[fault, op_name]]
    else:
        others = [d.control]
    answer = ask(d.server.port, op, [*others, victim])
    outcome = assert_fault_handled(answer, op, [victim], others)
    if outcome == "cut":
        watch.wait_for(ABORT_LINE)
    assert_serving(d.server, d.control)
    watch.assert_clean([victim, *others])


# ==== 2. files changed while the answer is being sent =================================================

MIDSTREAM_CASES = [
    pytest.param("truncated-pixels", "plain", id="truncated-plain"),
    pytest.param("truncated-pixels", "anonymized", id="truncated-anonymized"),
    pytest.param("truncated-pixels", "transcoded", id="truncated-transcoded"),
    pytest.param("corrupted-header", "plain", id="corrupted-plain"),
    pytest.param("corrupted-header", "anonymized", id="corrupted-anonymized"),
    pytest.param("corrupted-header", "transcoded", id="corrupted-transcoded"),
]


@pytest.fixture(scope="module")
def busy_store(sample, tmp_path_factory):
    """A store with a 12 MB object to keep the server busy sending while a later object is damaged."""
    root = tmp_path_factory.mktemp("faults-midstream")
    store = root / "store"
    ct = row_of(sample, "CT")
    big = pydicom.dcmread(ct["path"])
    big.Rows, big.Columns = 2048, 3072
    big.PixelData = (np.arange(2048 * 3072, dtype=np.uint16) % 4096).astype("<u2").tobytes()
    source = root / "big-source.dcm"
    big.save_as(source, enforce_file_format=True)
    surname = ct["file"].split("/")[0]
    first = variant(source, store / "big" / surname / "big.dcm", "midstream big")
    victims = {f"{fault}-{op}": variant(ct["path"], store / f"{fault}-{op}" / surname / "victim.dcm",
                                        f"midstream {fault} {op}")
               for fault in ("truncated-pixels", "corrupted-header") for op in ("plain", "anonymized", "transcoded")}
    server = start_folder_server(store, root / "data")
    yield server, first, victims, path_secrets(store)
    server.stop()


@pytest.mark.parametrize("fault,op_name", MIDSTREAM_CASES)
def test_a_file_damaged_while_its_answer_is_sent_cuts_the_answer(busy_store, fault, op_name):
    server, first, victims, secrets = busy_store
    op, victim = OPS[op_name], victims[f"{fault}-{op_name}"]
    watch = LogWatch(server, secrets)
    # The envelope is out (the victim was found whole); the server is busy with the first object when the
    # victim is damaged: what it then sends of the victim must not pass for a whole object.
    answer = ask(server.port, op, [first, victim], receive_buffer=4096,
                 after_head=lambda: damage(victim.path, fault))
    assert answer.wire.cut, f"the answer went out whole after its object was damaged: {answer.describe()}"
    watch.wait_for(ABORT_LINE)
    assert_serving(server, first)
    watch.assert_clean([first, victim])


# ==== 3. store folders that stop being what they were ==================================================

FOLDER_FAULTS = ("folder-replaced-by-file", "file-replaced-by-folder", "file-replaced-by-dangling-symlink",
                 "folder-replaced-by-symlink-loop")


def break_folder(victim: Path, fault: str) -> None:
    folder = victim.parent
    if fault == "folder-replaced-by-file":
        shutil.rmtree(folder)
        folder.write_bytes(b"not a folder\n")
    elif fault == "file-replaced-by-folder":
        victim.unlink()
        victim.mkdir()
        (victim / "inside.txt").write_text("a folder where a file was\n")
    elif fault == "file-replaced-by-dangling-symlink":
        victim.unlink()
        victim.symlink_to(folder / "nowhere.dcm")
    elif fault == "folder-replaced-by-symlink-loop":
        shutil.rmtree(folder)
        folder.symlink_to(folder)  # ELOOP on every lookup through it
    else:
        raise ValueError(fault)


@pytest.fixture(scope="module")
def broken_folders(sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults-folders")
    store = root / "store"
    ct, mr = row_of(sample, "CT"), row_of(sample, "MR")
    control = variant(mr["path"], store / "control" / "ok.dcm", "folders control")
    victims = {fault: variant(ct["path"], store / fault / ct["file"].split("/")[0] / "victim.dcm",
                              f"folders {fault}") for fault in FOLDER_FAULTS}
    server = start_folder_server(store, root / "data")
    for fault, victim in victims.items():
        break_folder(victim.path, fault)
    yield server, control, victims, [str(store), ct["file"].split("/")[0]]
    server.stop()


@pytest.mark.parametrize("fault", FOLDER_FAULTS)
def test_an_unreadable_store_folder_is_a_document_error(broken_folders, fault):
    server, control, victims, secrets = broken_folders
    victim = victims[fault]
    watch = LogWatch(server, secrets)
    for name in ("plain", "anonymized", "rendered", "metadata"):
        op = OPS[name]
        answer = ask(server.port, op, [control, victim])
        assert assert_fault_handled(answer, op, [victim], [control],
                                    codes={"XDSDocumentUniqueIdError", REPOSITORY_ERROR}) == "errors"
        for error in answer.errors:  # the reason names the failure, never the path
            assert not any(s in (error.get("codeContext") or "") for s in secrets), error
    assert_serving(server, control)
    watch.assert_clean([victim, control])


# ==== 4. the data dir ===============================================================================


@pytest.mark.parametrize("fault", ["audit-file-replaced-by-folder", "audit-file-on-a-full-disk"])
def test_an_unwritable_audit_trail_is_logged_and_requests_are_still_answered(sample, tmp_path, fault):
    row = row_of(sample, "CT")
    store = tmp_path / "store"
    good = variant(row["path"], store / "a" / "ok.dcm", "audit good")
    data = tmp_path / "data"
    server = start_folder_server(store, data)
    try:
        assert_success(ask(server.port, OPS["plain"], [good]), OPS["plain"], [good])
        audit = data / "audit.jsonl"
        deadline = time.monotonic() + 10  # written once the answer is sent: a moment after the client has it
        while not (audit.is_file() and audit.read_text().count("\n") == 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert audit.is_file() and audit.read_text().count("\n") == 1
        audit.unlink()
        if fault == "audit-file-replaced-by-folder":
            audit.mkdir()
        else:
            audit.symlink_to("/dev/full")  # every write: ENOSPC
        watch = LogWatch(server, [str(store)])
        for name in ("plain", "anonymized", "metadata"):
            op = OPS[name]
            assert_success(ask(server.port, op, [good]), op, [good])
        text = watch.wait_for(AUDIT_FAILED_LINE)
        assert text.count(AUDIT_FAILED_LINE) == 3, text
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        watch.assert_clean([good])
        # Writable again: the trail resumes with the next request.
        if audit.is_symlink():
            audit.unlink()
        else:
            shutil.rmtree(audit)
        assert_success(ask(server.port, OPS["plain"], [good]), OPS["plain"], [good])
        assert audit.is_file() and audit.read_text().count("\n") == 1
    finally:
        server.stop()


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file", "index-file-is-a-folder"])
def test_a_data_dir_that_cannot_be_made_stops_serve_with_a_clear_message(sample, tmp_path, where):
    blocker = tmp_path / "occupied"
    if where == "index-file-is-a-folder":  # the data dir is there, its index cannot be written
        data_dir = tmp_path / "data"
        (data_dir / "index.sqlite3").mkdir(parents=True)
    else:
        blocker.write_text("a file where the data dir should go\n")
        data_dir = blocker / "data" if where == "under-a-file" else blocker
    store = tmp_path / "store"
    variant(row_of(sample, "CT")["path"], store / "ok.dcm", "datadir")
    done = subprocess.run([sys.executable, "-m", "wadows", "serve", "--store", str(store), "--data-dir",
                           str(data_dir), "--host", "127.0.0.1", "--port", str(free_port()),
                           "--unauthenticated", "full"], capture_output=True, text=True, timeout=20)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert str(data_dir) in output, output


# ==== 5. the DICOMweb store: a PACS that is slow, refuses, or drops an answer ============================

WADO_RS = re.compile(rb"^GET /dicom-web/studies/[^/ ]+/series/[^/ ]+/instances/[^/ ?]+ HTTP/1\.[01]\r\n")


class PacsProxy:
    """A loopback proxy in front of Orthanc, one request per connection (Connection: close both ways), with
    faults on demand: a delay before answering, a closed port, WADO-RS answers cut after N bytes."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.delay = 0.0
        self.delay_wado_only = False
        self.cut_after: int | None = None  # bytes of a WADO-RS answer relayed before the connection is closed
        self.stall_after: int | None = None  # bytes of a WADO-RS answer relayed before a silence
        self.stall = 0.0  # seconds of that silence
        self.cut_answers: range = range(1, 1 << 30)  # which WADO-RS answers (counted from 1) are cut or stalled
        self.wado_answers = 0
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self.port = 0
        self.accept()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    # ---- the port ----

    def accept(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        self._thread.start()

    def refuse(self) -> None:
        """Close the port (connections are refused) and every connection open through it."""
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            live, self._live = list(self._live), set()
        for sock in live:
            _hard_close(sock)

    def close(self) -> None:
        self.refuse()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self._live.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # ---- one request ----

    def _serve(self, conn: socket.socket) -> None:
        upstream = None
        try:
            conn.settimeout(30)
            head = _read_head(conn)
            if head is None:
                return
            is_wado = bool(WADO_RS.match(head))
            number = 0
            if is_wado:
                with self._lock:
                    self.wado_answers += 1
                    number = self.wado_answers
            if self.delay and (is_wado or not self.delay_wado_only):
                time.sleep(self.delay)
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            upstream.sendall(_close_after(head))
            answer_head = _read_head(upstream)
            if answer_head is None:
                return
            length = _content_length(answer_head)
            chunked = b"chunked" in answer_head.lower() and length is None
            head_out = _close_after(answer_head)
            faulty = is_wado and number in self.cut_answers
            limit = self.cut_after if faulty else None
            if limit is not None and limit < 0:  # counted back from the end of the answer
                assert length is not None, "a cut counted from the end needs a Content-Length"
                limit += len(head_out) + length
            stall_at = self.stall_after if faulty else None
            sent = 0
            received = bytearray()

            def relay(data: bytes) -> bool:
                nonlocal sent, stall_at
                if stall_at is not None and sent + len(data) >= stall_at:
                    conn.sendall(data[:stall_at - sent])
                    time.sleep(self.stall)  # silent mid-answer, then the rest as if nothing happened
                    data, sent, stall_at = data[stall_at - sent:], stall_at, None
                if limit is not None and sent + len(data) >= limit:
                    conn.sendall(data[:max(0, limit - sent)])
                    return False
                conn.sendall(data)
                sent += len(data)
                return True

            if not relay(head_out):
                return
            while True:
                if length is not None and len(received) >= length:
                    break
                if chunked and received.endswith(b"0\r\n\r\n"):
                    break
                data = upstream.recv(1 << 16)
                if not data:
                    break
                received += data
                if not relay(data):
                    return
        except OSError:
            pass
        finally:
            if upstream is not None:
                upstream.close()
            with self._lock:
                self._live.discard(conn)
            _hard_close(conn)


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _read_head(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)  # byte by byte: what follows the head belongs to the body
        if not chunk:
            return None
        data += chunk
    return data


def _close_after(head: bytes) -> bytes:
    """The head with `Connection: close` instead of any Connection or Keep-Alive header."""
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith((b"connection:",
                                                                                          b"keep-alive:"))]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _content_length(head: bytes) -> int | None:
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return int(match.group(1)) if match else None


@pytest.fixture()
def proxied(sample_orthanc, tmp_path):
    """A fresh wadows (nothing cached) in front of the proxy in front of Orthanc."""
    proxy = PacsProxy(sample_orthanc.http_port)
    config = tmp_path / "wadows.toml"
    config.write_text("[store]\nconnect_timeout = 0.5\nread_timeout = 0.75\nretries = 1\n")
    server = ServerProcess(None, tmp_path / "data", tmp_path / "server.log", [
        "--unauthenticated", "full", "--store-url", proxy.base_url, "--config", str(config)])
    yield proxy, server
    server.stop()
    proxy.close()


def pacs_objs(sample) -> dict[str, Obj]:
    """One object per operation, so that no operation finds its record cached by another's."""
    pick = {"plain": row_of(sample, "CT"), "transcoded": row_of(sample, "MR", 0),
            "anonymized": row_of(sample, "MR", 1), "rendered": row_of(sample, "MR", 5),
            "metadata": row_of(sample, "SR")}
    return {name: obj_of(row) for name, row in pick.items()}


PACS_OPS = ("plain", "transcoded", "anonymized", "rendered", "metadata")
PACS_FAULTS = {
    # fault: (what the proxy does, which codes a per-document error may carry)
    "slow": ({"delay": 2.0}, {BUSY}),
    "slow-wado-rs": ({"delay": 2.0, "delay_wado_only": True}, {BUSY}),
    "refusing": ({"refuse": True}, {BUSY}),
    "killed-mid-answer": ({"cut_after": 1500}, {BUSY, REPOSITORY_ERROR}),
    # the last few hundred bytes of the object and the closing boundary never come: a nearly whole object
    "killed-near-the-end": ({"cut_after": -300}, {BUSY, REPOSITORY_ERROR}),
    "stalled-mid-answer": ({"stall_after": 1500, "stall": 2.0}, {BUSY}),
}


def apply_pacs_fault(proxy: PacsProxy, setting: dict) -> None:
    if setting.get("refuse"):
        proxy.refuse()
    for name in ("delay", "delay_wado_only", "cut_after", "stall_after", "stall"):
        if name in setting:
            setattr(proxy, name, setting[name])


def lift_pacs_fault(proxy: PacsProxy, setting: dict) -> None:
    proxy.delay, proxy.delay_wado_only, proxy.cut_after, proxy.stall_after = 0.0, False, None, None
    if setting.get("refuse"):
        proxy.accept()


@pytest.mark.parametrize("fault", list(PACS_FAULTS))
def test_a_failing_pacs_gives_document_errors_or_clean_aborts_then_recovers(proxied, sample, fault):
    proxy, server = proxied
    setting, codes = PACS_FAULTS[fault]
    objs = pacs_objs(sample)
    watch = LogWatch(server, [])
    apply_pacs_fault(proxy, setting)
    outcomes = {}
    for name in PACS_OPS:
        op = OPS[name]
        started = time.monotonic()
        answer = ask(server.port, op, [objs[name]])
        outcomes[name] = assert_fault_handled(answer, op, [objs[name]], codes=codes)
        assert time.monotonic() - started < 15, f"{name}: {time.monotonic() - started:.1f} s"
    if "cut" in outcomes.values():
        watch.wait_for(ABORT_LINE)
    health = requests.get(f"{server.url}/health", timeout=15)  # answered, whatever it says of the PACS
    assert health.status_code in (200, 503), health.text
    if fault == "refusing":
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
    lift_pacs_fault(proxy, setting)
    for name in PACS_OPS:
        op = OPS[name]
        assert_success(ask(server.port, op, [objs[name]]), op, [objs[name]])
    assert requests.get(f"{server.url}/health", timeout=15).status_code == 200
    watch.assert_clean(list(objs.values()))


def test_a_slow_pacs_within_the_read_timeout_is_only_slower(proxied, sample):
    proxy, server = proxied
    proxy.delay = 0.2  # every answer, well within the 0.75 s read timeout
    objs = pacs_objs(sample)
    watch = LogWatch(server, [])
    for name in PACS_OPS:
        assert_success(ask(server.port, OPS[name], [objs[name]]), OPS[name], [objs[name]])
    watch.assert_clean(list(objs.values()))


def test_a_wado_rs_answer_cut_once_is_fetched_again_whole(proxied, sample):
    proxy, server = proxied
    objs = pacs_objs(sample)
    watch = LogWatch(server, [])
    proxy.cut_after = 1500
    for name in ("plain", "anonymized"):
        first = proxy.wado_answers + 1
        proxy.cut_answers = range(first, first + 1)  # the next WADO-RS answer only: its retry goes through
        assert_success(ask(server.port, OPS[name], [objs[name]]), OPS[name], [objs[name]])
        assert proxy.wado_answers > first, f"{name}: the cut answer was not fetched again"
    watch.assert_clean(list(objs.values()))


def test_an_anonymized_answer_whose_second_fetch_is_cut_is_cut(proxied, sample):
    """The DICOMweb copy has no file identity: an anonymized object is fetched once to prepare the envelope
    and again while it is sent. The PACS drops the second fetch (and its retry) half-way."""
    proxy, server = proxied
    obj = pacs_objs(sample)["anonymized"]
    proxy.cut_after = 1500
    proxy.cut_answers = range(2, 1 << 30)
    watch = LogWatch(server, [])
    answer = ask(server.port, OPS["anonymized"], [obj])
    assert proxy.wado_answers >= 2, "the object was fetched once only"
    assert answer.wire.cut, f"a cut PACS answer went out as a whole object: {answer.describe()}"
    watch.wait_for(ABORT_LINE)
    proxy.cut_after = None
    assert_success(ask(server.port, OPS["anonymized"], [obj]), OPS["anonymized"], [obj])
    watch.assert_clean([obj])
