"""wadows.dicom.frames: one frame decoded alone, equal to pydicom's whole-object decode, and frame choice."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, SecondaryCaptureImageStorage, generate_uid

from wadows.dicom.frames import FrameOutOfRange, FrameReadError, frame_count, read_frame
from wadows.dicom.part10 import open_source
from wadows.render import RenderError, RenderFailure, frame_index

# Files across the transfer syntaxes and pixel layouts the renderer meets.
FILES = [
    "CT_small.dcm",  # signed 16-bit
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "examples_ybr_color.dcm",  # 30 frames, JPEG baseline YBR_FULL_422
    "SC_rgb_rle_2frame.dcm",
    "rtdose.dcm",  # 15 frames, 32-bit
    "liver_1frame.dcm",  # Bits Allocated 1
    "image_dfl.dcm",  # deflated: pixel data parsed with the data set
    "examples_palette.dcm",
]


def _source(path: str):
    return open_source(open(path, "rb"))


@pytest.mark.parametrize("name", FILES)
def test_every_frame_equals_pydicom_decoding_the_whole_object(name):
    path = get_testdata_file(name)
    whole = pydicom.dcmread(path).pixel_array
    source = _source(path)
    count = frame_count(source.dataset)
    assert count == int(pydicom.dcmread(path).get("NumberOfFrames") or 1)
    for index in range(count):
        frame = read_frame(source, index)
        expected = whole[index] if count > 1 else whole
        assert frame.shape == expected.shape
        assert np.array_equal(frame, expected)


def test_ybr_frames_come_out_rgb():
    source = _source(get_testdata_file("examples_ybr_color.dcm"))
    frame = read_frame(source, 0)
    raw = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"))
    assert raw.PhotometricInterpretation == "YBR_FULL_422"
    assert np.array_equal(frame, raw.pixel_array[0])  # pydicom's pixel_array converts to RGB by default
    ybr = pydicom.pixels.pixel_array(get_testdata_file("examples_ybr_color.dcm"), index=0, raw=True)
    assert not np.array_equal(frame, ybr)


@pytest.mark.parametrize("index", [-1, 30, 31])
def test_frame_index_out_of_range(index):
    source = _source(get_testdata_file("examples_ybr_color.dcm"))
    with pytest.raises(FrameOutOfRange, match="30 frame"):
        read_frame(source, index)


def test_frame_count_defaults():
    assert frame_count(Dataset()) == 1
    ds = Dataset()
    ds.NumberOfFrames = ""
    assert frame_count(ds) == 1
    ds.NumberOfFrames = 7
    assert frame_count(ds) == 7


def test_frame_index_is_one_based_and_ignored_for_single_frame_objects():
    multi = _source(get_testdata_file("examples_ybr_color.dcm")).dataset
    single = _source(get_testdata_file("CT_small.dcm")).dataset
    assert frame_index(multi, None) == 0
    assert frame_index(multi, 1) == 0
    assert frame_index(multi, 30) == 29
    assert frame_index(single, 5) == 0  # PS3.18 §8.2.7: ignored when the object is not multi-frame
    with pytest.raises(RenderError) as error:
        frame_index(multi, 31)
    assert error.value.code == RenderFailure.FRAME_OUT_OF_RANGE


def _multi_frame_file(tmp_path, frames: list[bytes] | np.ndarray, rows: int, columns: int, encapsulated: bool):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless if encapsulated else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = len(frames)
    if encapsulated:
        ds.PixelData = encapsulate(frames, has_bot=True)
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = np.ascontiguousarray(frames).tobytes()
    path = tmp_path / "multi.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_read_frame_decodes_only_the_frame_asked_for(tmp_path):
    """50 RLE frames of which only frame k is a valid RLE stream: decoding any other frame fails, so
    reading frame k succeeds only if no other frame is decoded."""
    rows, columns, k = 16, 24, 37
    marker = np.zeros((rows, columns), dtype=np.uint8)
    marker[3:9, 5:20] = 200
    options = {"rows": rows, "columns": columns, "samples_per_pixel": 1, "bits_allocated": 8,
               "bits_stored": 8, "pixel_representation": 0, "photometric_interpretation": "MONOCHROME2",
               "number_of_frames": 1}
    valid = get_encoder(RLELossless).encode(marker, **options)
    garbage = b"\xff" * 64  # an RLE header announcing 2^32-1 segments
    frames = [valid if i == k else garbage for i in range(50)]
    path = _multi_frame_file(tmp_path, frames, rows, columns, encapsulated=True)
    with pytest.raises(Exception):
        pydicom.dcmread(path).pixel_array  # the whole object cannot be decoded
    source = _source(str(path))
    assert np.array_equal(read_frame(source, k), marker)
    with pytest.raises(FrameReadError, match="cannot decode frame 1"):
        read_frame(source, 0)


def test_read_frame_native_multi_frame_picks_the_right_frame(tmp_path):
    rows, columns, k = 8, 10, 41
    frames = np.zeros((50, rows, columns), dtype=np.uint8)
    frames[k, 2, 3] = 255
    path = _multi_frame_file(tmp_path, frames, rows, columns, encapsulated=False)
    source = _source(str(path))
    for index in (0, k - 1, k, k + 1, 49):
        frame = read_frame(source, index)
        assert (frame[2, 3] == 255) == (index == k)
        assert int(frame.sum()) == (255 if index == k else 0)


def test_keep_unused_bits_keeps_what_lies_above_bits_stored(tmp_path):
    """Embedded overlays live above Bits Stored: kept on request, cleared (and sign-extended) by default."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.BitsStored, ds.HighBit = 12, 11
    values = (ds.pixel_array.astype(np.uint16) & 0x0FFF)
    values[0:4, 0:4] |= 0x1000  # bit 12 set in one corner
    ds.PixelRepresentation = 0
    ds.PixelData = values.tobytes()
    path = tmp_path / "embedded.dcm"
    ds.save_as(path)
    source = _source(str(path))
    kept = read_frame(source, 0, keep_unused_bits=True)
    cleared = read_frame(source, 0)
    assert int(kept[0, 0]) & 0x1000 and not int(cleared[0, 0]) & 0x1000
    assert np.array_equal(cleared, values & 0x0FFF)


def test_no_pixel_data_is_a_clear_error():
    ds = pydicom.dcmread(get_testdata_file("rtplan.dcm"))
    buffer = io.BytesIO()
    ds.save_as(buffer)
    buffer.seek(0)
    with pytest.raises(FrameReadError, match="no pixel data"):
        read_frame(open_source(buffer), 0)
