"""Server CPU per document before the envelope of a RAD-69 response, in process (no HTTP, no client): plain
vs anonymized, and for anonymized the first object of the series (prepared from scratch) vs the others
(prepared by difference). This is the work the client waits for; bench/retrieve.py measures the whole.

Usage: .venv/bin/python bench/prepare.py [--slices 200] [--repeat 7]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import build_ct_study  # noqa: E402

from wadows import config as cfg  # noqa: E402
from wadows.runtime import build_app  # noqa: E402
from wadows.wado import anonymized  # noqa: E402
from wadows.wado.messages import DocumentRef, RetrieveRequest  # noqa: E402
from wadows.wado.retrieve import retrieve  # noqa: E402

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7, help="runs per case; the best is reported")
    args = parser.parse_args()
    folder = build_ct_study(args.slices)
    with tempfile.TemporaryDirectory() as data:
        app, _ = build_app(cfg.load(None), folder, Path(data))
        source = app.source
        uids = [pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID",
                                                                            "SOPInstanceUID"])
                for p in sorted(folder.glob("*.dcm"))]
        for name, anonymize in (("plain", None), ("anonymized", "yes")):
            request = RetrieveRequest(tuple(DocumentRef(u.StudyInstanceUID, u.SeriesInstanceUID, u.SOPInstanceUID,
                                                        anonymize=anonymize) for u in uids), (EXPLICIT_LE,))
            run = _runner(source, request)
            run()  # warm: the series is known, the files are in the page cache
            best = min(_seconds(run) for _ in range(args.repeat))
            print(f"{name:10s} {best / len(uids) * 1e6:7.1f} us per document ({len(uids)} documents)")
        first = sorted(folder.glob("*.dcm"))[0]
        record = source.store.locate(uids[0].SOPInstanceUID)
        scratch = min(_seconds(lambda: _from_scratch(source.deidentifier, first, record)) for _ in range(args.repeat))
        print(f"{'from scratch':10s} {scratch * 1e6:7.1f} us for one document (the first of a series)")


def _runner(source, request):
    """retrieve() for a caller who may receive originals (the operations take the caller once access control
    is in: anonymous callers may get anonymized objects only)."""
    if "caller" not in inspect.signature(retrieve).parameters:
        return lambda: retrieve(source, request)
    from wadows.policy.access import Caller

    caller = Caller("anonymous", None, True, True)
    return lambda: retrieve(source, request, caller)


def _from_scratch(deidentifier, path: Path, record) -> None:
    with open(path, "rb") as fp:
        anonymized._prepare_from_scratch(deidentifier, fp, record, (EXPLICIT_LE,), True)


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
