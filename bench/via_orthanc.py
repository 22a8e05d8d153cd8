"""wadows in front of a real Orthanc (DICOMweb store) against Orthanc's own WADO-RS, same study, same run.

The 200-slice CT study is loaded into a fresh Orthanc (Debian packages orthanc, orthanc-dicomweb); then, after one
first request each (reported: nothing cached yet), --runs timed runs each, best and worst reported: Orthanc's
WADO-RS retrieval of the whole study; wadows RAD-69 of the study through its DICOMweb store, plain and anonymized
(every answer checked: Success, and at least the study's bytes, or its pixels' when anonymized). Usage: .venv/bin/python bench/via_orthanc.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pydicom
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from ctstudy import build_ct_study, study_size  # noqa: E402
from orthanc import Orthanc  # noqa: E402
from retrieve import request_body, timed_retrieve  # noqa: E402

import retrieve as bench_retrieve  # noqa: E402

PIXEL_BYTES = 200 * 512 * 512 * 2


def orthanc_wado_rs(orthanc: Orthanc, study_uid: str) -> tuple[float, int]:
    start = time.perf_counter()
    with requests.get(f"{orthanc.dicomweb_url}/studies/{study_uid}", stream=True, timeout=600, headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            "Accept-Encoding": "identity"}) as reply:
        reply.raise_for_status()
        received = sum(len(chunk) for chunk in reply.iter_content(1 << 20))
    return time.perf_counter() - start, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case")
    args = parser.parse_args()
    folder = build_ct_study(200)
    study_uid = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    size = study_size(folder)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        orthanc = Orthanc(work / "orthanc").start()
        try:
            for path in sorted(folder.glob("*.dcm")):
                orthanc.upload(path)
            proc, endpoint = start_wadows(work / "data", ["--store-url", orthanc.dicomweb_url])
            try:
                first = orthanc_wado_rs(orthanc, study_uid)  # warms Orthanc's caches as the others will be
                runs = [orthanc_wado_rs(orthanc, study_uid) for _ in range(args.runs)]
                if min(received for _, received in runs) < size:
                    raise RuntimeError("Orthanc's WADO-RS answer is smaller than the study")
                results["Orthanc WADO-RS"] = first[0], [seconds for seconds, _ in runs]
                for name, anonymize in (("wadows RAD-69 plain", False), ("wadows RAD-69 anonymized", True)):
                    body = request_body(folder, anonymize)
                    first, *runs = [timed_retrieve(endpoint, body) for _ in range(args.runs + 1)]
                    least = PIXEL_BYTES if anonymize else size  # de-identified headers are shorter
                    for seconds, received, status in [first, *runs]:
                        if status != "Success" or received < least:
                            raise RuntimeError(f"{name}: {status}, {received} bytes for a {size}-byte study")
                    results[name] = first[0], [seconds for seconds, _, _ in runs]
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        finally:
            orthanc.stop()
    base = min(results["Orthanc WADO-RS"][1])
    print(f"200 slices, {size / 1e6:.1f} MB, {args.runs} runs; {os.cpu_count()} cores, python "
          f"{sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")
    for name, (first, runs) in results.items():
        best, worst = min(runs), max(runs)
        print(f"  {name:26s} {size / 1e6 / best:7.1f} MB/s  (best {best:.2f} s, worst {worst:.2f} s, first "
              f"{first:.2f} s)  speed vs Orthanc WADO-RS {base / best:5.2f}x")


def start_wadows(data_dir: Path, extra: list[str]):
    data_dir.mkdir(parents=True, exist_ok=True)
    port = bench_retrieve.free_port()
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "wadows", "serve", *extra, "--data-dir", str(data_dir),
                             "--port", str(port), "--unauthenticated", "full"],
                            stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return proc, url + "/wado-ws"
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("wadows did not start: " + (data_dir / "server.log").read_text())


if __name__ == "__main__":
    main()
