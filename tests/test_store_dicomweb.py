"""The DICOMweb store against a real Orthanc (Debian's orthanc + orthanc-dicomweb), loaded with the bundled
sample and some of pydicom's own test files: every transfer syntax the sample has, plus Explicit VR Big Endian
and JPEG Extended.

Facts these tests pin down about Orthanc 1.10 / DICOMweb plugin 1.7:
- WADO-RS with `transfer-syntax=*` returns the uploaded file byte for byte (preamble and file meta included);
- QIDO-RS gives no Available Transfer Syntax UID, so the store asks Orthanc's REST API (or reads the object);
- a deleted instance answers 404, a stopped Orthanc refuses connections.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from orthanc import Orthanc
from wadows.dicom import part10
from wadows.store.base import InstanceGone, StoreError, StoreUnavailable
from wadows.store import dicomweb, series_spool
from wadows.store.dicom_part import DicomPart
from wadows.store.dicomweb import DicomWebStore
from wadows.store.file_identity import file_identity
from wadows.store.series_spool import SeriesSpool
from wadows.store.store_auth import parse_store_auth

# Bundled with pydicom (no download), each in a syntax of its own or one the sample lacks.
PYDICOM_FILES = ("CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "JPGExtended.dcm",
                 "image_dfl.dcm", "rtplan.dcm")
UNKNOWN_UID = "1.2.826.0.1.3680043.8.498.1"
FAST = (1.0, 5.0)  # (connect, read) timeouts for the tests: failures must show quickly


def _row(path: Path) -> dict:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {"path": Path(path), "study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID, "sop_class_uid": ds.SOPClassUID,
            "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def uploaded(orthanc, sample, crlf) -> list[dict]:
    paths = [row["path"] for row in sample] + [crlf["path"]] + [Path(get_testdata_file(n)) for n in PYDICOM_FILES]
    rows = [_row(path) for path in paths]
    assert len({row["sop_instance_uid"] for row in rows}) == len(rows)
    for row in rows:
        orthanc.upload(row["path"])
    return rows


@pytest.fixture
def store(orthanc, uploaded) -> DicomWebStore:
    return DicomWebStore(orthanc.dicomweb_url, timeout=FAST)


def _fresh_instance(tmp_path: Path, name: str) -> Path:
    """A small new instance of its own study, to be changed or deleted by one test."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (generate_uid() for _ in range(3))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


# ---- locate / open / available / instances / count ---------------------------------------------------

def test_locate_gives_each_instance_its_uids_class_and_stored_syntax(store, uploaded):
    syntaxes = {str(row["transfer_syntax_uid"]) for row in uploaded}
    assert len(syntaxes) >= 9  # the point of the data: many syntaxes
    for row in uploaded:
        record = store.locate(row["sop_instance_uid"])
        assert record is not None
        assert (record.study_uid, record.series_uid, record.sop_instance_uid) == (
            row["study_uid"], row["series_uid"], row["sop_instance_uid"])
        assert record.sop_class_uid == row["sop_class_uid"]
        assert record.transfer_syntax_uid == row["transfer_syntax_uid"]
        assert record.locator == (f"studies/{row['study_uid']}/series/{row['series_uid']}"
                                  f"/instances/{row['sop_instance_uid']}")


def test_open_returns_the_uploaded_file_byte_for_byte(store, uploaded):
    # Orthanc keeps the uploaded bytes and WADO-RS transfer-syntax=* sends them back unchanged: preamble,
    # file meta (implementation UID and all), trailing padding, a last pixel byte pair that is CR LF.
    for row in uploaded:
        record = store.locate(row["sop_instance_uid"])
        with store.open(record) as fp:
            assert fp.tell() == 0 and fp.seekable()
            assert fp.read() == row["path"].read_bytes(), row["path"].name
            with pytest.raises(OSError):
                fp.fileno()  # no stable identity to offer (see wadows.store.spool)


def test_opened_object_reads_as_a_part10_source(store, uploaded):
    row = next(r for r in uploaded if r["transfer_syntax_uid"] == "1.2.840.10008.1.2.5")  # RLE
    with store.open(store.locate(row["sop_instance_uid"])) as fp:
        instance = part10.open_source(fp)
        assert instance.dataset.SOPInstanceUID == row["sop_instance_uid"]
        assert instance.pixel_data is not None


def test_without_orthanc_rest_the_syntax_and_size_come_from_the_object(orthanc, uploaded):
    store = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, detect_orthanc=False)
    for row in uploaded:
        record = store.locate(row["sop_instance_uid"])
        assert record.transfer_syntax_uid == row["transfer_syntax_uid"]
        assert record.size == row["path"].stat().st_size
        assert store.available(record) == record.size


def test_unknown_uids_are_not_found(store, uploaded):
    assert store.locate(UNKNOWN_UID) is None
    assert store.instances(UNKNOWN_UID) == []
    assert store.instances(uploaded[0]["study_uid"], UNKNOWN_UID) == []


def test_instances_lists_a_study_and_a_series(store, uploaded):
    study = max({row["study_uid"] for row in uploaded}, key=lambda s: sum(r["study_uid"] == s for r in uploaded))
    expected = {row["sop_instance_uid"] for row in uploaded if row["study_uid"] == study}
    assert len(expected) >= 5
    assert {record.sop_instance_uid for record in store.instances(study)} == expected
    series = next(row["series_uid"] for row in uploaded if row["study_uid"] == study)
    in_series = {row["sop_instance_uid"] for row in uploaded if row["series_uid"] == series}
    by_sop = store.locate_series(study, series)
    assert set(by_sop) == in_series
    assert all(record.series_uid == series for record in by_sop.values())


def test_listings_page_through_a_server_that_answers_a_few_at_a_time(store, uploaded, monkeypatch):
    monkeypatch.setattr(dicomweb, "QIDO_PAGE", 2)
    for study in {row["study_uid"] for row in uploaded}:
        expected = sorted(row["sop_instance_uid"] for row in uploaded if row["study_uid"] == study)
        assert sorted(record.sop_instance_uid for record in store.instances(study)) == expected


def test_a_prefetched_series_answers_locate_and_available_from_memory(orthanc, uploaded):
    study, series = max(((r["study_uid"], r["series_uid"]) for r in uploaded),
                        key=lambda key: sum((r["study_uid"], r["series_uid"]) == key for r in uploaded))
    with FrontProxy(orthanc.url) as proxy:
        store = DicomWebStore(f"{proxy.url}/dicom-web", timeout=FAST)
        records = store.locate_series(study, series)
        assert len(records) >= 5
        asked = len(proxy.seen)
        for uid, record in records.items():
            assert store.locate(uid) == record
            store.available(record)
        assert len(proxy.seen) == asked


def test_count_matches_orthancs_own_list(orthanc, store, uploaded):
    listed = orthanc.session().get(f"{orthanc.url}/instances", timeout=10).json()
    assert store.count() == len(listed) >= len(uploaded)
    generic = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, detect_orthanc=False)
    assert generic.count() == len(listed)  # the sum of Number of Study Related Instances
    assert store.health() == len(listed)


def test_health_asks_the_pacs_one_cheap_question(orthanc, uploaded):
    """A load balancer probes /health every few seconds: a store that is not an Orthanc is asked for one study,
    not for its whole study list; a PACS that does not answer makes health() raise."""
    with FrontProxy(orthanc.url) as proxy:
        generic = DicomWebStore(f"{proxy.url}/dicom-web", timeout=FAST, detect_orthanc=False)
        assert generic.health() is None
        assert [path for path, _ in proxy.seen] == ["/dicom-web/studies?limit=1"]
        proxy.status = 503
        with pytest.raises(StoreError):
            generic.health()


def test_concurrent_opens_from_many_threads(store, uploaded):
    def fetch(row):
        with store.open(store.locate(row["sop_instance_uid"])) as fp:
            return fp.read() == row["path"].read_bytes()

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(fetch, uploaded * 4))


def test_a_forked_worker_builds_its_own_connection_pool(store, uploaded):
    # gunicorn forks workers after the app (and its store) exist: sharing the parent's sockets would mix
    # two processes' requests on one connection.
    row = uploaded[0]
    record = store.locate(row["sop_instance_uid"])
    store.open(record).close()  # the parent's pool now holds a live connection
    parent_adapter = store.http._session().get_adapter(store.base_url)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports with one byte and leaves without running pytest's teardown
        try:
            own_pool = store.http._session().get_adapter(store.base_url) is not parent_adapter
            with store.open(record) as fp:
                fetched = fp.read() == row["path"].read_bytes()
            os.write(write_end, b"1" if own_pool and fetched else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1)
    os.close(read_end)
    os.waitpid(child, 0)
    assert answer == b"1"
    with store.open(record) as fp:
        assert fp.read() == row["path"].read_bytes()


# ---- gone, down, slow, refusing -------------------------------------------------------------------

def test_deleted_between_locate_and_open_is_gone(orthanc, uploaded, tmp_path):
    row = _row(_fresh_instance(tmp_path, "doomed.dcm"))
    orthanc.upload(row["path"])
    store = DicomWebStore(orthanc.dicomweb_url, timeout=FAST)
    record = store.locate(row["sop_instance_uid"])
    assert store.available(record) is None  # Orthanc's REST path gives no size
    orthanc.delete_instance(row["sop_instance_uid"])
    with pytest.raises(InstanceGone) as gone:
        store.open(record)
    _no_uid_in(gone.value, row)
    with pytest.raises(InstanceGone) as gone:
        store.available(record)  # open() forgot the record: available() asks again
    _no_uid_in(gone.value, row)
    assert store.locate(row["sop_instance_uid"]) is None


def test_available_trusts_a_fresh_record_for_cache_ttl_only(orthanc, uploaded, tmp_path):
    row = _row(_fresh_instance(tmp_path, "short-lived.dcm"))
    orthanc.upload(row["path"])
    trusting = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, cache_ttl=60)
    asking = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, cache_ttl=0)
    records = trusting.locate(row["sop_instance_uid"]), asking.locate(row["sop_instance_uid"])
    orthanc.delete_instance(row["sop_instance_uid"])
    assert trusting.available(records[0]) is None  # no round trip: the locate a moment ago stands
    with pytest.raises(InstanceGone):
        asking.available(records[1])


def test_stopped_orthanc_is_unavailable_quickly_and_the_next_call_after_restart_works(orthanc, uploaded):
    store = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, retries=2, cache_ttl=0)
    row = uploaded[0]
    record = store.locate(row["sop_instance_uid"])
    orthanc.stop()
    try:
        for call in (lambda: store.open(record), lambda: store.available(record),
                     lambda: store.locate(uploaded[1]["sop_instance_uid"]), store.count):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as down:
                call()
            assert time.monotonic() - started < 2.0  # refused at once; 3 tries, 0.3 s of backoff
            assert "cannot be reached" in str(down.value)
            _no_uid_in(down.value, row)
    finally:
        orthanc.start()
    with store.open(record) as fp:  # the same store, its pooled connections dead: it reconnects
        assert fp.read() == row["path"].read_bytes()
    assert store.locate(uploaded[1]["sop_instance_uid"]) is not None


def test_slow_pacs_is_unavailable_after_the_read_timeout(orthanc, uploaded):
    row = uploaded[0]
    with FrontProxy(orthanc.url) as proxy:
        store = DicomWebStore(f"{proxy.url}/dicom-web", timeout=(1.0, 0.5), retries=2)
        record = store.locate(row["sop_instance_uid"])  # through the proxy, no delay yet
        with store.open(record) as fp:
            assert fp.read() == row["path"].read_bytes()
        proxy.delay = 3.0
        for call in (lambda: store.open(record), lambda: store.locate(uploaded[1]["sop_instance_uid"])):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as slow:
                call()
            assert 0.45 < time.monotonic() - started < 1.5  # one timeout: a silent PACS is not asked again
            assert "did not answer within 0.5 s" in str(slow.value)
            _no_uid_in(slow.value, row)


def test_pacs_that_stalls_inside_the_object_is_unavailable_after_the_read_timeout(orthanc, uploaded):
    row = max(uploaded, key=lambda r: r["path"].stat().st_size)
    with FrontProxy(orthanc.url) as proxy:
        store = DicomWebStore(f"{proxy.url}/dicom-web", timeout=(1.0, 0.5), retries=2)
        record = store.locate(row["sop_instance_uid"])
        proxy.stall_after = 4096  # headers and the first bytes, then silence
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.open(record)
        assert 0.45 < time.monotonic() - started < 1.5


def test_busy_gateway_is_retried_then_unavailable_and_4xx_is_not_retried(orthanc, uploaded):
    row = uploaded[0]
    with FrontProxy(orthanc.url) as proxy:
        store = DicomWebStore(f"{proxy.url}/dicom-web", timeout=FAST, retries=2)
        record = store.locate(row["sop_instance_uid"])
        proxy.status = 503
        proxy.seen.clear()
        with pytest.raises(StoreUnavailable) as busy:
            store.open(record)
        assert "HTTP 503" in str(busy.value) and len(proxy.seen) == 3
        proxy.status = 400
        proxy.seen.clear()
        with pytest.raises(StoreError) as refused:
            store.open(record)
        assert not isinstance(refused.value, StoreUnavailable)
        assert "HTTP 400" in str(refused.value) and len(proxy.seen) == 1
        _no_uid_in(refused.value, row)
        proxy.status = None
        with store.open(record) as fp:
            assert fp.read() == row["path"].read_bytes()


# ---- credentials ------------------------------------------------------------------------------------

def test_basic_auth_against_an_orthanc_with_users(tmp_path, sample):
    with Orthanc(tmp_path / "locked", users={"wado": "s3cret-pass"}) as locked:
        locked.upload(sample[0]["path"])
        uid = sample[0]["sop_instance_uid"]
        store = DicomWebStore(locked.dicomweb_url, auth="wado:s3cret-pass", timeout=FAST)
        with store.open(store.locate(uid)) as fp:
            assert fp.read() == sample[0]["path"].read_bytes()
        assert "s3cret-pass" not in repr(store.http.auth)
        wrong = DicomWebStore(locked.dicomweb_url, auth="wado:wrong", timeout=FAST)
        with pytest.raises(StoreError) as refused:
            wrong.locate(uid)
        assert "HTTP 401" in str(refused.value) and "wrong" not in str(refused.value)


def test_bearer_token_is_sent_and_never_shown(orthanc, uploaded):
    with FrontProxy(orthanc.url) as proxy:
        store = DicomWebStore(f"{proxy.url}/dicom-web", auth="Bearer tok-123.abc", timeout=FAST)
        assert store.locate(uploaded[0]["sop_instance_uid"]) is not None
        assert proxy.seen and all(auth == "Bearer tok-123.abc" for _, auth in proxy.seen)
        assert "tok-123" not in repr(store.http.auth)


def test_store_auth_text_forms():
    assert parse_store_auth(None) is None and parse_store_auth("") is None
    assert parse_store_auth("user:pa:ss").password == "pa:ss"
    with pytest.raises(ValueError) as bad:
        parse_store_auth("just-a-secret")
    assert "just-a-secret" not in str(bad.value)


# ---- memory -----------------------------------------------------------------------------------------

def test_a_100_mb_object_is_spooled_to_disk_not_held_in_memory(orthanc, uploaded, tmp_path):
    path, digest = _large_multiframe(tmp_path / "large.dcm", frames=200)  # 512 x 512 x 16 bit x 200 = 100 MiB
    orthanc.upload(path)
    uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    store = DicomWebStore(orthanc.dicomweb_url, timeout=(1.0, 30.0), spool_threshold=8 << 20)
    record = store.locate(uid)
    with PeakRss() as peak:
        fp = store.open(record)
    with fp:
        assert fp.seek(0, os.SEEK_END) == path.stat().st_size
        fp.seek(0)
        assert _sha256(fp) == digest
    assert peak.growth < 40 << 20, f"RSS grew by {peak.growth >> 20} MiB while fetching 100 MiB"


def _large_multiframe(path: Path, frames: int) -> tuple[Path, str]:
    """A multi-frame image written piece by piece, so that the test itself never holds its pixels."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (generate_uid() for _ in range(3))
    ds.Modality, ds.PatientID, ds.PatientName = "OT", "WADOWS-LARGE", "Large^Test"
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    frame = bytes(range(256)) * 2048  # one 512 x 512 x 2-byte frame
    with open(path, "wb") as out:
        ds.save_as(out, enforce_file_format=True)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(frame) * frames))
        for _ in range(frames):
            out.write(frame)
    with open(path, "rb") as fp:
        return path, _sha256(fp)


def _sha256(fp) -> str:
    digest = hashlib.sha256()
    while chunk := fp.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


class PeakRss:
    """The highest resident set size seen while the block runs, above what it was before."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.process = psutil.Process()
        self.growth = 0

    def __enter__(self):
        self.before = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.growth = max(self.growth, self.process.memory_info().rss - self.before)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth = max(self.growth, self.process.memory_info().rss - self.before)


# ---- local copies of whole series ------------------------------------------------------------------

def _largest_series(uploaded: list[dict]) -> list[dict]:
    series = max({r["series_uid"] for r in uploaded}, key=lambda s: sum(r["series_uid"] == s for r in uploaded))
    return [r for r in uploaded if r["series_uid"] == series]


def _wanted(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["study_uid"], r["series_uid"], r["sop_instance_uid"]) for r in rows]


def test_local_copies_are_files_with_an_identity_and_go_when_closed(orthanc, uploaded, tmp_path):
    rows = _largest_series(uploaded)
    assert len(rows) >= 5 and len({r["transfer_syntax_uid"] for r in rows}) >= 5
    with FrontProxy(orthanc.url) as proxy:
        store = DicomWebStore(f"{proxy.url}/dicom-web", timeout=FAST, spool_dir=str(tmp_path))
        view = store.local_copies(_wanted(rows))
        fetched = [path for path, _ in proxy.seen if "/instances/" in path or "/metadata/" in path]
        assert fetched == [] and sum("/series/" in p and not p.split("?")[0].endswith("/instances")
                                     for p, _ in proxy.seen) == 1
        for row in rows:
            record = view.locate(row["sop_instance_uid"])
            assert record.transfer_syntax_uid == row["transfer_syntax_uid"]  # read from the copy itself
            assert view.available(record) == row["path"].stat().st_size
            with view.open(record) as first, view.open(record) as second:
                assert first.read() == row["path"].read_bytes()
                assert file_identity(first) == file_identity(second) is not None
        assert len(os.listdir(tmp_path)) == 1
        view.close()
        assert os.listdir(tmp_path) == []
        with view.open(view.locate(rows[0]["sop_instance_uid"])) as fp:  # from the PACS again, as ever
            assert fp.read() == rows[0]["path"].read_bytes()


def test_a_few_instances_of_a_series_are_not_worth_a_series_request(orthanc, uploaded, tmp_path):
    rows = _largest_series(uploaded)
    store = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, spool_dir=str(tmp_path))
    for few in (rows[:1], rows[:len(rows) // 2 - 1]):
        view = store.local_copies(_wanted(few))
        assert os.listdir(tmp_path) == []
        with view.open(view.locate(few[0]["sop_instance_uid"])) as fp:
            assert fp.read() == few[0]["path"].read_bytes()


def test_a_view_dropped_without_closing_takes_its_copies_along(orthanc, uploaded, tmp_path):
    rows = _largest_series(uploaded)
    store = DicomWebStore(orthanc.dicomweb_url, timeout=FAST, spool_dir=str(tmp_path))
    view = store.local_copies(_wanted(rows))
    assert os.listdir(tmp_path)
    del view
    assert os.listdir(tmp_path) == []
    again = store.local_copies(_wanted(rows))
    assert len(os.listdir(tmp_path)) == 1
    again.close()
    assert os.listdir(tmp_path) == []


def _part(path: Path, declared: int | None = -1, chunks: int = 3, fail_after: int | None = None) -> DicomPart:
    data = path.read_bytes()
    size = -(-len(data) // chunks)

    def pieces():
        for i in range(0, len(data), size):
            if fail_after is not None and i >= fail_after:
                raise requests.exceptions.ChunkedEncodingError("connection lost")
            yield data[i:i + size]

    return DicomPart(len(data) if declared == -1 else declared, pieces())


def test_the_spool_keeps_wanted_whole_instances_of_the_series_only(uploaded, tmp_path):
    rows = _largest_series(uploaded)
    other = next(r for r in uploaded if r["series_uid"] != rows[0]["series_uid"])
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a DICOM object" * 100)
    study, series = rows[0]["study_uid"], rows[0]["series_uid"]
    wanted = {r["sop_instance_uid"] for r in rows[:4]}
    spool = SeriesSpool(str(tmp_path / "spool"), 1 << 30)
    parts = [_part(junk), _part(other["path"]), _part(rows[4]["path"]),  # not DICOM, another series, unwanted
             _part(rows[0]["path"]), _part(rows[1]["path"]), _part(rows[1]["path"]),  # the second twice
             _part(rows[2]["path"], fail_after=1)]  # cut inside the part
    stopped = spool.take(parts, study, series, wanted)
    assert stopped == "ChunkedEncodingError"
    assert spool.copy(rows[0]["sop_instance_uid"]).path
    assert [spool.copy(r["sop_instance_uid"]) for r in rows[1:]] == [None] * (len(rows) - 1)
    assert os.listdir(spool.directory) == [os.path.basename(spool.copy(rows[0]["sop_instance_uid"]).path)]
    assert spool.take([_part(rows[3]["path"], declared=7)], study, series, wanted).startswith("a part of")
    assert spool.copy(rows[3]["sop_instance_uid"]) is None and len(os.listdir(spool.directory)) == 1
    spool.close()
    assert not os.path.exists(spool.directory)


def test_the_spool_stops_at_its_budget_and_before_the_disk_is_full(uploaded, tmp_path, monkeypatch):
    rows = _largest_series(uploaded)
    study, series = rows[0]["study_uid"], rows[0]["series_uid"]
    wanted = {r["sop_instance_uid"] for r in rows}
    sizes = [r["path"].stat().st_size for r in rows]
    spool = SeriesSpool(str(tmp_path), sizes[0] + sizes[1] + sizes[2] - 1)
    assert spool.take([_part(r["path"]) for r in rows], study, series, wanted) == "the request's spool budget is spent"
    assert [spool.copy(r["sop_instance_uid"]) is not None for r in rows[:3]] == [True, True, False]
    undeclared = SeriesSpool(str(tmp_path), sizes[0] + sizes[1] - 1)  # found out while writing
    assert undeclared.take([_part(r["path"], declared=None) for r in rows], study, series, wanted).endswith("spent")
    assert undeclared.copy(rows[1]["sop_instance_uid"]) is None and len(os.listdir(undeclared.directory)) == 1
    monkeypatch.setattr(series_spool, "MIN_FREE_BYTES", shutil.disk_usage(tmp_path).free + 1)
    full = SeriesSpool(str(tmp_path), 1 << 30)
    assert full.take([_part(r["path"]) for r in rows], study, series, wanted) == "the spool's disk is nearly full"
    assert os.listdir(full.directory) == []


def test_a_spool_left_by_an_ended_process_is_removed(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    left = tmp_path / f"{series_spool.PREFIX}-{series_spool._host_tag()}-{ended.pid}-abcdefgh"
    other_host = tmp_path / f"{series_spool.PREFIX}-00000000-{ended.pid}-abcdefgh"
    live = tmp_path / f"{series_spool.PREFIX}-{series_spool._host_tag()}-{os.getppid()}-abcdefgh"
    for folder in (left, other_host, live):
        folder.mkdir()
        (folder / "1").write_bytes(b"x")
    SeriesSpool(str(tmp_path), 1).close()
    assert sorted(os.listdir(tmp_path)) == sorted([other_host.name, live.name])


# ---- helpers ----------------------------------------------------------------------------------------

def _no_uid_in(exc: BaseException, row: dict) -> None:
    text = str(exc)
    for key in ("study_uid", "series_uid", "sop_instance_uid"):
        assert str(row[key]) not in text
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)  # no chained URL


class FrontProxy:
    """A tiny HTTP front for Orthanc that can answer late, stall inside a body, or answer a fixed status;
    it records (path, Authorization) of every request."""

    def __init__(self, target: str):
        self.target = target
        self.delay = 0.0
        self.stall_after: int | None = None
        self.status: int | None = None
        self.seen: list[tuple[str, str | None]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FrontProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy.seen.append((self.path, self.headers.get("Authorization")))
                if proxy.status is not None:
                    self.send_response(proxy.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(proxy.delay)
                headers = {name: self.headers[name] for name in ("Accept", "Accept-Encoding") if name in self.headers}
                upstream = requests.get(proxy.target + self.path, headers=headers, stream=True, timeout=30)
                self.send_response(upstream.status_code)
                for name in ("Content-Type", "Content-Length", "Content-Encoding"):
                    if name in upstream.headers:
                        self.send_header(name, upstream.headers[name])
                if "Content-Length" not in upstream.headers:  # a series: the body ends when the connection does
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                sent = 0
                for chunk in upstream.raw.stream(65536, decode_content=False):
                    if proxy.stall_after is not None and sent >= proxy.stall_after:
                        time.sleep(3.0)
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                self.wfile.flush()

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler
