"""Sustained mixed load on a real `wadows serve`: concurrent clients, failures, latency, throughput, RSS over time.

One store folder: the 200-slice CT study (bench/ctstudy.py) plus the bundled sample (wadows.sample). For each
worker count a fresh `wadows serve --workers N --unauthenticated full` is started, every distinct request body is
sent once on its own (the baseline: HTTP status, SOAP status, number of MIME parts and exact length of its
answer), then CLIENTS clients (threads spread over client processes) send a weighted random mix for WARMUP +
DURATION seconds, each reading every response fully (streaming, discarded).

A request fails when: the HTTP status is not 200, the connection breaks or times out, the body does not open
and close with the MTOM boundary, its length differs from Content-Length or from the baseline's length, its
number of parts or its RegistryResponse status differs from the baseline's. (A document the server refuses
when asked alone, e.g. an anonymized ultrasound with burned-in text, is still refused under load: that is
not a failure, a different answer is.) Every failure is printed with its reason.

The server's RSS is sampled every second (psutil): sum and max over the gunicorn master and its workers, and
separately the helper processes below the workers (per worker: the multiprocessing resource tracker, the XPath
fork server and its short-lived children). Printed: after the warm-up, at the end, and the trend over the
second half of the window. RSS sums count pages shared after the fork once per process.

Client and server share the machine's cores. The clients run in several processes (--client-processes), so
that one GIL does not cap them, and the CPU used in the measured window is printed for the server, the
clients, this script, interrupts and everything else: when other processes took a share, the figures are
low and the output says so (--wait-quiet waits for an idle machine before each load, which helps only with
other work that comes and goes).

Usage: .venv/bin/python bench/load.py [--workers-list 1 2 4] [--duration 60] [--warmup 10] [--clients 16]
                                      [--client-processes 4] [--wait-quiet SECONDS] [--mix KIND=WEIGHT ...]
Exit status 1 when any request failed. Server logs: bench/out/load-server-w<N>.log.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import OUT, build_ct_study, study_size  # noqa: E402
from retrieve import free_port  # noqa: E402

EXPLICIT_LE = "1.2.840.10008.1.2.1"
NS = ('xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:r="urn:ihe:rad:xdsi-b:2009" '
      'xmlns:ihe="urn:ihe:iti:xds-b:2007" xmlns:wado="urn:dicom:wado:ws:2011"')
HEADERS = {"Content-Type": "application/soap+xml; charset=utf-8"}
CHUNK = 1 << 20
HEAD_BYTES = 16384
STATUS = re.compile(rb'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:(\w+)"')
BOUNDARY = re.compile(r'boundary="?([^";]+)"?')

# kind -> default weight (relative frequency of the kind in the mix)
MIX = {
    "rad69 single plain": 20,
    "rad69 single anon": 20,
    "rad69 series20 plain": 8,
    "rad69 series20 anon": 8,
    "rad69 study200 plain": 2,
    "rad69 study200 anon": 2,
    "metadata xpath /": 15,
    "metadata xpath string()": 10,
    "rendered jpeg": 15,
}
SINGLE_CT_SLICES = 20   # single-document requests: every 10th CT slice plus every sample object


# ---------------------------------------------------------------------------------------------------- bodies

def _envelope(body: str) -> bytes:
    return f'<s:Envelope {NS}><s:Body>{body}</s:Body></s:Envelope>'.encode()


def _study_requests(docs, prefix: str, element: str, inner: str) -> str:
    """docs: (study, series, sop); grouped by study and series in order."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for study, series, sop in docs:
        grouped.setdefault(study, {}).setdefault(series, []).append(sop)
    out = []
    for study, by_series in grouped.items():
        out.append(f'<{prefix}:StudyRequest studyInstanceUID="{study}">')
        for series, sops in by_series.items():
            out.append(f'<{prefix}:SeriesRequest seriesInstanceUID="{series}">')
            out.extend(f"<{element}><ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>{inner}</{element}>"
                       for sop in sops)
            out.append(f"</{prefix}:SeriesRequest>")
        out.append(f"</{prefix}:StudyRequest>")
    return "".join(out)


def rad69(docs, anonymize: bool) -> bytes:
    inner = "<wado:Anonymize>yes</wado:Anonymize>" if anonymize else ""
    syntaxes = (f"<r:TransferSyntaxUIDList><r:TransferSyntaxUID>{EXPLICIT_LE}</r:TransferSyntaxUID>"
                "</r:TransferSyntaxUIDList>")
    return _envelope(f"<r:RetrieveImagingDocumentSetRequest>{_study_requests(docs, 'r', 'ihe:DocumentRequest', inner)}"
                     f"{syntaxes}</r:RetrieveImagingDocumentSetRequest>")


def metadata(docs, xpath: str) -> bytes:
    inner = f"<wado:XPath>{xpath}</wado:XPath>"
    return _envelope("<wado:RetrieveImagingDocumentSetInformationRequest>"
                     f"{_study_requests(docs, 'wado', 'wado:DocumentInformationRequest', inner)}"
                     "</wado:RetrieveImagingDocumentSetInformationRequest>")


def rendered_jpeg(docs) -> bytes:
    inner = "<wado:ContentTypeList><wado:ContentType>image/jpeg</wado:ContentType></wado:ContentTypeList>"
    return _envelope("<wado:RetrieveRenderedImagingDocumentSetRequest>"
                     f"{_study_requests(docs, 'wado', 'wado:RenderedDocumentRequest', inner)}"
                     "</wado:RetrieveRenderedImagingDocumentSetRequest>")


def build_store(root: Path) -> tuple[Path, list, list]:
    """The store folder (CT study hard-linked, or copied, beside the sample) and the (study, series, sop) of
    the CT slices in order and of the sample objects."""
    import pydicom

    from wadows.sample import build_sample, describe_sample

    ct = build_ct_study(200)
    store = root / "store"
    (store / "ct-200").mkdir(parents=True)
    for path in sorted(ct.glob("*.dcm")):
        try:
            os.link(path, store / "ct-200" / path.name)
        except OSError:
            shutil.copy2(path, store / "ct-200" / path.name)
    build_sample(store / "sample")
    ct_docs = []
    for path in sorted((store / "ct-200").glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
        ct_docs.append((ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
    sample_docs = [(r["study_uid"], r["series_uid"], r["sop_instance_uid"]) for r in describe_sample(store / "sample")]
    return store, ct_docs, sample_docs


def build_bodies(ct_docs, sample_docs) -> dict[str, list[bytes]]:
    singles = [[d] for d in ct_docs[::len(ct_docs) // SINGLE_CT_SLICES]] + [[d] for d in sample_docs]
    series = [ct_docs[i:i + 20] for i in range(0, len(ct_docs), 20)]
    return {
        "rad69 single plain": [rad69(d, False) for d in singles],
        "rad69 single anon": [rad69(d, True) for d in singles],
        "rad69 series20 plain": [rad69(d, False) for d in series],
        "rad69 series20 anon": [rad69(d, True) for d in series],
        "rad69 study200 plain": [rad69(ct_docs, False)],
        "rad69 study200 anon": [rad69(ct_docs, True)],
        "metadata xpath /": [metadata(d, "/") for d in singles],
        "metadata xpath string()": [metadata(d, 'string(//DicomAttribute[@keyword="StudyDescription"]/Value)')
                                    for d in singles],
        "rendered jpeg": [rendered_jpeg(d) for d in singles],
    }


# ---------------------------------------------------------------------------------------------------- one request

@dataclass
class Outcome:
    http: int | None = None
    soap: str | None = None
    received: int = 0
    parts: int = 0
    error: str | None = None     # set when the answer is broken whatever the baseline says
    seconds: float = 0.0


def fetch(session: requests.Session, url: str, body: bytes, timeout: float) -> Outcome:
    """POST `body`, read the answer fully in chunks (discarded), check its MTOM framing."""
    out = Outcome()
    start = time.perf_counter()
    try:
        with session.post(url, data=body, headers=HEADERS, stream=True, timeout=timeout) as r:
            out.http = r.status_code
            match = BOUNDARY.search(r.headers.get("Content-Type", ""))
            delimiter = b"--" + match.group(1).encode() + b"\r\n" if match else None
            keep = len(delimiter) - 1 if delimiter else 0
            tail_bytes = max(64, 2 * keep + 8)   # enough for "\r\n--BOUNDARY--\r\n" and for a split delimiter
            declared = r.headers.get("Content-Length")
            head = b""
            tail = b""
            for chunk in r.iter_content(CHUNK):
                if len(head) < HEAD_BYTES:
                    head += chunk[:HEAD_BYTES - len(head)]
                if delimiter:
                    out.parts += chunk.count(delimiter) + (tail[-keep:] + chunk[:keep]).count(delimiter)
                tail = (tail + chunk)[-tail_bytes:] if len(chunk) < tail_bytes else chunk[-tail_bytes:]
                out.received += len(chunk)
    except requests.RequestException as exc:
        cause = exc.__context__ or exc.__cause__
        out.error = (f"connection broken after {out.received} bytes: {type(exc).__name__}"
                     + (f" ({type(cause).__name__})" if cause is not None else "") + f": {str(exc)[:160]}")
        out.seconds = time.perf_counter() - start
        return out
    out.seconds = time.perf_counter() - start
    status = STATUS.search(head)
    out.soap = status.group(1).decode() if status else None
    if out.http != 200:
        out.error = f"HTTP {out.http}: {head[:200]!r}"
    elif delimiter is None:
        out.error = f"not multipart/related: {r.headers.get('Content-Type')!r}"
    elif declared is not None and int(declared) != out.received:
        out.error = f"Content-Length {declared} but {out.received} bytes received"
    elif not head.startswith(delimiter):
        out.error = "body does not open with the MTOM boundary"
    elif not tail.endswith(b"\r\n" + delimiter[:-2] + b"--\r\n"):
        out.error = f"body does not end with the closing boundary (after {out.received} bytes)"
    elif out.soap is None:
        out.error = "no RegistryResponse status in the envelope"
    return out


def compare(outcome: Outcome, expected: Outcome) -> str | None:
    """Why this answer is a failure (None when it is not)."""
    if outcome.error:
        return outcome.error
    if outcome.soap != expected.soap:
        return f"RegistryResponse status {outcome.soap}, alone it was {expected.soap}"
    if outcome.parts != expected.parts:
        return f"{outcome.parts} MIME parts, alone it had {expected.parts}"
    if outcome.received != expected.received:
        return f"{outcome.received} bytes, alone it was {expected.received}"
    return None


# ---------------------------------------------------------------------------------------------------- clients

def client_process(number: int, threads: int, url: str, bodies, expected, weights, go, start_at, warmup: float,
                   duration: float, timeout: float, results) -> None:
    """`threads` clients; each sends weighted random requests until the end, one at a time, keep-alive."""
    kinds = list(weights)
    records: list[tuple] = []
    lock = threading.Lock()
    results.put(("ready", number))
    go.wait()
    t0 = start_at.value
    measure_from, end = t0 + warmup, t0 + warmup + duration

    def client(seed: int) -> None:
        rng = random.Random(seed)
        mine = []
        with requests.Session() as session:
            while time.monotonic() < end:
                kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
                index = rng.randrange(len(bodies[kind]))
                started = time.monotonic()
                try:
                    outcome = fetch(session, url, bodies[kind][index], timeout)
                    reason = compare(outcome, expected[kind][index])
                except Exception as exc:  # noqa: BLE001 - a client must not die silently: it is a failed request
                    outcome, reason = Outcome(), f"client error {type(exc).__name__}: {str(exc)[:160]}"
                finished = time.monotonic()
                if reason is not None:
                    session.close()  # a broken connection must not be reused
                mine.append((kind, index, started, finished, outcome.received, reason))
        with lock:
            records.extend(mine)

    def cpu_at(moment: float) -> float:
        time.sleep(max(0.0, moment - time.monotonic()))
        t = os.times()
        return t.user + t.system

    pool = [threading.Thread(target=client, args=(number * 1000 + i,)) for i in range(threads)]
    for t in pool:
        t.start()
    cpu = -cpu_at(measure_from)
    cpu += cpu_at(end)
    for t in pool:
        t.join()
    results.put(("done", number, records, cpu))


# ---------------------------------------------------------------------------------------------------- server

class Server:
    def __init__(self, store: Path, data_dir: Path, workers: int, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.url + "/wado-ws"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "wadows", "serve", "--store", str(store), "--data-dir",
                                      str(data_dir), "--host", "127.0.0.1", "--port", str(self.port),
                                      "--workers", str(workers), "--unauthenticated", "full"],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + log_path.read_text(errors="replace"))
            try:
                if requests.get(self.url + "/health", timeout=1).ok and len(self.workers()) == workers:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start:\n" + log_path.read_text(errors="replace"))

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=False)

    def processes(self) -> tuple[psutil.Process, list[psutil.Process], list[psutil.Process]]:
        """master, workers (its direct children), helpers (everything further down)."""
        master = psutil.Process(self.proc.pid)
        workers = master.children(recursive=False)
        direct = {p.pid for p in workers}
        helpers = [p for p in master.children(recursive=True) if p.pid not in direct]
        return master, workers, helpers

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time of the whole server tree by process ("master", "worker <pid>", "helpers"), reaped children
        (XPath processes, reaped by the fork server) included."""
        master, workers, helpers = self.processes()
        out: dict[str, float] = defaultdict(float)
        for name, group in (("master", [master]), ("helpers", helpers)):
            for p in group:
                out[name] += _cpu(p)
        for p in workers:
            out[f"worker {p.pid}"] += _cpu(p)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@dataclass
class RssSample:
    t: float
    total_mb: float      # master + workers
    max_mb: float        # the largest of master and workers
    helpers_mb: float    # fork server and XPath children
    workers: int
    connections: tuple[int, ...] = ()   # established client connections held by each worker
    per_process_mb: tuple[float, ...] = ()   # master, then each worker


class RssSampler(threading.Thread):
    def __init__(self, server: Server, interval: float = 1.0):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.samples: list[RssSample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            try:
                master, workers, helpers = self.server.processes()
                main = [_rss(p) for p in [master, *workers]]
                self.samples.append(RssSample(time.monotonic(), sum(main) / 2**20, max(main) / 2**20,
                                              sum(_rss(p) for p in helpers) / 2**20, len(workers),
                                              tuple(_established(p, self.server.port) for p in workers),
                                              tuple(m / 2**20 for m in main)))
            except psutil.Error:
                pass
            next_at += self.interval   # a fixed schedule: sampling under load must not stretch the interval
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def at(self, t: float) -> RssSample:
        return min(self.samples, key=lambda s: abs(s.t - t))


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except psutil.NoSuchProcess:
        return 0.0


def _rss(p: psutil.Process) -> int:
    try:
        return p.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def _established(p: psutil.Process, port: int) -> int:
    try:
        return sum(1 for c in p.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED
                   and c.laddr and c.laddr.port == port)
    except psutil.Error:
        return 0


def scan_log(path: Path) -> Counter:
    """Lines of the server log that are not the per-request INFO lines or the start banner, counted."""
    seen: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if " INFO " in line or not line.strip() or line.startswith(("wadows", "  ")):
            continue
        seen[re.sub(r"^\[?\d{4}-\d\d-\d\d[ T][\d:,.]+( [+-]\d{4})?\]? ?", "", line)[:300]] += 1
    return seen


# ---------------------------------------------------------------------------------------------------- run

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class RunResult:
    workers: int
    requests: int = 0
    failures: int = 0
    rps: float = 0.0
    mbps: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    rss_warm: RssSample | None = None
    rss_end: RssSample | None = None
    rss_peak: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_busy: float = 0.0
    machine_cpu: float = 0.0
    other_cpu: float = 0.0
    interrupt_cpu: float = 0.0
    late_slope: float = 0.0
    self_cpu: float = 0.0
    steal: float = 0.0
    log_lines: Counter = field(default_factory=Counter)


def run_one(workers: int, args, store: Path, bodies, weights, tmp: Path) -> RunResult:
    log_path = OUT / f"load-server-w{workers}.log"
    data_dir = tmp / f"data-w{workers}"
    print(f"\n=== --workers {workers}: server log {log_path}", flush=True)
    server = Server(store, data_dir, workers, log_path)
    result = RunResult(workers)
    try:
        # Baseline: every distinct body once, alone. Its answer is what the same body must get under load.
        expected: dict[str, list[Outcome]] = {}
        broken = []
        started = time.perf_counter()
        with requests.Session() as session:
            for kind, items in bodies.items():
                expected[kind] = []
                for i, body in enumerate(items):
                    outcome = fetch(session, server.endpoint, body, args.timeout)
                    if outcome.error:
                        broken.append(f"{kind} #{i}: {outcome.error}")
                    expected[kind].append(outcome)
        statuses = {k: dict(Counter(o.soap for o in v)) for k, v in expected.items()}
        print(f"baseline: {sum(map(len, bodies.values()))} distinct requests sent alone in "
              f"{time.perf_counter() - started:.1f} s; RegistryResponse status per kind: {statuses}")
        if broken:
            print("BASELINE FAILURES (these bodies fail even alone):\n  " + "\n  ".join(broken))

        waited = time.monotonic()
        quiet = psutil.cpu_percent(interval=2.0)
        while quiet > 15 and time.monotonic() - waited < args.wait_quiet:
            quiet = psutil.cpu_percent(interval=2.0)
        print(f"machine CPU busy over the 2 s before the load: {quiet:.0f}%"
              + (" (OTHER LOAD ON THE MACHINE)" if quiet > 15 else ""))
        ctx = multiprocessing.get_context("spawn")
        results, go, start_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
        split = [args.clients // args.client_processes + (1 if i < args.clients % args.client_processes else 0)
                 for i in range(args.client_processes)]
        procs = [ctx.Process(target=client_process,
                             args=(n, threads, server.endpoint, bodies, expected, weights, go, start_at,
                                   args.warmup, args.duration, args.timeout, results))
                 for n, threads in enumerate(split) if threads]
        for p in procs:
            p.start()
        for _ in procs:
            results.get(timeout=120)   # "ready"
        sampler = RssSampler(server)
        sampler.start()
        t0 = time.monotonic() + 0.2
        start_at.value = t0
        go.set()
        time.sleep(max(0.0, t0 + args.warmup - time.monotonic()))
        me = psutil.Process()
        cpu_warm, system_warm, me_warm = server.cpu_seconds(), psutil.cpu_times(), me.cpu_times()
        time.sleep(max(0.0, t0 + args.warmup + args.duration - time.monotonic()))
        cpu_end, system_end, me_end = server.cpu_seconds(), psutil.cpu_times(), me.cpu_times()
        records = []
        for _ in procs:
            message = results.get(timeout=args.timeout + 60)
            records.extend(message[2])
            result.client_cpu += message[3]
        for p in procs:
            p.join()
        sampler.stop()
        by_process = {k: cpu_end[k] - cpu_warm.get(k, 0.0) for k in cpu_end}
        result.server_cpu = sum(by_process.values())
        busy = [getattr(system_end, f) - getattr(system_warm, f) for f in system_end._fields
                if f not in ("guest", "guest_nice")]  # already counted in user and nice
        idle = sum(getattr(system_end, f) - getattr(system_warm, f) for f in ("idle", "iowait")
                   if f in system_end._fields)
        result.machine_busy = 1 - idle / sum(busy)
        # core-seconds the whole machine spent busy in the window; what the server, the clients, this script
        # and the interrupt time (loopback TCP is softirq work, charged to no process) do not account for is
        # other processes
        result.machine_cpu = sum(busy) - idle
        result.interrupt_cpu = sum(getattr(system_end, f) - getattr(system_warm, f) for f in ("irq", "softirq")
                                   if f in system_end._fields)
        result.self_cpu = (me_end.user + me_end.system) - (me_warm.user + me_warm.system)
        result.steal = ((system_end.steal - system_warm.steal) / sum(busy)) if "steal" in system_end._fields else 0.0
    finally:
        server.stop()

    measure_from, end = t0 + args.warmup, t0 + args.warmup + args.duration
    failures = [r for r in records if r[5] is not None]
    measured = [r for r in records if r[2] >= measure_from]          # started after the warm-up
    in_window = [r for r in records if measure_from <= r[3] <= end]  # finished inside the measured window
    by_kind = defaultdict(list)
    for r in measured:
        by_kind[r[0]].append(r)

    print(f"load: {args.clients} clients in {len(procs)} processes, {args.warmup:g} s warm-up + {args.duration:g} s "
          f"measured; {len(records)} requests in all, {len(measured)} started after the warm-up")
    print(f"  {'kind':26s} {'done':>6s} {'failed':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'MB':>9s}")
    for kind in bodies:
        rows = by_kind.get(kind, [])
        lat = [(r[3] - r[2]) * 1000 for r in rows]
        print(f"  {kind:26s} {len(rows):6d} {sum(1 for r in rows if r[5]):6d} {percentile(lat, 50):8.1f} "
              f"{percentile(lat, 95):8.1f} {percentile(lat, 99):8.1f} {sum(r[4] for r in rows) / 1e6:9.1f}")
    lat = [(r[3] - r[2]) * 1000 for r in measured]
    result.requests, result.failures = len(measured), len(failures)
    result.p50, result.p95, result.p99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
    print(f"  {'all':26s} {len(measured):6d} {sum(1 for r in measured if r[5]):6d} {result.p50:8.1f} "
          f"{result.p95:8.1f} {result.p99:8.1f} {sum(r[4] for r in measured) / 1e6:9.1f}")
    result.rps = len(in_window) / args.duration
    result.mbps = sum(r[4] for r in in_window) / 1e6 / args.duration
    print(f"throughput (requests finished inside the {args.duration:g} s window): {result.rps:.1f} requests/s, "
          f"{result.mbps:.1f} MB/s")

    if failures:
        print(f"FAILED REQUESTS: {len(failures)} (warm-up included)")
        reasons = Counter((r[0], r[5]) for r in failures)
        for (kind, reason), n in reasons.most_common():
            print(f"  {n:5d} x {kind}: {reason}")
    else:
        print("failed requests: 0 (warm-up included)")

    result.rss_warm, result.rss_end = sampler.at(measure_from), sampler.at(end)
    result.rss_peak = max(s.total_mb for s in sampler.samples)
    series = " ".join(f"{s.total_mb:.0f}" for s in sampler.samples)
    print(f"server RSS, master + {result.rss_end.workers} workers, sum per second (MB; {len(sampler.samples)} "
          f"samples): {series}")
    grew = result.rss_end.total_mb - result.rss_warm.total_mb
    verdict = "GREW" if grew > max(20.0, 0.10 * result.rss_warm.total_mb) else "did not grow materially"
    print(f"server RSS after warm-up: sum {result.rss_warm.total_mb:.0f} MB, max {result.rss_warm.max_mb:.0f} MB "
          f"(helpers {result.rss_warm.helpers_mb:.0f} MB); at the end: sum {result.rss_end.total_mb:.0f} MB, max "
          f"{result.rss_end.max_mb:.0f} MB (helpers {result.rss_end.helpers_mb:.0f} MB); peak sum "
          f"{result.rss_peak:.0f} MB; change {grew:+.0f} MB: {verdict} (threshold: 20 MB and 10 %)")
    late = [x for x in sampler.samples if (measure_from + end) / 2 <= x.t <= end]
    if len(late) >= 3:
        mean_t, mean_m = sum(x.t for x in late) / len(late), sum(x.total_mb for x in late) / len(late)
        slope = (sum((x.t - mean_t) * (x.total_mb - mean_m) for x in late)
                 / sum((x.t - mean_t) ** 2 for x in late))
        result.late_slope = slope * 60
        print(f"  RSS trend over the second half of the measured window: {result.late_slope:+.1f} MB/min "
              "(least squares over the per-second sums; a leak keeps this positive, warm-up brings it to ~0)")
    print("  RSS per process (master, workers) after warm-up: "
          + ", ".join(f"{m:.0f}" for m in result.rss_warm.per_process_mb) + " MB; at the end: "
          + ", ".join(f"{m:.0f}" for m in result.rss_end.per_process_mb) + " MB")
    window = args.duration * (os.cpu_count() or 1)
    result.other_cpu = max(0.0, result.machine_cpu - result.server_cpu - result.client_cpu - result.interrupt_cpu
                           - result.self_cpu)
    print(f"CPU in the measured window: server {result.server_cpu:.0f} s, clients {result.client_cpu:.0f} s, of "
          f"{window:.0f} core-seconds on this machine (server + clients = "
          f"{(result.server_cpu + result.client_cpu) / window:.0%}); whole machine busy {result.machine_busy:.0%} "
          f"(of which stolen by the hypervisor {result.steal:.0%}); "
          f"interrupts {result.interrupt_cpu:.0f} core-s, this script {result.self_cpu:.0f} core-s; "
          f"other processes: {result.other_cpu:.0f} core-s "
          f"({result.other_cpu / window:.0%}{': OTHER LOAD ON THE MACHINE, figures are low' if result.other_cpu / window > 0.1 else ''})")
    print("  server CPU s by process: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(by_process.items())))
    measured_samples = [s for s in sampler.samples if measure_from <= s.t <= end and s.connections]
    if measured_samples:
        average = [sum(s.connections[i] for s in measured_samples) / len(measured_samples)
                   for i in range(len(measured_samples[0].connections))]
        print("  client connections held per worker (average of the per-second samples): "
              + ", ".join(f"{a:.1f}" for a in average))
    result.log_lines = scan_log(log_path)
    if result.log_lines:
        print("server log lines other than INFO:")
        for line, n in result.log_lines.most_common(20):
            print(f"  {n:5d} x {line}")
    else:
        print("server log: INFO lines only")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers-list", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per worker count")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the same load before measuring")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--client-processes", type=int, default=4,
                        help="client processes the clients are spread over (threads in each)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request read timeout, seconds")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each load, wait up to this long for the machine to be idle (other processes "
                             "competing for the cores make the figures low)")
    parser.add_argument("--mix", nargs="*", default=[], metavar="KIND=WEIGHT",
                        help=f"change a kind's weight (0 drops it); kinds: {', '.join(MIX)}")
    args = parser.parse_args()
    weights = dict(MIX)
    for item in args.mix:
        kind, _, weight = item.rpartition("=")
        if kind not in weights:
            parser.error(f"unknown kind {kind!r}")
        weights[kind] = float(weight)
    weights = {k: w for k, w in weights.items() if w > 0}

    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, python {sys.version.split()[0]}, psutil {psutil.__version__}")
    print(f"NOTE: the {args.clients} clients run on this machine, in {args.client_processes} processes, and compete "
          f"with the server for the same {cores} cores: figures are for client and server together, and the "
          "client's own CPU is printed per run.")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="load-", dir=OUT) as tmp:
        tmp = Path(tmp)
        store, ct_docs, sample_docs = build_store(tmp)
        bodies = {k: v for k, v in build_bodies(ct_docs, sample_docs).items() if k in weights}
        print(f"store: {len(ct_docs)} CT slices ({study_size(store / 'ct-200') / 1e6:.0f} MB) + {len(sample_docs)} "
              f"sample objects; mix (weight: distinct bodies): "
              + ", ".join(f"{k} {weights[k]:g}:{len(bodies[k])}" for k in bodies))
        results = [run_one(n, args, store, bodies, weights, tmp) for n in args.workers_list]

    print(f"\nSummary ({args.clients} clients, {args.duration:g} s measured after {args.warmup:g} s warm-up, "
          f"{cores} cores shared with the clients):")
    print("| workers | requests | failed | req/s | MB/s | p50 ms | p95 ms | p99 ms | RSS sum after warm-up | "
          "RSS sum at end | RSS trend, 2nd half | RSS largest process at end | server CPU s | client CPU s | other CPU s | machine busy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.workers} | {r.requests} | {r.failures} | {r.rps:.1f} | {r.mbps:.0f} | {r.p50:.0f} | {r.p95:.0f} "
              f"| {r.p99:.0f} | {r.rss_warm.total_mb:.0f} MB | {r.rss_end.total_mb:.0f} MB | {r.late_slope:+.1f} MB/min "
              f"| {r.rss_end.max_mb:.0f} MB "
              f"| {r.server_cpu:.0f} | {r.client_cpu:.0f} | {r.other_cpu:.0f} | {r.machine_busy:.0%} |")
    if any(r.failures for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
