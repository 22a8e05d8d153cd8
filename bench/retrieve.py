"""RAD-69 whole-study retrieval through a real `wadows serve`: MB/s and the server's peak RSS.

Baseline in the same run: reading the same files straight from disk (page cache warm), so the ratio says what
the server costs on top of the disk. Usage: .venv/bin/python bench/retrieve.py [--sizes 200 2000] [--anonymize]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pydicom
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import build_ct_study, study_size  # noqa: E402

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, data_dir: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "wadows", "serve", "--store", str(store), "--data-dir",
                             str(data_dir), "--port", str(port), "--workers", str(workers),
                             "--unauthenticated", "full"],  # plain retrieval is of originals
                            stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return proc, url + "/wado-ws"
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("server did not start: " + (data_dir / "server.log").read_text())


def peak_rss_mb(proc: subprocess.Popen) -> float:
    """Largest VmHWM among the server's processes (gunicorn master and workers)."""
    peak = 0
    for p in [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True):
        for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def request_body(folder: Path, anonymize: bool) -> bytes:
    docs = []
    study = series = None
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID",
                                                                           "SOPInstanceUID"])
        study, series = ds.StudyInstanceUID, ds.SeriesInstanceUID
        extra = "<wado:Anonymize>yes</wado:Anonymize>" if anonymize else ""
        docs.append(f"<ihe:DocumentRequest><ihe:DocumentUniqueId>{ds.SOPInstanceUID}</ihe:DocumentUniqueId>"
                    f"{extra}</ihe:DocumentRequest>")
    return (f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
            f'<r:RetrieveImagingDocumentSetRequest xmlns:r="urn:ihe:rad:xdsi-b:2009" '
            f'xmlns:ihe="urn:ihe:iti:xds-b:2007" xmlns:wado="urn:dicom:wado:ws:2011">'
            f'<r:StudyRequest studyInstanceUID="{study}"><r:SeriesRequest seriesInstanceUID="{series}">'
            + "".join(docs) +
            f'</r:SeriesRequest></r:StudyRequest><r:TransferSyntaxUIDList><r:TransferSyntaxUID>{EXPLICIT_LE}'
            f'</r:TransferSyntaxUID></r:TransferSyntaxUIDList></r:RetrieveImagingDocumentSetRequest>'
            f'</s:Body></s:Envelope>').encode()


def timed_retrieve(endpoint: str, body: bytes) -> tuple[float, int, str]:
    start = time.perf_counter()
    with requests.post(endpoint, data=body, stream=True, timeout=600,
                       headers={"Content-Type": "application/soap+xml"}) as r:
        r.raise_for_status()
        received = 0
        head = b""
        for chunk in r.iter_content(1 << 20):
            if len(head) < 4096:
                head += chunk[:4096]
            received += len(chunk)
    status = "Success" if b"ResponseStatusType:Success" in head else "NOT Success"
    return time.perf_counter() - start, received, status


def disk_read_seconds(folder: Path) -> float:
    start = time.perf_counter()
    for path in sorted(folder.glob("*.dcm")):
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--anonymize", action="store_true", help="also measure Anonymize=yes retrieval")
    parser.add_argument("--repeat", type=int, default=9, help="runs per case, interleaved; best and median printed")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for slices in args.sizes:
        folder = build_ct_study(slices)
        megabytes = study_size(folder) / 1e6
        with tempfile.TemporaryDirectory() as data:
            proc, endpoint = start_server(folder, Path(data))
            try:
                disk_read_seconds(folder)  # warm the page cache
                disk = min(disk_read_seconds(folder) for _ in range(args.repeat))
                cases = [("plain", False)] + ([("anonymized", True)] if args.anonymize else [])
                bodies = {name: request_body(folder, anonymize) for name, anonymize in cases}
                for body in bodies.values():
                    timed_retrieve(endpoint, body)  # warm: the series learnt, the prepare-ahead helper started
                # Interleaved, so that a noisy moment hits both cases alike.
                runs = {name: [] for name in bodies}
                for _ in range(args.repeat):
                    for name, body in bodies.items():
                        runs[name].append(timed_retrieve(endpoint, body))
                best, median = {}, {}
                for name, measured in runs.items():
                    seconds = sorted(run[0] for run in measured)
                    received, status = measured[0][1], measured[0][2]
                    best[name] = received / 1e6 / seconds[0]
                    median[name] = received / 1e6 / seconds[len(seconds) // 2]
                    print(f"{slices:5d} slices {megabytes:7.1f} MB  {name:10s} {best[name]:7.1f} MB/s best, "
                          f"{median[name]:7.1f} median ({seconds[0]:.3f} s best, {status})  vs disk read "
                          f"{megabytes / disk:7.1f} MB/s: ratio {best[name] / (megabytes / disk):.3f}")
                if "anonymized" in best:
                    print(f"{slices:5d} slices  anonymized / plain MB/s = {best['anonymized'] / best['plain']:.2f} "
                          f"(best), {median['anonymized'] / median['plain']:.2f} (median)")
                print(f"{slices:5d} slices  server peak RSS {peak_rss_mb(proc):.0f} MB")
            finally:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
