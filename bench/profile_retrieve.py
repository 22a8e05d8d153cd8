"""Where a RAD-69 whole-study retrieval spends the server's time: py-spy samples the worker while the same request
is repeated, and the time per request is printed for the functions that matter (inclusive), plain and anonymized
side by side.

Sampling profilers see wall time per thread; the figures are per request (samples / rate / requests), so the two
columns compare. py-spy comes with the bench extra (`pip install -e '.[bench]'`); it needs ptrace rights (root,
or kernel.yama.ptrace_scope=0).

Usage: .venv/bin/python bench/profile_retrieve.py [--slices 200] [--requests 40] [--rate 500] [--top 40]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import build_ct_study  # noqa: E402
from retrieve import request_body, start_server, timed_retrieve  # noqa: E402


def profile(endpoint: str, worker: int, body: bytes, requests: int, rate: int, out: Path) -> float:
    """Inclusive samples per frame, as milliseconds per request; returns the best request time too."""
    timed_retrieve(endpoint, body)  # warm: page cache, the series learnt, the prepare-ahead helper started
    spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
                            "-p", str(worker), "-r", str(rate), "-f", "raw", "-o", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        best = min(timed_retrieve(endpoint, body)[0] for _ in range(requests))
    finally:
        spy.send_signal(2)
        spy.wait(60)
    return best


def per_request(raw: Path, rate: int, requests: int) -> collections.Counter:
    inclusive: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("wadows" in frame or "gunicorn" in frame for frame in frames):
            continue  # idle threads, the heartbeat
        for frame in dict.fromkeys(_short(frame) for frame in frames):
            inclusive[frame] += int(count)
    return collections.Counter({frame: n / rate / requests * 1000 for frame, n in inclusive.items()})


def _short(frame: str) -> str:
    """'name (path/to/module.py:123)' -> 'name (module.py)': lines differ between calls of one function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    folder = build_ct_study(args.slices)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        proc, endpoint = start_server(folder, work)
        try:
            worker = psutil.Process(proc.pid).children()[0].pid
            columns = {}
            for name, anonymize in (("plain", False), ("anonymized", True)):
                best = profile(endpoint, worker, request_body(folder, anonymize), args.requests, args.rate,
                               work / f"{name}.txt")
                columns[name] = per_request(work / f"{name}.txt", args.rate, args.requests)
                print(f"{name}: best request {best * 1000:.1f} ms (unprofiled runs are faster)")
        finally:
            proc.terminate()
            proc.wait(30)
    plain, anonymized = columns["plain"], columns["anonymized"]
    frames = sorted(set(plain) | set(anonymized), key=lambda f: -max(plain[f], anonymized[f]))
    print(f"\n{'plain ms':>9} {'anon ms':>9}  function (inclusive, per request)")
    for frame in frames[:args.top]:
        print(f"{plain[frame]:9.1f} {anonymized[frame]:9.1f}  {frame}")


if __name__ == "__main__":
    main()
