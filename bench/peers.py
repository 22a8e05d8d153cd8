"""wadows against Orthanc on the same CT studies, in one run (issue 6's comparison).

For each study size (slices of 512x512 CT, bench/ctstudy.py), loaded into a fresh Orthanc (Debian) and served by
wadows from its folder store:
  (a) wadows RAD-69 plain vs Orthanc's WADO-RS retrieval of the whole study (transfer-syntax=*);
  (b) wadows RAD-69 anonymized vs the same Orthanc WADO-RS;
  (c) wadows anonymized vs Orthanc's own anonymization of the same instances (POST /instances/{id}/anonymize,
      which returns the anonymized file), one instance after another as a client would;
  (d) wadows's peak RSS (the largest of its processes).
Timed runs interleaved (Orthanc, wadows plain, wadows anonymized, again), best (and median) of --runs each. Writes bench/out/peers.png (MB/s vs study size) when matplotlib is installed.
Usage: .venv/bin/python bench/peers.py [--sizes 50 200 2000] [--runs 15] [--anonymize-sample 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from ctstudy import OUT, build_ct_study, study_size  # noqa: E402
from orthanc import Orthanc  # noqa: E402
from retrieve import peak_rss_mb, request_body, start_server, timed_retrieve  # noqa: E402


def orthanc_study(orthanc: Orthanc, study_uid: str) -> float:
    start = time.perf_counter()
    with requests.get(f"{orthanc.dicomweb_url}/studies/{study_uid}", stream=True, timeout=900, headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            "Accept-Encoding": "identity"}) as reply:
        reply.raise_for_status()
        for _ in reply.iter_content(1 << 20):
            pass
    return time.perf_counter() - start


def orthanc_anonymize(orthanc: Orthanc, ids: list[str]) -> float:
    start = time.perf_counter()
    for orthanc_id in ids:
        reply = requests.post(f"{orthanc.url}/instances/{orthanc_id}/anonymize", json={}, timeout=120)
        reply.raise_for_status()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 2000])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each contender, interleaved; best kept")
    parser.add_argument("--anonymize-sample", type=int, default=50,
                        help="instances Orthanc anonymizes for (c) (it is slow; the rate is per instance)")
    args = parser.parse_args()
    rows = []
    for slices in args.sizes:
        folder = build_ct_study(slices)
        megabytes = study_size(folder) / 1e6
        study_uid = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            orthanc = Orthanc(work / "orthanc").start()
            (work / "data").mkdir()
            proc, endpoint = start_server(folder, work / "data")
            try:
                ids = [orthanc.upload(path)["ID"] for path in sorted(folder.glob("*.dcm"))]
                bodies = {name: request_body(folder, anonymize) for name, anonymize in (("plain", False),
                                                                                       ("anonymized", True))}
                # Interleaved, so that a noisy moment of the machine hits every contender alike; best of --runs.
                runs = {"orthanc": lambda: orthanc_study(orthanc, study_uid),
                        **{name: (lambda body=body: timed_retrieve(endpoint, body)[0]) for name, body in bodies.items()}}
                for run in runs.values():
                    run()  # warm: page cache, the series learnt, the prepare-ahead helper started
                samples = {name: [] for name in runs}
                for _ in range(args.runs):
                    for name, run in runs.items():
                        samples[name].append(run())
                t_orthanc, times = min(samples["orthanc"]), {name: min(samples[name]) for name in bodies}
                sample = ids[:args.anonymize_sample]
                t_orthanc_anon = orthanc_anonymize(orthanc, sample) / len(sample) * len(ids)
                rss = peak_rss_mb(proc)
            finally:
                orthanc.stop()
                proc.terminate()
                proc.wait(timeout=30)
        row = dict(slices=slices, mb=megabytes, orthanc=megabytes / t_orthanc, plain=megabytes / times["plain"],
                   anonymized=megabytes / times["anonymized"], orthanc_anonymize=megabytes / t_orthanc_anon, rss=rss)
        rows.append(row)
        print(f"{slices:5d} slices {megabytes:7.1f} MB | Orthanc WADO-RS {row['orthanc']:7.1f} MB/s | wadows plain "
              f"{row['plain']:7.1f} ({row['plain'] / row['orthanc']:.2f}x) | wadows anonymized {row['anonymized']:7.1f}"
              f" ({row['anonymized'] / row['orthanc']:.2f}x of Orthanc plain) | Orthanc's anonymization "
              f"{row['orthanc_anonymize']:6.1f} MB/s (wadows {row['anonymized'] / row['orthanc_anonymize']:.1f}x "
              f"faster) | wadows peak RSS {rss:.0f} MB", flush=True)
        # The best of a noisy machine's runs is a lucky draw; the medians of interleaved runs move less.
        medians = {name: megabytes / statistics.median(values) for name, values in samples.items()}
        print(f"{'':19s} medians | Orthanc WADO-RS {medians['orthanc']:7.1f} MB/s | wadows plain "
              f"{medians['plain']:7.1f} ({medians['plain'] / medians['orthanc']:.2f}x) | wadows anonymized "
              f"{medians['anonymized']:7.1f} ({medians['anonymized'] / medians['orthanc']:.2f}x of Orthanc plain)",
              flush=True)
    plot(rows)


def plot(rows: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    sizes = [r["slices"] for r in rows]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label in (("plain", "wadows RAD-69 plain"), ("anonymized", "wadows RAD-69 anonymized"),
                       ("orthanc", "Orthanc WADO-RS"), ("orthanc_anonymize", "Orthanc /anonymize")):
        axes.plot(sizes, [r[key] for r in rows], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("study size (512x512 CT slices)")
    axes.set_ylabel("MB/s (higher is better)")
    axes.set_title("Whole-study retrieval, same machine, same run")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    OUT.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(OUT / "peers.png", dpi=120)
    print(f"plot: {OUT / 'peers.png'}")


if __name__ == "__main__":
    main()
