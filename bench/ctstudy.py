"""Synthetic CT studies for benchmarks: N slices of 512x512 16-bit, one study, one series, realistic headers.

Deterministic (seeded), written once into bench/out/ and reused by later runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

OUT = Path(__file__).resolve().parent / "out"


def build_ct_study(slices: int, root: Path | None = None) -> Path:
    """The folder of a `slices`-instance CT study (built if missing). Returns the folder."""
    folder = (root or OUT) / f"ct-{slices}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(slices)
    study_uid = generate_uid(entropy_srcs=[f"bench study {slices}"])
    series_uid = generate_uid(entropy_srcs=[f"bench series {slices}"])
    frame_uid = generate_uid(entropy_srcs=[f"bench frame {slices}"])
    for i in range(slices):
        ds = template.copy()
        ds.file_meta = template.file_meta.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"bench sop {slices} {i}"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PatientName, ds.PatientID = "Benchmark^Fictional^Patient", "BENCH-0001"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -0.5 * i]
        ds.SliceLocation = -0.5 * i
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16).tobytes()
        ds.save_as(folder / f"ct{i:05d}.dcm", enforce_file_format=True)
    marker.touch()
    return folder


def study_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.dcm"))


if __name__ == "__main__":
    for n in map(int, sys.argv[1:] or ["200"]):
        print(build_ct_study(n))
