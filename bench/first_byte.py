"""Time to the first byte of a RAD-69 whole-study answer, in process: the application called as a WSGI server would
call it (no HTTP, no client, no sendfile: the stored bytes are read through Python), plain and anonymized
interleaved. The first byte waits for every document's outcome (the envelope lists them), so this is the server
work a client waits for before anything arrives; bench/retrieve.py measures the whole over real HTTP.

Usage: .venv/bin/python bench/first_byte.py [--slices 200] [--repeat 21] [--prepare-ahead]
(without --prepare-ahead the helper process is off: one core, as in bench/prepare.py)
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import build_ct_study  # noqa: E402
from retrieve import request_body  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=21, help="timed calls per case, interleaved")
    parser.add_argument("--prepare-ahead", action="store_true", help="let the prepare-ahead helper work")
    args = parser.parse_args()
    os.environ["WADOWS_SERVER_PREPARE_AHEAD"] = "true" if args.prepare_ahead else "false"
    from wadows import config as cfg
    from wadows.runtime import build_app

    folder = build_ct_study(args.slices)
    conf = cfg.load(None)
    conf.sections["policy"]["unauthenticated"] = "full"  # plain retrieval is of originals
    with tempfile.TemporaryDirectory() as data:
        app, _ = build_app(conf, folder, Path(data))
        bodies = {"plain": request_body(folder, False), "anonymized": request_body(folder, True)}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in bodies}
        for run in range(args.repeat + 1):
            for name, body in bodies.items():
                first, total = _call(app, body)
                if run:  # the first round warms: page cache, the series learnt
                    times[name].append((first, total))
    print(f"{args.slices} slices, {args.repeat} calls each, prepare-ahead {'on' if args.prepare_ahead else 'off'}")
    for name, runs in times.items():
        firsts = [first for first, _ in runs]
        print(f"  {name:10s} first byte {min(firsts) * 1e3:6.1f} ms best, {statistics.median(firsts) * 1e3:6.1f} "
              f"median; whole answer {min(total for _, total in runs) * 1e3:6.1f} ms best")


def _call(app, body: bytes) -> tuple[float, float]:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/wado-ws", "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_TYPE": "application/soap+xml",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
               "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
               "wsgi.multiprocess": False, "wsgi.run_once": False}
    statuses = []
    start = time.perf_counter()
    answer = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    first = head = None
    try:
        for chunk in answer:
            if first is None:
                first, head = time.perf_counter() - start, chunk
    finally:
        answer.close()
    if not statuses or not statuses[0].startswith("200") or b"ResponseStatusType:Success" not in head:
        raise RuntimeError(f"the answer was {statuses}, not a Success")
    return first, time.perf_counter() - start


if __name__ == "__main__":
    main()
