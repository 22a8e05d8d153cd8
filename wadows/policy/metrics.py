"""Request counters shared by every worker process of one server, rendered for Prometheus.

The counters live in shared memory made before gunicorn forks its workers (preload_app), so each worker adds to
the same numbers and any worker can answer a scrape. Labels come from fixed lists chosen by the server, never
from a request: no UIDs, no user names, and a bounded number of series.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import re
from typing import Iterable

from wadows.wado import codes

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
OPERATIONS = ("RetrieveImagingDocumentSet", "RetrieveRenderedImagingDocumentSet",
              "RetrieveImagingDocumentSetInformation", "WADO-URI", "QIDO-RS", OTHER)
ABORTED = "aborted"  # the answer was cut short while it was being sent
OUTCOMES = ("success", "partial_success", "failure", "fault", "unauthorized", "forbidden", ABORTED, OTHER)
CALLER_KINDS = ("anonymous", "user", "certificate")
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")

_STATUS_OUTCOMES = {codes.SUCCESS: "success", codes.PARTIAL_SUCCESS: "partial_success", codes.FAILURE: "failure"}


def outcome_label(status: str | int) -> str:
    """A response status URN or an HTTP status as one of OUTCOMES."""
    if isinstance(status, int):
        if 200 <= status < 300:
            return "success"
        return {401: "unauthorized", 403: "forbidden"}.get(status, "failure" if status < 500 else "fault")
    return _STATUS_OUTCOMES.get(status, status if status in OUTCOMES else OTHER)


class Metrics:
    """Create once, in the master process, before workers fork. Safe from any thread of any worker."""

    def __init__(self, operations: Iterable[str] = OPERATIONS, outcomes: Iterable[str] = OUTCOMES,
                 lock_timeout: float = 1.0):
        self.operations = _labels(operations, "operation")
        self.outcomes = _labels(outcomes, "outcome")
        self._lock_timeout = lock_timeout
        names = [("requests", op, out) for op in self.operations for out in self.outcomes]
        names += [("callers", kind) for kind in CALLER_KINDS]
        names += [("duration_us", op) for op in self.operations] + [("timed", op) for op in self.operations]
        names += [("returned",), ("refused",), ("anonymized",), ("authentication_failures",)]
        self._slot = {name: i for i, name in enumerate(names)}
        # Shared memory (inherited by forked children) and a process-shared lock around read-modify-write.
        self._values = multiprocessing.RawArray(ctypes.c_uint64, len(names))
        self._lock = multiprocessing.Lock()

    def count_request(self, operation: str, outcome: str | int, caller_kind: str | None = None, *,
                      returned: int = 0, refused: int = 0, anonymized: int = 0,
                      seconds: float | None = None) -> None:
        """One answered request. Unknown operations and outcomes are counted as "other"."""
        operation = operation if operation in self.operations else OTHER
        outcome = outcome_label(outcome)
        outcome = outcome if outcome in self.outcomes else OTHER
        adds = [(("requests", operation, outcome), 1),
                (("returned",), returned), (("refused",), refused), (("anonymized",), anonymized)]
        if caller_kind in CALLER_KINDS:
            adds.append((("callers", caller_kind), 1))
        if seconds is not None:
            adds += [(("duration_us", operation), max(0, round(seconds * 1e6))), (("timed", operation), 1)]
        self._add(adds)

    def count_authentication_failure(self) -> None:
        self._add([(("authentication_failures",), 1)])

    def _add(self, adds: list[tuple[tuple, int]]) -> None:
        with self._locked():
            for name, amount in adds:
                if amount:
                    self._values[self._slot[name]] += amount

    @contextlib.contextmanager
    def _locked(self):
        acquired = self._lock.acquire(timeout=self._lock_timeout)
        if not acquired:
            # Held for a second around a few additions: its holder was killed inside (a worker past its
            # timeout gets SIGKILL). Carry on, and release below so that the lock works again for everyone.
            log.warning("metrics lock was held by a dead process; taking it over")
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # released already by whoever took it over
                self._lock.release()

    def _snapshot(self) -> list[int]:
        with self._locked():
            return list(self._values)

    def value(self, *name: str) -> int:
        """One counter, by its internal name, e.g. value("requests", "WADO-URI", "success") (for tests)."""
        return self._snapshot()[self._slot[name]]

    def render(self) -> bytes:
        """All counters in the Prometheus text exposition format (0.0.4)."""
        v = self._snapshot()
        at = lambda *name: v[self._slot[name]]  # noqa: E731
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[tuple[str, dict[str, str], int | float]]):
            out.append(f"# HELP wadows_{name} {help_text}")
            out.append(f"# TYPE wadows_{name} {kind}")
            for sample, labels, value in samples:
                text = ",".join(f'{k}="{_escape(val)}"' for k, val in labels.items())
                out.append(f"wadows_{sample}{{{text}}} {value}" if text else f"wadows_{sample} {value}")

        family("requests_total", "counter", "Requests answered, by operation and outcome.",
               [("requests_total", {"operation": op, "outcome": o}, at("requests", op, o))
                for op in self.operations for o in self.outcomes])
        family("callers_total", "counter", "Requests by kind of caller.",
               [("callers_total", {"kind": kind}, at("callers", kind)) for kind in CALLER_KINDS])
        family("documents_returned_total", "counter", "Documents returned.",
               [("documents_returned_total", {}, at("returned"))])
        family("documents_refused_total", "counter", "Documents refused (each with an error code).",
               [("documents_refused_total", {}, at("refused"))])
        family("documents_anonymized_total", "counter", "Documents returned de-identified.",
               [("documents_anonymized_total", {}, at("anonymized"))])
        family("authentication_failures_total", "counter", "Requests with credentials that did not hold.",
               [("authentication_failures_total", {}, at("authentication_failures"))])
        samples: list[tuple[str, dict[str, str], int | float]] = []
        for op in self.operations:
            samples.append(("request_duration_seconds_sum", {"operation": op}, at("duration_us", op) / 1e6))
            samples.append(("request_duration_seconds_count", {"operation": op}, at("timed", op)))
        family("request_duration_seconds", "summary", "Time to answer a request, by operation.", samples)
        return ("\n".join(out) + "\n").encode("utf-8")


def _labels(values: Iterable[str], what: str) -> tuple[str, ...]:
    labels = list(dict.fromkeys(values))
    for label in labels:
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise ValueError(f"not a valid {what} label: {label!r}")
    if OTHER not in labels:
        labels.append(OTHER)
    return tuple(labels)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
