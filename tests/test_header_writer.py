"""The fast data set writer must write exactly what pydicom's write_dataset writes."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from wadows.dicom import header_writer, part10

FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "test-SR.dcm", "rtplan.dcm", "waveform_ecg.dcm",
         "examples_overlay.dcm", "nested_priv_SQ.dcm", "priv_SQ.dcm", "reportsi.dcm", "liver_1frame.dcm",
         "JPEG2000.dcm", "MR_small_RLE.dcm"]


@pytest.mark.parametrize("name", FILES)
def test_fast_writer_matches_pydicom(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    implicit_vr, little_endian = ds.original_encoding
    if implicit_vr is None:
        pytest.skip("no encoding recorded")
    body = part10._output_data_set(ds)
    fast = header_writer.encode_data_set(body, implicit_vr, little_endian, little_endian)
    reference = DicomBytesIO()
    reference.is_implicit_VR, reference.is_little_endian = implicit_vr, little_endian
    write_dataset(reference, part10._output_data_set(pydicom.dcmread(path, stop_before_pixels=True, force=True)))
    assert fast == reference.getvalue()
