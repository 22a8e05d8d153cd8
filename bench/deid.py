"""Per-instance cost of the de-identification core against dicognito and dicom-anonymizer, same files, same run.

Two measurements per file, median of many runs:
  core        the de-identification call alone, on a header already parsed by pydicom (no pixel data)
              ours: plan + apply;  dicognito: Anonymizer().anonymize;  dicom-anonymizer: anonymize_dataset
  file        file in, Part 10 bytes out. Ours: the server's header-only path (parse up to Pixel Data, plan,
              apply, write the new header, stream the stored pixel bytes). Peers: dcmread, anonymize, dcmwrite.
Usage: .venv/bin/python bench/deid.py   (peers: pip install -e '.[bench]')
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctstudy import build_ct_study  # noqa: E402

from wadows.deid import Deidentifier, Profile  # noqa: E402
from wadows.dicom import part10  # noqa: E402

RUNS = 200


def median_ms(fn, prepare=lambda: None, runs=RUNS) -> float:
    samples = []
    for _ in range(runs):
        arg = prepare()
        start = time.perf_counter()
        fn(arg)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def header(path: Path):
    return lambda: pydicom.dcmread(path, stop_before_pixels=True)


def main() -> None:
    from dicognito.anonymizer import Anonymizer
    from dicomanonymizer import anonymize_dataset

    ours = Deidentifier(Profile(), b"benchmark key")
    files = {
        "512x512 CT (bench/ctstudy)": sorted(build_ct_study(200).glob("*.dcm"))[0],
        "CT_small.dcm": Path(get_testdata_file("CT_small.dcm")),
        "MR_small.dcm": Path(get_testdata_file("MR_small.dcm")),
        "test-SR.dcm": Path(get_testdata_file("test-SR.dcm")),
        "rtplan.dcm": Path(get_testdata_file("rtplan.dcm")),
    }

    def our_core(ds):
        ours.apply(ds, ours.plan(ds))

    def our_file(path):
        with open(path, "rb") as fp:
            source = part10.open_source(fp)
            plan = ours.plan(source.dataset)
            for _ in part10.encode(ours.apply(source.dataset, plan), source, source.transfer_syntax, plan.pixel_edit):
                pass

    def peer_file(anonymize):
        def run(path):
            ds = pydicom.dcmread(path)
            anonymize(ds)
            ds.save_as(io.BytesIO(), enforce_file_format=True)
        return run

    dicognito = lambda ds: Anonymizer().anonymize(ds)  # noqa: E731  (a new anonymizer per object, as per study)
    kitware = lambda ds: anonymize_dataset(ds)  # noqa: E731
    print(f"median of {RUNS} runs, ms per instance; ratio = faster peer / ours")
    print(f"{'file':28s} {'measure':6s} {'wadows':>8s} {'dicognito':>10s} {'dicom-anon':>10s} {'ratio':>6s}")
    for name, path in files.items():
        rows = {
            "core": (median_ms(our_core, header(path)), median_ms(dicognito, header(path)),
                     median_ms(kitware, header(path))),
            "file": (median_ms(our_file, lambda: path), median_ms(peer_file(dicognito), lambda: path),
                     median_ms(peer_file(kitware), lambda: path)),
        }
        for measure, (w, d, k) in rows.items():
            print(f"{name:28s} {measure:6s} {w:8.2f} {d:10.2f} {k:10.2f} {min(d, k) / w:6.1f}x")


if __name__ == "__main__":
    main()
