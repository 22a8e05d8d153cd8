"""The audit trail: JSON lines, keyed hashes instead of UIDs, whole lines from many threads and processes."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
import threading
from datetime import datetime, timedelta, timezone

import pytest

from wadows.policy.access import Caller
from wadows.policy.audit import AuditLog

KEY = b"k" * 32
UIDS = [f"1.2.826.0.1.3680043.10.1234.{i}.{i * 7919}" for i in range(150)]
ALICE = Caller("user", "alice", True, True)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_json_line_per_record_with_hashed_uids_only(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, KEY)
    audit.record(operation="RetrieveImagingDocumentSet", caller=ALICE, documents=UIDS[:3], returned=2,
                 refused=["XDSDocumentUniqueIdError"], anonymized=2, duration_ms=12.345,
                 outcome="urn:ihe:iti:2007:ResponseStatusType:PartialSuccess")
    audit.record(operation="WADO-URI", caller=Caller("anonymous", None, True, False), documents=[UIDS[0]],
                 refused=["urn:dicom:wado:0001", "urn:dicom:wado:0001"], outcome=404)
    first, second = lines(path)
    assert datetime.now(timezone.utc) - datetime.fromisoformat(first["time"]) < timedelta(minutes=1)
    assert first["time"].endswith("Z")
    assert first | {"time": None, "documents": None} == {
        "time": None, "caller_kind": "user", "caller_name": "alice", "operation": "RetrieveImagingDocumentSet",
        "requested": 3, "returned": 2, "refused": 1, "refusals": {"XDSDocumentUniqueIdError": 1}, "anonymized": 2,
        "outcome": "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess", "delivered": True, "duration_ms": 12.3,
        "documents": None, "documents_omitted": 0}
    assert all(re.fullmatch(r"h:[0-9a-f]{32}", h) for h in first["documents"])
    assert len(set(first["documents"])) == 3
    assert second["documents"][0] == first["documents"][0]  # linkable across records
    assert (second["caller_kind"], second["caller_name"], second["outcome"]) == ("anonymous", None, 404)
    assert second["refusals"] == {"urn:dicom:wado:0001": 2} and second["refused"] == 2
    raw = path.read_bytes()
    for uid in UIDS[:3]:
        assert uid.encode() not in raw
    assert b"1.2.826" not in raw  # nor any part of one
    assert KEY not in raw


def test_hash_needs_the_key(tmp_path):
    same = AuditLog(tmp_path / "a", KEY)
    other = AuditLog(tmp_path / "b", b"x" * 32)
    assert same.hash_uid(UIDS[0]) == AuditLog(tmp_path / "c", KEY).hash_uid(UIDS[0])
    assert same.hash_uid(UIDS[0]) != other.hash_uid(UIDS[0])
    assert same.hash_uid(UIDS[0]) != same.hash_uid(UIDS[1])
    assert same.hash_uid(UIDS[0] + "\x00") == same.hash_uid(UIDS[0] + " ") == same.hash_uid(UIDS[0])


def test_documents_list_is_capped_and_says_how_many_were_left_out(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path, KEY, max_documents=100).record(operation="RetrieveImagingDocumentSet", outcome="x",
                                                  documents=UIDS)
    (line,) = lines(path)
    assert len(line["documents"]) == 100 and line["documents_omitted"] == 50 and line["requested"] == 150
    assert len(path.read_bytes()) < 8192


def test_file_is_0600(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path, KEY).record(operation="WADO-URI", outcome=200)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("fields", [
    {"operation": "1.2.840.10008.1.2", "outcome": 200},               # a UID where an operation name goes
    {"operation": "WADO-URI", "outcome": "DOE^JOHN"},                   # a patient name as an outcome
    {"operation": "WADO-URI", "outcome": 200, "refused": ["1.2.3.4"]},  # a UID as a refusal code
    {"operation": "WADO-URI", "outcome": 200, "returned": -1},
    {"operation": "WADO-URI", "outcome": 200, "anonymized": "2"},
])
def test_values_that_are_not_codes_or_counts_are_refused(tmp_path, fields):
    path = tmp_path / "audit.jsonl"
    with pytest.raises(ValueError) as info:
        AuditLog(path, KEY).record(**fields)
    assert "DOE" not in str(info.value) and "1.2.3" not in str(info.value)
    assert not path.exists()


def test_unknown_fields_are_refused(tmp_path):
    with pytest.raises(TypeError):
        AuditLog(tmp_path / "a", KEY).record(operation="WADO-URI", outcome=200, patient_name="DOE^JOHN")


def test_short_key_refused(tmp_path):
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "a", b"short")


def test_disabled_audit_does_nothing(tmp_path):
    def untouchable():
        raise AssertionError("a disabled audit must not even look at the documents")
        yield

    audit = AuditLog(None, b"")
    assert not audit.enabled
    audit.record(operation="not checked either", outcome=200, documents=untouchable())
    assert list(tmp_path.iterdir()) == []


def _write_many(path, worker, count):
    audit = AuditLog(path, KEY)
    for i in range(count):
        audit.record(operation="RetrieveImagingDocumentSet", outcome=200, returned=worker, anonymized=i,
                     documents=UIDS[:100])


def _check_intact(path, writers, count):
    raw = path.read_text()
    assert raw.endswith("\n")
    records = [json.loads(line) for line in raw.splitlines()]  # a torn line would not parse
    assert len(records) == writers * count
    for worker in range(writers):
        assert sorted(r["anonymized"] for r in records if r["returned"] == worker) == list(range(count))
    assert all(len(r["documents"]) == 100 for r in records)


def test_concurrent_threads_write_whole_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    threads = [threading.Thread(target=_write_many, args=(path, w, 150)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_intact(path, 8, 150)


def test_concurrent_processes_write_whole_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(path, w, 150)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    _check_intact(path, 6, 150)


def test_a_single_string_is_one_document_and_one_code(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, KEY)
    audit.record(operation="WADO-URI", outcome=404, documents=UIDS[0], refused="urn:dicom:wado:0001")
    (line,) = lines(path)
    assert line["documents"] == [audit.hash_uid(UIDS[0])] and line["refusals"] == {"urn:dicom:wado:0001": 1}
