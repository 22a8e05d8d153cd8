"""A RAD-69 request for many instances of a series, through a real wadows in front of a real Orthanc: the
series comes in one WADO-RS request into local copies, each document is prepared and sent from its copy.

Between wadows and Orthanc sits a small proxy of ours that counts every request and, when a test asks, refuses
series retrieval, leaves an instance out of a series answer, or cuts a series answer (and kills Orthanc there).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import psutil
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from orthanc import Orthanc
from support import ServerProcess, document_responses, envelope, post, rad69_body, registry

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
BUSY = "XDSRepositoryBusy"
KEY = "series-test-key-0123456789abcdef"
SERIES_PATH = re.compile(r"^/dicom-web/studies/[^/?]+/series/[^/?]+$")
SERIES_QUERY = re.compile(r"^/dicom-web/studies/[^/?]+/series$")
LISTING_PATH = re.compile(r"^/dicom-web/studies/[^/?]+/series/[^/?]+/instances$")
INSTANCE_PATH = re.compile(r"^/dicom-web/studies/[^/?]+/series/[^/?]+/instances/[^/?]+$")


# ---- data ------------------------------------------------------------------------------------------

def ct_series(folder: Path, count: int, size: int) -> list[dict]:
    """`count` CT slices of size x size 16-bit pixels in one new series; the first file ends in CR LF."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = size
        pixels = np.random.default_rng(i).integers(0, 4096, size * size, dtype=np.uint16).tobytes()
        ds.PixelData = pixels[:-2] + b"\r\n" if i == 0 else pixels
        path = folder / f"{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        rows.append({"study_uid": study, "series_uid": series, "sop_instance_uid": ds.SOPInstanceUID,
                     "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID, "path": path})
    return rows


def docs(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["study_uid"], r["series_uid"], r["sop_instance_uid"]) for r in rows]


def syntaxes(rows: list[dict]) -> list[str]:
    return sorted({str(r["transfer_syntax_uid"]) for r in rows})


def retrieve(server: ServerProcess, rows: list[dict], anonymize: str | None = None):
    reply = post(server.endpoint, envelope(rad69_body(docs(rows), syntaxes(rows), anonymize=anonymize)))
    assert reply.status == 200
    status, errors = registry(reply.envelope())
    returned = {d["uid"]: (d, reply.mtom().parts[d["cid"]]) for d in document_responses(reply.envelope())}
    return reply, status, errors, returned


def spool_entries(server: ServerProcess) -> list[str]:
    spool = server.data_dir / "spool"
    return sorted(os.listdir(spool)) if spool.exists() else []


def assert_spool_empty(server: ServerProcess, within: float = 10.0) -> None:
    """The request's directory and copies are gone, and no process of the server holds one open."""
    deadline = time.monotonic() + within
    while spool_entries(server) or _open_in_spool(server):
        assert time.monotonic() < deadline, f"left in the spool: {spool_entries(server)} {_open_in_spool(server)}"
        time.sleep(0.1)


def _open_in_spool(server: ServerProcess) -> list[str]:
    spool = str(server.data_dir / "spool")
    parent = psutil.Process(server.process.pid)
    found = []
    for process in [parent, *parent.children(recursive=True)]:
        try:
            found += [f.path for f in process.open_files() if f.path.startswith(spool)]
        except psutil.NoSuchProcess:
            pass
    return found


# ---- the proxy -------------------------------------------------------------------------------------

class CountingProxy:
    """Loopback HTTP in front of Orthanc: every path asked is recorded; series answers can be refused with a
    status, lose the part of one instance, or be cut after some bytes (Orthanc killed there, if asked)."""

    def __init__(self, orthanc: Orthanc):
        self.orthanc = orthanc
        self.paths: list[str] = []
        self.series_status: int | None = None
        self.refuse_series_query = False  # series-level QIDO-RS answered 400 (the size of a series unknown)
        self.drop_uid: str | None = None
        self.cut_series_after: int | None = None
        self.kill_at_cut = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        self.paths.clear()
        self.series_status = self.drop_uid = self.cut_series_after = None
        self.kill_at_cut = self.refuse_series_query = False

    def series_gets(self) -> list[str]:
        return [p for p in self.paths if SERIES_PATH.match(p)]

    def instance_gets(self) -> list[str]:
        return [p for p in self.paths if INSTANCE_PATH.match(p)]

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy.paths.append(self.path.split("?")[0])
                series = bool(SERIES_PATH.match(self.path.split("?")[0]))
                if series and proxy.series_status is not None:
                    self._answer(proxy.series_status, {"Content-Length": "0"}, [])
                    return
                if proxy.refuse_series_query and SERIES_QUERY.match(self.path.split("?")[0]):
                    self._answer(400, {"Content-Length": "0"}, [])
                    return
                headers = {n: self.headers[n] for n in ("Accept", "Accept-Encoding") if n in self.headers}
                try:
                    upstream = requests.get(proxy.orthanc.url + self.path, headers=headers, stream=True, timeout=30)
                except requests.ConnectionError:  # Orthanc is gone: so is this connection
                    self.close_connection = True
                    return
                body = upstream.raw.stream(65536, decode_content=False)
                out = {n: upstream.headers[n] for n in ("Content-Type", "Content-Length", "Content-Encoding")
                       if n in upstream.headers}
                if series and proxy.drop_uid:
                    whole = _without_part(b"".join(body), upstream.headers["Content-Type"], proxy.drop_uid)
                    out["Content-Length"], body = str(len(whole)), [whole]
                cut = proxy.cut_series_after if series else None
                self._answer(upstream.status_code, out, body, cut)

            def _answer(self, status, headers, body, cut=None):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Connection", "close")  # the body ends when the connection does
                    self.close_connection = True
                self.end_headers()
                sent = 0
                for chunk in body:
                    if cut is not None and sent + len(chunk) >= cut:
                        self.wfile.write(chunk[:cut - sent])
                        self.wfile.flush()
                        if proxy.kill_at_cut:
                            proxy.orthanc.process.kill()
                            proxy.orthanc.process.wait()
                        self.close_connection = True
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)

            def log_message(self, *args):
                pass

        return Handler


def _without_part(body: bytes, content_type: str, uid: str) -> bytes:
    boundary = re.search(r'boundary="?([^";]+)', content_type).group(1).encode()
    pieces = body.split(b"--" + boundary)
    kept = [p for p in pieces if uid.encode() not in p]
    assert len(kept) == len(pieces) - 1, "the instance to leave out is not in the answer once"
    return (b"--" + boundary).join(kept)


# ---- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ct(tmp_path_factory) -> list[dict]:
    return ct_series(tmp_path_factory.mktemp("ct"), 16, 512)  # 16 x 0.5 MB: more than a socket buffers


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> list[dict]:
    return ct_series(tmp_path_factory.mktemp("big"), 3, 800)  # 1.3 MB each: past the in-memory header read


@pytest.fixture(scope="module")
def mr(sample) -> list[dict]:
    """The sample's MR series of five instances in five transfer syntaxes."""
    series = max({r["series_uid"] for r in sample}, key=lambda s: sum(r["series_uid"] == s for r in sample))
    rows = [r for r in sample if r["series_uid"] == series]
    assert len(rows) == 5 and len(syntaxes(rows)) == 5
    return rows


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, ct, big, mr):
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as orthanc:
        for row in ct + big + mr:
            orthanc.upload(row["path"])
        yield orthanc


def wadows_in_front(url: str, work: Path, store: str = "") -> ServerProcess:
    config = work / "wadows.toml"
    config.write_text(f'[store]\nconnect_timeout = 1.0\nread_timeout = 5.0\nretries = 1\n{store}\n'
                      f'[anonymize]\nkey = "{KEY}"\n')
    return ServerProcess(None, work / "data", work / "server.log", [
        "--unauthenticated", "full", "--store-url", url, "--config", str(config)])


@pytest.fixture(scope="module")
def proxied(pacs, tmp_path_factory):
    proxy = CountingProxy(pacs)
    server = wadows_in_front(f"{proxy.url}/dicom-web", tmp_path_factory.mktemp("proxied"))
    yield proxy, server
    server.stop()
    proxy.close()


@pytest.fixture
def proxy(proxied):
    proxy, server = proxied
    proxy.reset()
    yield proxy
    proxy.reset()


# ---- the series path -------------------------------------------------------------------------------

def test_a_whole_series_comes_in_one_wado_rs_request_and_goes_out_byte_for_byte(proxied, proxy, ct, mr):
    _, server = proxied
    for rows in (ct, mr):
        reply, status, errors, returned = retrieve(server, rows)
        assert status == SUCCESS, errors
        assert {uid: part for uid, (_, part) in returned.items()} == \
            {r["sop_instance_uid"]: r["path"].read_bytes() for r in rows}
        assert "Content-Length" in reply.headers  # every size known in advance: the copies are files
    assert len(proxy.series_gets()) == 2 and proxy.instance_gets() == []
    assert not [p for p in proxy.paths if "/metadata/" in p]  # the copies name their own transfer syntax
    assert not [p for p in proxy.paths if LISTING_PATH.match(p)]  # nor is an instance listing needed
    assert_spool_empty(server)


def test_anonymized_answer_is_the_folder_stores_answer_and_the_pacs_is_asked_once(proxied, proxy, ct, mr,
                                                                                  tmp_path):
    _, server = proxied
    folder = tmp_path / "folder"
    for row in ct + mr:
        (folder / row["series_uid"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(row["path"], folder / row["series_uid"] / row["path"].name)
    config = tmp_path / "folder.toml"
    config.write_text(f'[anonymize]\nkey = "{KEY}"\n')
    reference = ServerProcess(folder, tmp_path / "data", tmp_path / "folder.log",
                              ["--unauthenticated", "full", "--config", str(config)])
    try:
        for rows in (ct, mr):
            _, status, errors, expected = retrieve(reference, rows, anonymize="yes")
            assert status == SUCCESS, errors
            proxy.reset()
            _, status, errors, returned = retrieve(server, rows, anonymize="yes")
            assert status == SUCCESS, errors
            assert len(proxy.series_gets()) == 1 and proxy.instance_gets() == []  # prepared and sent from one fetch
            assert returned.keys() == expected.keys() == {r["sop_instance_uid"] for r in rows}
            for uid, (doc, part) in returned.items():
                assert doc["new_uid"] == expected[uid][0]["new_uid"] != uid
                assert part == expected[uid][1]
    finally:
        reference.stop()
    assert_spool_empty(server)


def test_a_pacs_that_does_not_say_how_big_a_series_is_gets_it_listed_first(proxied, proxy, mr):
    _, server = proxied
    proxy.refuse_series_query = True
    _, status, errors, returned = retrieve(server, mr)
    assert status == SUCCESS, errors
    assert {uid: part for uid, (_, part) in returned.items()} == \
        {r["sop_instance_uid"]: r["path"].read_bytes() for r in mr}
    assert len([p for p in proxy.paths if LISTING_PATH.match(p)]) == 1
    assert len(proxy.series_gets()) == 1 and proxy.instance_gets() == []
    assert_spool_empty(server)


# ---- partial answers and refusals ----------------------------------------------------------------------

def test_an_instance_missing_from_the_series_answer_is_fetched_alone(proxied, proxy, ct):
    _, server = proxied
    proxy.drop_uid = ct[5]["sop_instance_uid"]
    _, status, errors, returned = retrieve(server, ct)
    assert status == SUCCESS, errors
    assert {uid: part for uid, (_, part) in returned.items()} == \
        {r["sop_instance_uid"]: r["path"].read_bytes() for r in ct}
    assert len(proxy.series_gets()) == 1
    assert [p.rsplit("/", 1)[1] for p in proxy.instance_gets()] == [ct[5]["sop_instance_uid"]]
    assert_spool_empty(server)


@pytest.mark.parametrize("status", [406, 400])
def test_a_pacs_refusing_series_retrieval_is_asked_instance_by_instance(proxied, proxy, mr, status):
    _, server = proxied
    proxy.series_status = status
    _, answer, errors, returned = retrieve(server, mr, anonymize="yes")
    assert answer == SUCCESS, errors
    assert returned.keys() == {r["sop_instance_uid"] for r in mr}
    assert len(proxy.series_gets()) == 1
    assert sorted(set(proxy.instance_gets())) == sorted(
        f"/dicom-web/studies/{r['study_uid']}/series/{r['series_uid']}/instances/{r['sop_instance_uid']}" for r in mr)
    assert_spool_empty(server)


def test_a_series_cut_half_way_keeps_what_came_whole_and_fetches_the_rest_alone(proxied, proxy, ct):
    _, server = proxied
    part = ct[0]["path"].stat().st_size
    proxy.cut_series_after = int(part * 4.5)  # four objects and half of a fifth
    _, status, errors, returned = retrieve(server, ct)
    assert status == SUCCESS, errors
    assert {uid: part for uid, (_, part) in returned.items()} == \
        {r["sop_instance_uid"]: r["path"].read_bytes() for r in ct}
    assert len(proxy.series_gets()) == 1 and len(proxy.instance_gets()) == len(ct) - 4
    assert_spool_empty(server)


def test_beyond_the_spool_budget_documents_are_fetched_alone(pacs, big, ct, tmp_path):
    proxy = CountingProxy(pacs)
    budget = int(big[0]["path"].stat().st_size * 2.5)  # two copies fit, not three
    server = wadows_in_front(f"{proxy.url}/dicom-web", tmp_path, f"series_spool_bytes = {budget}")
    try:
        for rows in (big, ct):
            proxy.reset()
            _, status, errors, returned = retrieve(server, rows, anonymize="yes" if rows is ct else None)
            assert status == SUCCESS, errors
            if rows is big:
                assert {uid: part for uid, (_, part) in returned.items()} == \
                    {r["sop_instance_uid"]: r["path"].read_bytes() for r in rows}
            assert len(proxy.series_gets()) == 1
            copies = budget // rows[0]["path"].stat().st_size
            assert len(set(proxy.instance_gets())) == len(rows) - copies
        assert_spool_empty(server)
    finally:
        server.stop()
        proxy.close()


# ---- Orthanc killed mid-series ---------------------------------------------------------------------

def test_orthanc_killed_mid_series_gives_errors_for_the_rest_never_a_wrong_object(ct, tmp_path):
    with Orthanc(tmp_path / "doomed") as orthanc:
        for row in ct:
            orthanc.upload(row["path"])
        proxy = CountingProxy(orthanc)
        server = wadows_in_front(f"{proxy.url}/dicom-web", tmp_path)
        try:
            proxy.cut_series_after = int(ct[0]["path"].stat().st_size * 6.5)
            proxy.kill_at_cut = True
            started = time.monotonic()
            _, status, errors, returned = retrieve(server, ct)
            assert time.monotonic() - started < 30
            assert status == PARTIAL
            assert len(returned) == 6  # what came whole before the cut, nothing else
            files = {r["sop_instance_uid"]: r["path"].read_bytes() for r in ct}
            assert all(part == files[uid] for uid, (_, part) in returned.items())
            assert {e["location"] for e in errors} == files.keys() - returned.keys()
            assert {e["errorCode"] for e in errors} == {BUSY}
            assert_spool_empty(server)
            assert "Traceback" not in server.log()
        finally:
            server.stop()
            proxy.close()


# ---- the spool after abandoned requests -----------------------------------------------------------

@pytest.mark.parametrize("anonymize", [None, "yes"])
def test_the_spool_is_emptied_when_the_client_goes_away(proxied, proxy, ct, anonymize):
    _, server = proxied
    body = envelope(rad69_body(docs(ct), syntaxes(ct), anonymize=anonymize))
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # the server must wait for us
        client.connect(("127.0.0.1", server.port))
        client.sendall(b"POST /wado-ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Type: application/soap+xml; charset=utf-8\r\n"
                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)
        assert spool_entries(server), "the copies should still be there while the answer is being sent"
    assert_spool_empty(server)
    _, status, errors, _ = retrieve(server, ct[:3])  # and the server still serves
    assert status == SUCCESS, errors
    assert_spool_empty(server)


def test_a_client_gone_before_the_answer_begins_leaves_nothing(proxied, proxy, ct):
    # The client resets the connection while the documents are prepared: the first write fails, before any
    # document started; the dropped answer takes the copies along (no reference cycle holds it: see
    # test_soap_transport.py::test_a_dropped_answer_frees_its_documents_at_once).
    _, server = proxied
    body = envelope(rad69_body(docs(ct), syntaxes(ct), anonymize="yes"))
    with socket.socket() as client:
        client.connect(("127.0.0.1", server.port))
        client.sendall(b"POST /wado-ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Content-Type: application/soap+xml; charset=utf-8\r\n"
                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 20
        while not spool_entries(server):
            assert time.monotonic() < deadline, "the request made no local copies"
            time.sleep(0.01)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset: gone at once
    time.sleep(2.0)  # the server prepares the documents, then fails to write the envelope
    _, status, errors, _ = retrieve(server, ct[8:])
    assert status == SUCCESS, errors
    assert_spool_empty(server)


def test_a_spool_left_by_a_killed_process_is_removed_by_the_next_request(proxied, proxy, ct):
    _, server = proxied
    spool = server.data_dir / "spool"
    dead = psutil.Popen(["true"])
    dead.wait()
    from wadows.store.series_spool import _host_tag

    orphan = spool / f"series-{_host_tag()}-{dead.pid}-abcdefgh"
    orphan.mkdir(parents=True)
    (orphan / "1").write_bytes(b"left behind")
    _, status, errors, _ = retrieve(server, ct[:8])  # half the series: fetched whole
    assert status == SUCCESS, errors
    assert_spool_empty(server)


def test_an_unauthorized_caller_costs_the_pacs_nothing(pacs, ct, tmp_path):
    proxy = CountingProxy(pacs)
    config = tmp_path / "wadows.toml"
    config.write_text("[policy]\nunauthenticated = \"deny\"\n")
    server = ServerProcess(None, tmp_path / "data", tmp_path / "server.log", [
        "--store-url", f"{proxy.url}/dicom-web", "--config", str(config)])
    try:
        proxy.reset()
        reply = post(server.endpoint, envelope(rad69_body(docs(ct), syntaxes(ct), anonymize="yes")))
        assert registry(reply.envelope())[0].endswith("Failure")
        assert proxy.series_gets() == [] and proxy.instance_gets() == []
    finally:
        server.stop()
        proxy.close()
