"""The folder store: SQLite index (incremental, tolerant of junk, concurrent readers) and FolderStore."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from wadows.dicom.pixel_span import DicomReadError
from wadows.store.base import InstanceGone, InstanceRecord, StoreError
from wadows.store.folder import INDEX_FILE_NAME, FolderStore, index_folder
from wadows.store.index import SCHEMA_VERSION, FolderIndex, IndexSummary, IndexUnusable
from wadows.store.walk import count_files


def source_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


def uid_of(path: Path) -> str:
    return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID


def write_ct_copies(folder: Path, how_many: int, seed: str = "copies") -> list[str]:
    """Copies of CT_small.dcm, each with its own SOP Instance UID; returns the UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(source_file("CT_small.dcm"))
    uids = []
    for n in range(how_many):
        uid = generate_uid(entropy_srcs=[seed, str(n)])
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.save_as(folder / f"ct{n:05d}.dcm", enforce_file_format=True)
        uids.append(uid)
    return uids


# The mixed folder: 4 instances, 1 duplicate, 4 not-instances, 4 unreadable = 13 files.
INSTANCES = {"ct.dcm": "CT_small.dcm", "sr.dcm": "test-SR.dcm",
             "nested/deeper/mr.dcm": "MR_small.dcm", "nested/deflated.dcm": "image_dfl.dcm"}
DUPLICATE = "nested/mr_implicit_twin.dcm"  # MR_small_implicit.dcm: same SOP Instance UID as mr.dcm


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    for rel, source in INSTANCES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_file(source), root / rel)
    shutil.copyfile(source_file("MR_small_implicit.dcm"), root / DUPLICATE)
    # Not instances: text, empty, a raw data set without preamble, a DICOMDIR.
    (root / "notes.txt").write_text("scanned on the old PACS\n")
    (root / "empty.bin").write_bytes(b"")
    shutil.copyfile(source_file("rtstruct.dcm"), root / "nested" / "raw_dataset.dcm")
    shutil.copyfile(Path(str(source_file("CT_small.dcm"))).parent / "dicomdirtests" / "DICOMDIR", root / "DICOMDIR")
    # Unreadable: cut inside the file meta, cut before the UIDs, DICM then garbage, dangling link.
    ct = source_file("CT_small.dcm").read_bytes()
    (root / "cut_in_meta.dcm").write_bytes(ct[:200])
    (root / "nested" / "cut_before_uids.dcm").write_bytes(ct[:420])
    (root / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + random.Random(7).randbytes(3000))
    os.symlink(root / "no-such-file.dcm", root / "dangling.dcm")
    # A link back up the tree must not be walked twice.
    os.symlink(root, root / "nested" / "loop")
    return root


def expected_first_summary() -> dict[str, int]:
    return dict(examined=13, added=4, updated=0, unchanged=0, removed=0,
                skipped_non_dicom=4, skipped_unreadable=4, duplicates=1)


def counts(summary: IndexSummary) -> dict[str, int]:
    return {k: v for k, v in vars(summary).items() if k != "seconds"}


def test_first_update_counts_every_kind_of_file(mixed: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    summary = index.update(mixed)
    assert counts(summary) == expected_first_summary()
    assert index.count() == 4

    ct = mixed / "ct.dcm"
    source = pydicom.dcmread(ct, stop_before_pixels=True)
    assert index.get(source.SOPInstanceUID) == InstanceRecord(
        study_uid=source.StudyInstanceUID,
        series_uid=source.SeriesInstanceUID,
        sop_instance_uid=source.SOPInstanceUID,
        sop_class_uid=source.SOPClassUID,
        transfer_syntax_uid=source.file_meta.TransferSyntaxUID,
        size=ct.stat().st_size,
        locator=str(ct),
        modified_ns=ct.stat().st_mtime_ns,
    )
    deflated = index.get(uid_of(mixed / "nested" / "deflated.dcm"))
    assert deflated is not None and deflated.transfer_syntax_uid == pydicom.uid.DeflatedExplicitVRLittleEndian
    assert index.get("1.2.3.4.5.6.7.8.9") is None
    assert Path(index.get(uid_of(mixed / "nested" / "deeper" / "mr.dcm")).locator).is_absolute()


def test_summary_reads_as_one_line(mixed: Path, tmp_path: Path) -> None:
    text = str(FolderIndex(tmp_path / "i.sqlite3").update(mixed))
    assert "\n" not in text
    for phrase in ("examined 13", "4 added", "4 non-DICOM", "4 unreadable", "1 duplicate"):
        assert phrase in text


def test_second_update_reopens_nothing(mixed: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    index.update(mixed)
    uids = {rel: uid_of(mixed / rel) for rel in INSTANCES}
    # Turn every indexed file into garbage of the same size and mtime: if the second update
    # reopened any of them, it would find no DICM and drop it from the index.
    for rel in INSTANCES:
        path = mixed / rel
        before = path.stat()
        path.write_bytes(b"\xff" * before.st_size)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    summary = index.update(mixed)
    assert counts(summary) == dict(expected_first_summary(), added=0, unchanged=4)
    for rel, uid in uids.items():
        assert index.get(uid).locator == str(mixed / rel)


def test_second_update_does_not_reopen_remembered_skips(mixed: Path, tmp_path: Path) -> None:
    # A real instance with its magic spoiled: same size either way, so restoring the magic
    # under the old mtime is only noticed by an update that reopens the file.
    [uid] = write_ct_copies(tmp_path / "made", 1, seed="spoiled")
    content = (tmp_path / "made" / "ct00000.dcm").read_bytes()
    spoiled = mixed / "spoiled.dcm"
    spoiled.write_bytes(content[:128] + b"DICX" + content[132:])
    index = FolderIndex(tmp_path / "index.sqlite3")
    assert index.update(mixed).skipped_non_dicom == 5

    before = spoiled.stat()
    spoiled.write_bytes(content)
    os.utime(spoiled, ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = index.update(mixed)
    assert (summary.skipped_non_dicom, summary.added) == (5, 0)
    assert index.get(uid) is None

    os.utime(spoiled, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))  # now it changed
    summary = index.update(mixed)
    assert (summary.skipped_non_dicom, summary.added) == (4, 1)
    assert index.get(uid).locator == str(spoiled)


def test_changed_file_is_read_again(mixed: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    index.update(mixed)
    ct = mixed / "ct.dcm"
    old_uid = uid_of(ct)
    ds = pydicom.dcmread(ct)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["changed"])
    ds.PatientName = "Longer^Name^Than^Before"
    ds.save_as(ct, enforce_file_format=True)
    os.utime(ct, ns=(ct.stat().st_atime_ns, ct.stat().st_mtime_ns + 5_000_000_000))

    summary = index.update(mixed)
    assert (summary.updated, summary.unchanged, summary.added, summary.removed) == (1, 3, 0, 0)
    assert index.get(old_uid) is None
    record = index.get(ds.SOPInstanceUID)
    assert record.locator == str(ct) and record.size == ct.stat().st_size


def test_same_size_content_change_with_new_mtime_is_noticed(mixed: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    index.update(mixed)
    sr = mixed / "sr.dcm"
    uid = uid_of(sr)
    size = sr.stat().st_size
    sr.write_bytes(b"\0" * size)  # same size, new mtime: no longer DICOM
    os.utime(sr, ns=(sr.stat().st_atime_ns, sr.stat().st_mtime_ns + 1_000_000_000))

    summary = index.update(mixed)
    assert summary.removed == 1 and summary.skipped_non_dicom == 5
    assert index.get(uid) is None and index.count() == 3


def test_deleted_file_leaves_and_its_duplicate_takes_over(mixed: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    index.update(mixed)
    mr_uid = uid_of(mixed / "nested" / "deeper" / "mr.dcm")
    (mixed / "nested" / "deeper" / "mr.dcm").unlink()

    summary = index.update(mixed)
    # The twin with the same UID is indexed in the same update, not one update later.
    assert (summary.examined, summary.removed, summary.added, summary.duplicates) == (12, 1, 1, 0)
    assert index.get(mr_uid).locator == str(mixed / DUPLICATE)
    assert index.get(mr_uid).transfer_syntax_uid == pydicom.uid.ImplicitVRLittleEndian

    (mixed / "ct.dcm").unlink()
    summary = index.update(mixed)
    assert summary.removed == 1 and index.count() == 3


def test_new_file_is_added(mixed: Path, tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    index.update(mixed)
    [uid] = write_ct_copies(mixed / "later", 1, seed="new")
    summary = index.update(mixed)
    assert (summary.added, summary.unchanged, summary.examined) == (1, 4, 14)
    assert index.get(uid).locator == str(mixed / "later" / "ct00000.dcm")


def test_progress_reports_each_examined_file_and_count_gives_the_total(mixed: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    FolderIndex(tmp_path / "index.sqlite3").update(mixed, progress=seen.append)
    assert seen == list(range(1, 14))
    assert count_files(mixed) == 13


def test_schema_version_change_rebuilds(mixed: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    FolderIndex(db).update(mixed)
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    index = FolderIndex(db)
    assert index.count() == 0
    assert index.update(mixed).added == 4
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_damaged_index_file_is_rebuilt(mixed: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    db.write_bytes(b"this is not an sqlite database" * 100)
    index = FolderIndex(db)
    assert counts(index.update(mixed)) == expected_first_summary()


def test_index_kept_inside_the_store_is_skipped_as_not_dicom(mixed: Path) -> None:
    index = FolderIndex(mixed / ".wadows" / "index.sqlite3")
    first = index.update(mixed)
    assert first.added == 4
    second = index.update(mixed)
    assert second.unchanged == 4 and second.added == 0 and index.count() == 4


def test_info_logs_carry_counts_not_uids(mixed: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    uids = [uid_of(mixed / rel) for rel in INSTANCES]
    with caplog.at_level(logging.INFO, logger="wadows"):
        FolderIndex(tmp_path / "index.sqlite3").update(mixed)
    info = [r.getMessage() for r in caplog.records if r.name.startswith("wadows") and r.levelno >= logging.INFO]
    assert any("4 added" in line for line in info)
    assert not any(uid in line for uid in uids for line in info)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_file_is_unreadable(mixed: Path, tmp_path: Path) -> None:
    (mixed / "ct.dcm").chmod(0)
    summary = FolderIndex(tmp_path / "index.sqlite3").update(mixed)
    assert summary.added == 3 and summary.skipped_unreadable == 5


def test_missing_root_is_an_error_not_an_empty_store(tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "index.sqlite3")
    with pytest.raises(NotADirectoryError):
        index.update(tmp_path / "absent")


# ---- concurrency -----------------------------------------------------------------------------

def test_eight_threads_look_up_concurrently(tmp_path: Path) -> None:
    uids = write_ct_copies(tmp_path / "store", 120)
    index = FolderIndex(tmp_path / "index.sqlite3")
    assert index.update(tmp_path / "store").added == 120
    barrier = threading.Barrier(8)

    def look_up_all(seed: int) -> tuple[int, int, int]:
        barrier.wait()  # start together so the lookups really overlap
        order = uids[:]
        random.Random(seed).shuffle(order)
        found = sum(1 for uid in order * 5 if index.get(uid).sop_instance_uid == uid)
        missing = sum(1 for n in range(50) if index.get(f"1.2.3.{seed}.{n}") is None)
        return found, missing, index.count()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(look_up_all, range(8)))
    assert results == [(600, 50, 120)] * 8


def test_readers_keep_working_while_an_update_commits(tmp_path: Path) -> None:
    uids = write_ct_copies(tmp_path / "store", 40)
    index = FolderIndex(tmp_path / "index.sqlite3")
    index.update(tmp_path / "store")
    write_ct_copies(tmp_path / "store" / "more", 300, seed="more")
    stop = threading.Event()
    errors: list[BaseException] = []
    lookups = [0]

    def keep_reading() -> None:
        try:
            while not stop.is_set():
                for uid in uids:
                    assert index.get(uid) is not None
                    lookups[0] += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    readers = [threading.Thread(target=keep_reading) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        summary = FolderIndex(tmp_path / "index.sqlite3").update(tmp_path / "store")
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert summary.added == 300 and index.count() == 340 and lookups[0] > 0


# ---- FolderStore -------------------------------------------------------------------------------

def test_folder_store_locates_opens_and_counts(mixed: Path, tmp_path: Path) -> None:
    store = FolderStore(mixed, tmp_path / "data" / INDEX_FILE_NAME)
    assert store.count() == 0
    assert store.refresh().added == 4
    assert store.count() == 4

    record = store.locate(uid_of(mixed / "sr.dcm"))
    with store.open(record) as fp:
        assert fp.read() == (mixed / "sr.dcm").read_bytes()
    assert store.locate("1.2.3.4") is None


def test_open_of_a_deleted_file_says_gone(mixed: Path, tmp_path: Path) -> None:
    store = FolderStore(mixed, tmp_path / INDEX_FILE_NAME)
    store.refresh()
    record = store.locate(uid_of(mixed / "ct.dcm"))
    (mixed / "ct.dcm").unlink()
    with pytest.raises(InstanceGone) as caught:
        store.open(record)
    assert str(mixed) not in str(caught.value) and record.sop_instance_uid not in str(caught.value)


def test_open_of_a_grown_file_still_opens(mixed: Path, tmp_path: Path) -> None:
    store = FolderStore(mixed, tmp_path / INDEX_FILE_NAME)
    store.refresh()
    record = store.locate(uid_of(mixed / "ct.dcm"))
    with open(mixed / "ct.dcm", "ab") as fp:
        fp.write(b"\0" * 10)
    with store.open(record) as fp:
        assert len(fp.read()) == record.size + 10


def rewrite(path: Path, change) -> None:
    """Rewrite an indexed file in place (new size and mtime), as a PACS re-sending a corrected copy would."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


def test_a_file_rewritten_since_indexing_with_the_same_instance_is_served(mixed: Path, tmp_path: Path) -> None:
    store = FolderStore(mixed, tmp_path / INDEX_FILE_NAME)
    store.refresh()
    record = store.locate(uid_of(mixed / "ct.dcm"))
    rewrite(mixed / "ct.dcm", lambda ds: setattr(ds, "SeriesDescription", "corrected after indexing, longer"))
    assert store.available(record) == (mixed / "ct.dcm").stat().st_size != record.size
    with store.open(record) as fp:
        assert fp.read() == (mixed / "ct.dcm").read_bytes()


@pytest.mark.parametrize("how,error", [
    ("another instance", InstanceGone),
    ("another transfer syntax", StoreError),
    ("cut in its pixel data", DicomReadError),
    ("bytes overwritten in its header", DicomReadError),
])
def test_a_file_rewritten_since_indexing_into_something_else_is_refused(mixed: Path, tmp_path: Path, how: str,
                                                                        error: type[Exception]) -> None:
    """The plain copy sends files byte for byte without parsing them: a changed file must be checked first."""
    ct = mixed / "ct.dcm"
    store = FolderStore(mixed, tmp_path / INDEX_FILE_NAME)
    store.refresh()
    record = store.locate(uid_of(ct))
    if how == "another instance":
        rewrite(ct, lambda ds: setattr(ds, "SOPInstanceUID", generate_uid()))
    elif how == "another transfer syntax":
        rewrite(ct, lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian))
    elif how == "cut in its pixel data":
        ct.write_bytes(ct.read_bytes()[:-2000])  # past the trailing padding, into the pixels
    else:
        data = bytearray(ct.read_bytes())
        data[300:364] = random.Random(3).randbytes(64)
        ct.write_bytes(bytes(data))
    for call in (store.available, store.open):
        with pytest.raises(error) as caught:
            call(record)
        assert str(mixed) not in str(caught.value) and record.sop_instance_uid not in str(caught.value)


def test_a_data_dir_that_is_a_file_is_named_in_the_error(mixed: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(IndexUnusable, match="taken"):
        FolderStore(mixed, tmp_path / "taken" / INDEX_FILE_NAME)


def test_index_folder_without_a_tty_indexes_quietly(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "fresh" / "data"
    summary = index_folder(mixed, data_dir, show_progress=True)  # pytest's stderr is no TTY
    assert counts(summary) == expected_first_summary()
    assert (data_dir / INDEX_FILE_NAME).is_file()
    assert capsys.readouterr().err == ""
    assert FolderStore(mixed, data_dir / INDEX_FILE_NAME).count() == 4


def test_index_folder_draws_a_bar_on_a_terminal(mixed: Path, tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a bar needs columns
    script = ("import sys; from pathlib import Path; from wadows.store.folder import index_folder; "
              "print(index_folder(Path(sys.argv[1]), Path(sys.argv[2])).examined)")
    child = subprocess.run([sys.executable, "-c", script, str(mixed), str(tmp_path / "data")],
                           stderr=terminal, stdout=subprocess.PIPE, timeout=120)
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal side is closed and drained
            break
        if not chunk:
            break
        drawn += chunk
    os.close(main)
    assert child.returncode == 0 and child.stdout.strip() == b"13"
    assert b"indexing" in drawn and b"13/13" in drawn
