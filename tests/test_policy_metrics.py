"""Shared counters: one set for all forked workers, rendered in the Prometheus text format."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time

import pytest

from wadows.policy.metrics import CONTENT_TYPE, Metrics, outcome_label
from wadows.wado import codes

SAMPLE = re.compile(r'(wadows_[a-z_]+)(\{[a-z_]+="[^"\\\n]*"(,[a-z_]+="[^"\\\n]*")*\})? (\d+(\.\d+)?(e[+-]\d+)?)')


def parse(text: bytes) -> dict[str, float]:
    """Check every line of the exposition format and return {sample with labels: value}."""
    typed: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.decode("utf-8").splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "summary") and name.startswith("wadows_")
            typed[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, line
            name = match.group(1)
            family = re.sub(r"_(sum|count)$", "", name) if name not in typed else name
            assert family in typed, f"{name} has no TYPE line before it"
            samples[name + (match.group(2) or "")] = float(match.group(4))
    return samples


def test_render_counts_a_request(tmp_path):
    m = Metrics()
    m.count_request("RetrieveImagingDocumentSet", codes.PARTIAL_SUCCESS, "user", returned=3, refused=1,
                    anonymized=2, seconds=0.25)
    m.count_request("WADO-URI", 200, "anonymous", returned=1, anonymized=1, seconds=0.5)
    m.count_authentication_failure()
    s = parse(m.render())
    assert s['wadows_requests_total{operation="RetrieveImagingDocumentSet",outcome="partial_success"}'] == 1
    assert s['wadows_requests_total{operation="WADO-URI",outcome="success"}'] == 1
    assert s['wadows_requests_total{operation="WADO-URI",outcome="failure"}'] == 0
    assert s['wadows_callers_total{kind="user"}'] == 1 and s['wadows_callers_total{kind="anonymous"}'] == 1
    assert s['wadows_callers_total{kind="certificate"}'] == 0
    assert s["wadows_documents_returned_total"] == 4
    assert s["wadows_documents_refused_total"] == 1
    assert s["wadows_documents_anonymized_total"] == 3
    assert s["wadows_authentication_failures_total"] == 1
    assert s['wadows_request_duration_seconds_sum{operation="WADO-URI"}'] == 0.5
    assert s['wadows_request_duration_seconds_count{operation="RetrieveImagingDocumentSet"}'] == 1
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_labels_come_from_fixed_lists_never_from_the_request():
    m = Metrics()
    uid, name = "1.2.826.0.1.3680043.10.99", "alice"
    m.count_request(uid, name, name)  # misuse: request values where labels go
    text = m.render()
    assert uid.encode() not in text and name.encode() not in text
    assert parse(text)['wadows_requests_total{operation="other",outcome="other"}'] == 1
    with pytest.raises(ValueError):
        Metrics(operations=['bad"label'])


@pytest.mark.parametrize("status, label", [
    (codes.SUCCESS, "success"), (codes.PARTIAL_SUCCESS, "partial_success"), (codes.FAILURE, "failure"),
    (200, "success"), (204, "success"), (401, "unauthorized"), (403, "forbidden"), (404, "failure"),
    (500, "fault"), ("fault", "fault"), ("something else", "other")])
def test_outcome_label(status, label):
    assert outcome_label(status) == label


def _hammer(m: Metrics, count: int):
    for _ in range(count):
        m.count_request("WADO-URI", 200, "certificate", returned=1)


def test_forked_child_increments_what_the_parent_renders():
    m = Metrics()  # made before the fork, as under gunicorn's preload_app
    pid = os.fork()
    if pid == 0:  # the child: a worker
        try:
            _hammer(m, 25)
            m.count_authentication_failure()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    s = parse(m.render())
    assert s['wadows_requests_total{operation="WADO-URI",outcome="success"}'] == 25
    assert s["wadows_authentication_failures_total"] == 1


def test_many_processes_and_threads_lose_no_increment():
    m = Metrics()
    ctx = multiprocessing.get_context("fork")

    def worker():
        threads = [threading.Thread(target=_hammer, args=(m, 1500)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    procs = [ctx.Process(target=worker) for _ in range(4)]
    for p in procs:
        p.start()
    _hammer(m, 1500)  # the parent too
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert m.value("requests", "WADO-URI", "success") == 13 * 1500
    assert m.value("returned") == 13 * 1500
    assert m.value("callers", "certificate") == 13 * 1500


def test_a_worker_killed_holding_the_lock_does_not_stop_the_others():
    m = Metrics(lock_timeout=0.2)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        m._lock.acquire()
        os.write(ready_w, b"x")
        time.sleep(60)
        os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"  # the child holds the lock
    os.close(ready_r)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    start = time.monotonic()
    m.count_request("WADO-URI", 200)
    assert time.monotonic() - start < 5
    start = time.monotonic()
    m.count_request("WADO-URI", 200)
    assert time.monotonic() - start < 0.1  # the lock works again, no more waiting
    assert m.value("requests", "WADO-URI", "success") == 2
