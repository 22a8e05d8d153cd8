"""Callers that hang up in the middle of a large RAD-69 answer must cost the server nothing afterwards.

A real `wadows serve` (2 workers, 4 threads each) over 20 synthetic 5 MB instances; 100 whole-study requests,
plain and anonymized mixed, whose clients read a few KB of the streamed answer and then close the socket (10 at
a time: more than the server has threads), after a warm-up in which every worker started its prepare-ahead
helper. Afterwards the master and the workers (the same processes: none may
have died and been replaced, which would hide a leak) hold no file of the store, no more sockets, pipes or other
descriptors than before (a constant SLACK of 2 per process), index descriptors only as the per-thread SQLite
connections explain (see FDS_PER_THREAD), and no more threads than the configured pool; and the server still
answers, more whole studies at once than it has threads. The counts come from /proc/<pid>/fd and
/proc/<pid>/task, so the test runs on Linux only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from support import ServerProcess, envelope, rad69_body

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc (Linux)")

WORKERS = 2
THREADS = 4                 # per worker; set through WADOWS_SERVER_THREADS
INSTANCES = 20
ROWS, COLUMNS = 1280, 2048  # 16-bit: 5,242,880 bytes of pixel data per instance
ABANDONED = 100
CONCURRENT = 10
SETTLE_SECONDS = 15
# Descriptors that may exist for a moment without being a leak: a kept-alive connection whose close the worker's
# poller has not processed yet, and the audit trail, which is opened for each record and closed again. The
# settle loop waits for them to go; the slack only keeps a slow machine from failing on them.
SLACK = 2
# Each pool thread opens its own read-only SQLite connection on its first request (wadows/store/index.py,
# threading.local) and keeps it: the index file and its WAL (the -shm file is shared within a process). A worker
# also holds the master's connection, inherited over the fork. So the index may hold, in a worker, at most the
# master's descriptors plus two per pool thread: more means connections are being opened and not kept.
FDS_PER_THREAD = 2

HEADERS = {"Content-Type": "application/soap+xml; charset=utf-8"}
STATUS = re.compile(rb'ResponseStatusType:(\w+)"')


def _build_store(folder: Path) -> list[tuple[str, str, str]]:
    folder.mkdir(parents=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(20)
    study = generate_uid(entropy_srcs=["wadows disconnect study"])
    series = generate_uid(entropy_srcs=["wadows disconnect series"])
    docs = []
    for i in range(INSTANCES):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["wadows disconnect sop", str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.InstanceNumber = i + 1
        ds.Rows, ds.Columns = ROWS, COLUMNS
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, size=(ROWS, COLUMNS), dtype=np.uint16).tobytes()
        ds.save_as(folder / f"big{i:02d}.dcm", enforce_file_format=True)
        docs.append((study, series, ds.SOPInstanceUID))
    return docs


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("disconnects")
    docs = _build_store(root / "store")
    server = ServerProcess(root / "store", root / "data", root / "server.log",
                           ["--unauthenticated", "full", "--workers", str(WORKERS)],
                           env={"WADOWS_SERVER_THREADS": str(THREADS)})
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(server.process.pid).children()) < WORKERS:
            assert time.monotonic() < deadline, f"the workers did not start:\n{server.log()}"
            time.sleep(0.1)
        server.store = (root / "store").resolve()   # /proc/<pid>/fd shows resolved paths
        server.docs = docs
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ observing

def _snapshot(server: ServerProcess) -> dict[int, dict]:
    """Per process (master, then workers): role, descriptor targets, thread count."""
    master = psutil.Process(server.process.pid)
    out = {}
    for role, proc in [("master", master)] + [("worker", p) for p in master.children()]:
        targets = []
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                targets.append(os.readlink(f"/proc/{proc.pid}/fd/{fd}"))
            except OSError:      # closed between listdir and readlink
                pass
        out[proc.pid] = {"role": role, "fds": targets, "threads": len(os.listdir(f"/proc/{proc.pid}/task"))}
    return out


def _kind(target: str, store: Path) -> str:
    if target.startswith(str(store)):
        return "store file"
    if "index.sqlite3" in target:
        return "index"
    return re.sub(r":\[\d+\]$", "", target)   # socket:[123] -> socket, pipe:[..] -> pipe; paths stay


def _problems(before: dict, after: dict, store: Path) -> list[str]:
    problems = []
    master_index = next(sum(1 for t in p["fds"] if _kind(t, store) == "index")
                        for p in before.values() if p["role"] == "master")
    if set(after) != set(before):
        problems.append(f"the server's processes changed: {sorted(before)} -> {sorted(after)} (a worker died?)")
    for pid, now in after.items():
        was = before.get(pid)
        if was is None:
            continue
        name = f"{now['role']} {pid}"
        kinds_now = Counter(_kind(t, store) for t in now["fds"])
        kinds_was = Counter(_kind(t, store) for t in was["fds"])
        if kinds_now["store file"]:
            problems.append(f"{name} still holds {kinds_now['store file']} file(s) of the store open")
        if now["role"] == "worker":
            pool_threads = now["threads"] - 1
            allowed_index = master_index + FDS_PER_THREAD * pool_threads
            why = f"the master's {master_index} + {FDS_PER_THREAD} x {pool_threads} pool threads"
        else:
            allowed_index, why = kinds_was["index"], "as many as before"
        if kinds_now["index"] > allowed_index:
            problems.append(f"{name}: {kinds_now['index']} index descriptors, allowed {allowed_index} ({why})")
        others_now = sum(n for k, n in kinds_now.items() if k not in ("index", "store file"))
        others_was = sum(n for k, n in kinds_was.items() if k not in ("index", "store file"))
        if others_now > others_was + SLACK:
            grown = {k: n - kinds_was.get(k, 0) for k, n in kinds_now.items()
                     if n > kinds_was.get(k, 0) and k not in ("index", "store file")}
            problems.append(f"{name}: {others_now} other descriptors, {others_was} before (+{SLACK} allowed); "
                            f"grown: {grown}")
        limit = 1 + THREADS if now["role"] == "worker" else was["threads"]
        if now["threads"] > limit:
            problems.append(f"{name}: {now['threads']} threads, at most {limit} allowed"
                            + (f" (main thread + a pool of {THREADS})" if now["role"] == "worker" else
                               " (as many as before)"))
    return problems


def _start_every_helper(server: ServerProcess, anonymized: bytes) -> None:
    """A worker starts its prepare-ahead helper (wadows.wado.prepare_ahead: a fork server, a helper, the pipes
    to them) on its first large anonymized request and keeps it: part of the warm-up, for every worker."""
    for _ in range(20):
        workers = psutil.Process(server.process.pid).children()
        if all(any(helper.children() for helper in worker.children() if "forkserver" in " ".join(helper.cmdline()))
               for worker in workers):
            return
        with ThreadPoolExecutor(WORKERS * 2) as pool:
            list(pool.map(lambda _: _read_whole(server, anonymized), range(WORKERS * 2)))
    raise AssertionError("the workers did not all start their prepare-ahead helper")


def _describe(snapshot: dict, store: Path) -> str:
    return "; ".join(f"{p['role']} {pid}: {p['threads']} threads, descriptors "
                     f"{dict(Counter(_kind(t, store) for t in p['fds']))}" for pid, p in snapshot.items())


# ------------------------------------------------------------------------------------------------ requesting

def _read_whole(server: ServerProcess, body: bytes) -> tuple[int, str | None, int, int]:
    """(HTTP status, RegistryResponse status, bytes received, MIME parts) of an answer read to its end."""
    with requests.post(server.endpoint, data=body, headers=HEADERS, stream=True, timeout=60) as r:
        boundary = re.search(r'boundary="?([^";]+)"?', r.headers["Content-Type"]).group(1).encode()
        delimiter = b"--" + boundary + b"\r\n"
        received, parts, head, tail = 0, 0, b"", b""
        for chunk in r.iter_content(1 << 20):
            head = head or chunk[:8192]
            parts += chunk.count(delimiter) + (tail[-len(delimiter) + 1:] + chunk[:len(delimiter) - 1]).count(delimiter)
            tail = chunk[-len(delimiter) - 8:]
            received += len(chunk)
        assert tail.endswith(b"--" + boundary + b"--\r\n"), "the answer must end with the closing boundary"
        assert int(r.headers.get("Content-Length", received)) == received
        status = STATUS.search(head)
        return r.status_code, status.group(1).decode() if status else None, received, parts


def _abandon(server: ServerProcess, body: bytes, number: int) -> bytes:
    """Send `body`, read a few KB of the answer, hang up. Returns what was read."""
    wanted = 2048 + 1536 * (number % 10)                 # 2 to 16 KB: inside the envelope or the first document
    if number % 4 == 3:                                  # through requests: stream=True, then close()
        r = requests.post(server.endpoint, data=body, headers=HEADERS, stream=True, timeout=30)
        got = b"HTTP/1.1 %d " % r.status_code + r.raw.read(wanted)
        r.close()
        return got
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(f"POST /wado-ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Content-Type: {HEADERS['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        got = b""
        while len(got) < wanted:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        if number % 2:                                   # abortive close: RST at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()
    return got


# ------------------------------------------------------------------------------------------------ the test

def test_abandoned_downloads_leave_no_descriptors_or_threads(big_server):
    server = big_server
    plain = envelope(rad69_body(server.docs))
    anonymized = envelope(rad69_body(server.docs, anonymize="yes"))
    expected = {}
    for name, body in (("plain", plain), ("anonymized", anonymized)):   # warm-up: what a whole answer is
        status, registry, size, parts = _read_whole(server, body)
        assert (status, registry, parts) == (200, "Success", INSTANCES + 1), name
        assert size > INSTANCES * ROWS * COLUMNS * 2
        expected[name] = size
    _start_every_helper(server, anonymized)
    time.sleep(0.5)
    before = _snapshot(server)

    bodies = [anonymized if i % 3 == 1 else plain for i in range(ABANDONED)]   # a third anonymized
    with ThreadPoolExecutor(CONCURRENT) as pool:
        heads = list(pool.map(lambda item: _abandon(server, item[1], item[0]), enumerate(bodies)))
    for number, head in enumerate(heads):
        assert head.startswith(b"HTTP/1.1 200 "), f"abandoned request {number}: {head[:200]!r}"
        assert b"multipart/related" in head or number % 4 == 3, f"abandoned request {number} was not streaming"

    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        after = _snapshot(server)
        problems = _problems(before, after, server.store)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert not problems, ("after the disconnects:\n  " + "\n  ".join(problems)
                          + "\nbefore: " + _describe(before, server.store) + "\nafter: " + _describe(after, server.store))

    # Still serving, with every thread: more concurrent whole answers than the server has threads.
    with ThreadPoolExecutor(WORKERS * THREADS + 2) as pool:
        answers = list(pool.map(lambda body: _read_whole(server, body), [plain, anonymized] * (WORKERS * THREADS // 2 + 1)))
    for (status, registry, size, parts), name in zip(answers, ["plain", "anonymized"] * len(answers)):
        assert (status, registry, parts, size) == (200, "Success", INSTANCES + 1, expected[name]), name

    # The audit trail and the metrics say which answers were cut short: not one of the abandoned ones is
    # recorded as delivered, every whole one is.
    audit, whole = server.data_dir / "audit.jsonl", 2 + len(answers)
    deadline = time.monotonic() + SETTLE_SECONDS  # a record is written once its answer is out, or cut
    while len(audit.read_text().splitlines()) < whole + ABANDONED and time.monotonic() < deadline:
        time.sleep(0.1)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    cut = [r for r in records if not r["delivered"]]
    assert len(cut) == ABANDONED, f"{len(cut)} of {ABANDONED} abandoned answers recorded as cut short"
    assert len(records) - len(cut) >= whole
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    aborted = sum(int(n) for n in re.findall(r'wadows_requests_total\{[^}]*outcome="aborted"\} (\d+)', metrics))
    assert aborted == ABANDONED

    log = server.log()
    assert "Traceback" not in log, log[-4000:]
    unexpected = [line for line in log.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b|\[(ERROR|CRITICAL)\]", line)]
    assert not unexpected, "\n".join(unexpected[:20])
