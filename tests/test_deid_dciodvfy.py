"""De-identified objects stay valid IODs: dciodvfy (dicom3tools) reports no error the input did not have."""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from wadows.deid import Deidentifier, PixelRuleSet, Profile, apply_pixel_edit

DCIODVFY = shutil.which("dciodvfy")
pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian dicom3tools) is not installed")

KEY = b"dciodvfy-test-key"
FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "test-SR.dcm", "reportsi.dcm",
         "waveform_ecg.dcm", "examples_overlay.dcm", "JPEG2000.dcm", "MR_small_implicit.dcm",
         "MR_small_bigendian.dcm", "liver_1frame.dcm", "693_J2KI.dcm", "JPEG-lossy.dcm"]
# Secondary captures and ultrasound: suspect for burned-in text, released only through a rule that blanks
# a band (decoded, blanked and stored uncompressed).
PIXEL_FILES = ["SC_rgb_rle.dcm", "examples_ybr_color.dcm", "examples_palette.dcm", "SC_rgb_rle_2frame.dcm",
               "image_dfl.dcm"]
SC_RULE = {"name": "test band", "match": {"Modality": ["OT", "US"]}, "regions": [[0, 0, 40, 8]]}

ALL_OPTIONS = Profile(retain_safe_private=True, retain_device_identity=True, retain_institution_identity=True,
                      retain_patient_characteristics=True, retain_long_modified_dates=True, clean_descriptors=True,
                      clean_structured_content=True, clean_graphics=True)


def _errors(path: Path) -> set[str]:
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    # UIDs change by design; compare the errors, not the values they quote.
    return {re.sub(r"\b\d+(\.\d+){3,}\b", "<uid>", re.sub(r"(?<=UID )\S+", "<uid>", line))
            for line in lines if line.startswith("Error")}


def _new_errors(name: str, profile: Profile, tmp: Path, rules: PixelRuleSet | None = None) -> set[str]:
    source = Path(get_testdata_file(name))
    ds = pydicom.dcmread(source, force=True)
    d = Deidentifier(profile, KEY, rules)
    plan = d.plan(ds)
    out = d.apply(ds, plan)
    if plan.pixel_edit is not None:
        apply_pixel_edit(out, plan)
    target = tmp / f"{profile is ALL_OPTIONS}-{name}"
    out.save_as(target, enforce_file_format=True)
    original = source
    if not pydicom.misc.is_dicom(source):  # dciodvfy wants a Part 10 file to compare with
        original = tmp / f"original-{name}"
        ds.save_as(original, enforce_file_format=True)
    return _errors(target) - _errors(original)


def _run_all(jobs, tmp: Path) -> dict[str, set[str]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda job: (job[0], _new_errors(job[0], job[1], tmp, job[2])), jobs)
        return {f"{name}/{i}": errors for i, (name, errors) in enumerate(results)}


def test_default_profile_outputs_have_no_new_dciodvfy_errors(tmp_path):
    rules = PixelRuleSet.from_mapping([SC_RULE])
    jobs = [(name, Profile(), None) for name in FILES] + [(name, Profile(), rules) for name in PIXEL_FILES]
    assert {k: v for k, v in _run_all(jobs, tmp_path).items() if v} == {}


def test_all_options_outputs_have_no_new_dciodvfy_errors(tmp_path):
    jobs = [(name, ALL_OPTIONS, None) for name in ("CT_small.dcm", "test-SR.dcm", "rtplan.dcm", "waveform_ecg.dcm",
                                                     "693_J2KI.dcm")]
    assert {k: v for k, v in _run_all(jobs, tmp_path).items() if v} == {}
