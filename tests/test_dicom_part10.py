"""wadows.dicom.part10 on pydicom's own test files across every transfer syntax we read, plus synthetic
files built on disk (trailing elements, float pixel data, a 200 MB multi-frame object)."""

from __future__ import annotations

import copy
import io
import shutil
import struct
import subprocess
import tracemalloc
import uuid
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import decompress
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    UID,
)

from wadows.dicom.part10 import DicomReadError, SourceInstance, TranscodeError, encode, open_source

NATIVE_FILES = {
    "CT_small.dcm": ExplicitVRLittleEndian,  # signed 16-bit, 179 private elements
    "MR_small_implicit.dcm": ImplicitVRLittleEndian,
    "MR_small_bigendian.dcm": ExplicitVRBigEndian,
    "SC_rgb_small_odd_big_endian.dcm": ExplicitVRBigEndian,  # 3x3 RGB: odd value length, OW 8-bit in BE
    "SC_ybr_full_422_uncompressed.dcm": ExplicitVRLittleEndian,
    "examples_overlay.dcm": ExplicitVRLittleEndian,  # 12 of 16 bits + overlay group
    "rtdose_expb.dcm": ExplicitVRBigEndian,  # 32-bit, 15 frames
    "liver_1frame.dcm": ExplicitVRLittleEndian,  # Bits Allocated 1
}
COMPRESSED_FILES = {
    "MR_small_RLE.dcm": RLELossless,
    "SC_rgb_rle_2frame.dcm": RLELossless,
    "JPEG2000.dcm": UID("1.2.840.10008.1.2.4.91"),
    "693_J2KI.dcm": UID("1.2.840.10008.1.2.4.91"),
    "MR_small_jp2klossless.dcm": JPEG2000Lossless,
    "GDCMJ2K_TextGBR.dcm": JPEG2000Lossless,  # YBR_RCT
    "MR_small_jpeg_ls_lossless.dcm": JPEGLSLossless,
    "JPEGLSNearLossless_08.dcm": UID("1.2.840.10008.1.2.4.81"),
    "SC_rgb_jpeg_dcmtk.dcm": JPEGBaseline8Bit,
    "examples_ybr_color.dcm": JPEGBaseline8Bit,  # 30 frames YBR_FULL_422
    "JPGExtended.dcm": UID("1.2.840.10008.1.2.4.51"),
    "SC_rgb_jpeg_gdcm.dcm": UID("1.2.840.10008.1.2.4.70"),
}
# Files pydicom itself cannot decode here: the copy path must still carry them.
UNDECODABLE_FILES = {
    "JPEG2000-embedded-sequence-delimiter.dcm": UID("1.2.840.10008.1.2.4.91"),  # a fragment holds FFFE,E0DD
    "JPEG-lossy.dcm": UID("1.2.840.10008.1.2.4.51"),
}
NATIVE_TARGETS = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
LOSSLESS_TARGETS = [RLELossless, JPEGLSLossless, JPEG2000Lossless]


@pytest.fixture(autouse=True)
def _quiet_pydicom():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about oddities of its own test files
        yield


def path_of(name: str) -> Path:
    return Path(get_testdata_file(name))


def opened(name: str) -> SourceInstance:
    return open_source(open(path_of(name), "rb"))


def written(header: Dataset, source: SourceInstance, ts: str, **kwargs) -> bytes:
    return b"".join(encode(header, source, ts, **kwargs))


def parsed(data: bytes) -> pydicom.FileDataset:
    return pydicom.dcmread(io.BytesIO(data))


def stored_pixel_value(path: Path, source: SourceInstance) -> bytes:
    """The stored value bytes of Pixel Data, from the file itself (items included for encapsulated data)."""
    ref = source.pixel_data
    data = path.read_bytes()
    if ref.value_length is None:
        return data[ref.value_offset:ref.end_offset - 8]  # without the sequence delimiter
    return data[ref.value_offset:ref.value_offset + ref.value_length]


def pixel_element_value(data: bytes) -> bytes:
    """Pixel Data value bytes of a Part 10 file we wrote (undefined-length values without the delimiter)."""
    ds = parsed(data)
    return bytes(ds.PixelData)


def write_native_file(path: Path, ds: Dataset, pixel_chunks, length: int, vr: str) -> None:
    """`ds` as an Explicit VR LE file, then a Pixel Data element appended chunk by chunk, as it is given."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as fp:
        fp.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, vr.encode(), 0, length))
        for chunk in pixel_chunks:
            fp.write(chunk)


def rgb_header(rows: int, columns: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.4343"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = rows, columns, 3, 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds


# ---------------------------------------------------------------- open_source


@pytest.mark.parametrize("name", sorted(NATIVE_FILES))
def test_native_pixel_data_offsets_match_the_file(name):
    path = path_of(name)
    source = opened(name)
    ref = source.pixel_data
    data = path.read_bytes()
    little = source.transfer_syntax != ExplicitVRBigEndian
    assert data[ref.tag_offset:ref.tag_offset + 4] == struct.pack("<HH" if little else ">HH", 0x7FE0, 0x0010)
    header_size = 8 if source.transfer_syntax == ImplicitVRLittleEndian else 12
    assert ref.value_offset == ref.tag_offset + header_size
    assert ref.end_offset == ref.value_offset + ref.value_length
    full = pydicom.dcmread(path)
    assert data[ref.value_offset:ref.end_offset] == bytes(full.PixelData)
    assert ref.vr in ("OB", "OW")
    assert "PixelData" not in source.dataset
    assert source.transfer_syntax == NATIVE_FILES[name]


@pytest.mark.parametrize("name", sorted({**COMPRESSED_FILES, **UNDECODABLE_FILES}))
def test_encapsulated_pixel_data_span_ends_after_the_delimiter(name):
    path = path_of(name)
    source = opened(name)
    ref = source.pixel_data
    data = path.read_bytes()
    assert ref.value_length is None
    assert data[ref.tag_offset:ref.tag_offset + 4] == b"\xe0\x7f\x10\x00"
    assert data[ref.value_offset:ref.value_offset + 4] == b"\xfe\xff\x00\xe0"  # the Basic Offset Table item
    assert data[ref.end_offset - 8:ref.end_offset] == b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    assert stored_pixel_value(path, source) == bytes(pydicom.dcmread(path).PixelData)


def with_trailing_padding(tmp_path: Path) -> Path:
    """CT_small with Data Set Trailing Padding (FFFC,FFFC) after Pixel Data."""
    ds = pydicom.dcmread(path_of("CT_small.dcm"))
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 64)
    path = tmp_path / "trailing.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_elements_after_pixel_data_are_outside_the_span_and_dropped(tmp_path):
    path = with_trailing_padding(tmp_path)
    data = path.read_bytes()
    source = open_source(open(path, "rb"))
    ref = source.pixel_data
    assert ref.end_offset == len(data) - (12 + 64)
    assert data[ref.end_offset:ref.end_offset + 4] == b"\xfc\xff\xfc\xff"
    out = parsed(written(source.dataset, source, ExplicitVRLittleEndian))
    assert 0xFFFCFFFC not in out
    assert np.array_equal(out.pixel_array, pydicom.dcmread(path).pixel_array)


def test_deflated_source_is_parsed_whole_in_memory():
    source = opened("image_dfl.dcm")
    assert source.transfer_syntax == DeflatedExplicitVRLittleEndian
    assert source.pixel_data is None
    assert "PixelData" in source.dataset
    expected = pydicom.dcmread(path_of("image_dfl.dcm")).pixel_array
    for target in (ExplicitVRLittleEndian, RLELossless, ExplicitVRBigEndian):
        out = parsed(written(source.dataset, source, target))
        assert np.array_equal(out.pixel_array, expected)


def test_deflated_output_from_a_compressed_source():
    source = opened("SC_rgb_jpeg_dcmtk.dcm")
    out = parsed(written(source.dataset, source, DeflatedExplicitVRLittleEndian))
    reference = decompress(pydicom.dcmread(path_of("SC_rgb_jpeg_dcmtk.dcm")), generate_instance_uid=False)
    assert out.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert np.array_equal(out.pixel_array, reference.pixel_array)


def test_float_pixel_data_object_keeps_its_pixels(tmp_path):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 4, 4, 1, 32
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.FloatPixelData = np.arange(16, dtype="<f4").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "float.dcm"
    ds.save_as(path, enforce_file_format=True)
    source = open_source(open(path, "rb"))
    assert source.pixel_data is None
    out = parsed(written(source.dataset, source, ImplicitVRLittleEndian))
    assert bytes(out.FloatPixelData) == bytes(ds.FloatPixelData)


def test_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("CompressedSamples^CT1 is not a DICOM file\n" * 20)
    with pytest.raises(DicomReadError) as info:
        open_source(open(path, "rb"))
    assert "CompressedSamples" not in str(info.value)


def test_empty_file_is_refused():
    with pytest.raises(DicomReadError, match="empty"):
        open_source(io.BytesIO(b""))


def test_file_without_preamble_is_refused():
    with pytest.raises(DicomReadError, match="Part 10"):
        opened("no_meta.dcm")


@pytest.mark.parametrize("cut", ["meta", "header value", "header tag", "before pixel data", "pixel value", "fragment"])
def test_truncated_files_are_refused(cut):
    ct = path_of("CT_small.dcm").read_bytes()
    ct_source = opened("CT_small.dcm")
    rle = path_of("MR_small_RLE.dcm").read_bytes()
    rle_source = opened("MR_small_RLE.dcm")
    name_at = ct.index(b"CompressedSamples^CT1")
    data = {
        "meta": ct[:200],
        "header value": ct[:name_at + 5],  # inside Patient's Name
        "header tag": ct[:ct_source.pixel_data.tag_offset - 300 + 3],
        "before pixel data": ct[:ct_source.pixel_data.tag_offset],  # an image cut at an element boundary
        "pixel value": ct[:ct_source.pixel_data.value_offset + 100],
        "fragment": rle[:rle_source.pixel_data.value_offset + 40],
    }[cut]
    with pytest.raises(DicomReadError) as info:
        open_source(io.BytesIO(data))
    assert "CompressedSamples" not in str(info.value)


def test_pydicom_truncated_test_files_are_refused():
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        with pytest.raises(DicomReadError):
            opened(name)


# ---------------------------------------------------------------- encode: the stored syntax, no edit


ALL_FILES = {**NATIVE_FILES, **COMPRESSED_FILES, **UNDECODABLE_FILES}


@pytest.mark.parametrize("name", sorted(ALL_FILES))
def test_same_syntax_without_edit_copies_the_pixel_bytes(name):
    path = path_of(name)
    source = opened(name)
    data = written(source.dataset, source, source.transfer_syntax)
    out = parsed(data)
    assert out.file_meta.TransferSyntaxUID == source.transfer_syntax
    stored = stored_pixel_value(path, source)
    copied = bytes(out.PixelData)
    assert copied[:len(stored)] == stored
    assert len(copied) == len(stored) + len(stored) % 2  # odd values get one pad byte
    if name not in UNDECODABLE_FILES:
        assert np.array_equal(out.pixel_array, pydicom.dcmread(path).pixel_array)


def test_odd_length_pixel_data_goes_out_padded(tmp_path):
    ds = rgb_header(rows=3, columns=3)
    path = tmp_path / "odd.dcm"
    write_native_file(path, ds, [bytes(range(27))], 27, "OB")  # not padded: odd on disk, as some writers do
    source = open_source(open(path, "rb"))
    assert source.pixel_data.value_length == 27
    out = written(source.dataset, source, ImplicitVRLittleEndian)
    assert pixel_element_value(out) == bytes(range(27)) + b"\0"
    assert parsed(out).pixel_array.tolist() == np.arange(27).reshape(3, 3, 3).tolist()


def test_copy_path_reads_in_chunks_of_the_requested_size():
    source = opened("CT_small.dcm")
    chunks = list(encode(source.dataset, source, ImplicitVRLittleEndian, chunk_size=1000))
    pixel_chunks = chunks[3:]  # preamble+meta, data set, pixel element header
    assert len(pixel_chunks) == 33  # 32768 bytes of pixels
    assert all(len(chunk) <= 1000 for chunk in pixel_chunks)


def test_file_meta_is_rebuilt_for_the_output():
    source = opened("CT_small.dcm")
    header = copy.deepcopy(source.dataset)
    header.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.999"
    out = parsed(written(header, source, ImplicitVRLittleEndian))
    meta = out.file_meta
    assert meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.3680043.8.498.999"
    assert meta.MediaStorageSOPClassUID == CTImageStorage
    assert meta.ImplementationClassUID != source.dataset.file_meta.ImplementationClassUID
    assert meta.ImplementationVersionName.startswith("WADOWS_")
    assert meta.ImplementationClassUID == "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                  "urn:wadows:implementation-class").int)
    assert header.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # the caller's file meta is untouched
    assert header.file_meta.MediaStorageSOPInstanceUID == source.dataset.SOPInstanceUID
    raw = written(header, source, ImplicitVRLittleEndian)
    assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
    group_length = struct.unpack("<L", raw[140:144])[0]
    assert raw[144 + group_length:144 + group_length + 2] == b"\x08\x00"  # the data set starts right after


def test_header_changes_are_written_and_the_source_is_left_alone():
    source = opened("CT_small.dcm")
    header = copy.deepcopy(source.dataset)
    header.PatientName = "ANON^PATIENT"
    del header.InstitutionName
    for target in (ExplicitVRLittleEndian, JPEGLSLossless):
        out = parsed(written(header, source, target))
        assert out.PatientName == "ANON^PATIENT"
        assert "InstitutionName" not in out
        assert out.SOPInstanceUID == header.SOPInstanceUID  # never a new one, even when compressing
    assert source.dataset.PatientName == "CompressedSamples^CT1"


def test_recoding_does_not_touch_the_callers_header():
    source = opened("examples_ybr_color.dcm")
    header = copy.deepcopy(source.dataset)
    out = parsed(written(header, source, ExplicitVRLittleEndian))
    assert out.PhotometricInterpretation == "RGB"
    assert header.PhotometricInterpretation == "YBR_FULL_422"


# ---------------------------------------------------------------- encode: other syntaxes


@pytest.mark.parametrize("name", sorted(COMPRESSED_FILES))
def test_decoding_to_explicit_le_matches_pydicom_decompress(name):
    source = opened(name)
    out = parsed(written(source.dataset, source, ExplicitVRLittleEndian))
    reference = decompress(pydicom.dcmread(path_of(name)), generate_instance_uid=False)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not out["PixelData"].is_undefined_length
    assert out.PhotometricInterpretation == reference.PhotometricInterpretation
    assert out.get("NumberOfFrames") == reference.get("NumberOfFrames")
    assert np.array_equal(out.pixel_array, reference.pixel_array)
    lossy = source.transfer_syntax in (JPEGBaseline8Bit, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
                                       "1.2.840.10008.1.2.4.91")
    assert (out.get("LossyImageCompression") == "01") == lossy


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=lambda ts: ts.keyword)
@pytest.mark.parametrize("name", sorted(NATIVE_FILES))
def test_native_conversions_keep_the_pixels(name, target):
    source = opened(name)
    data = written(source.dataset, source, target)
    out = parsed(data)
    assert out.file_meta.TransferSyntaxUID == target
    assert np.array_equal(out.pixel_array, pydicom.dcmread(path_of(name)).pixel_array)
    if target == DeflatedExplicitVRLittleEndian:
        group_length = struct.unpack("<L", data[140:144])[0]
        inflated = zlib.decompress(data[144 + group_length:], -zlib.MAX_WBITS)  # raw deflate, PS3.5 A.5
        assert inflated[:2] == b"\x08\x00"


def test_big_endian_output_swaps_whole_pixel_values():
    source = opened("MR_small.dcm")
    array = pydicom.dcmread(path_of("MR_small.dcm")).pixel_array
    out = written(source.dataset, source, ExplicitVRBigEndian)
    assert pixel_element_value(out) == array.astype(">i2").tobytes()
    dose = opened("rtdose.dcm")  # 32-bit
    out = written(dose.dataset, dose, ExplicitVRBigEndian)
    assert pixel_element_value(out) == pydicom.dcmread(path_of("rtdose.dcm")).pixel_array.astype(">u4").tobytes()


def test_big_endian_round_trip_gives_back_the_stored_bytes(tmp_path):
    source = opened("MR_small.dcm")
    big = tmp_path / "big.dcm"
    big.write_bytes(written(source.dataset, source, ExplicitVRBigEndian))
    back_source = open_source(open(big, "rb"))
    back = written(back_source.dataset, back_source, ExplicitVRLittleEndian)
    assert pixel_element_value(back) == bytes(pydicom.dcmread(path_of("MR_small.dcm")).PixelData)


def test_big_endian_output_swaps_word_valued_header_elements():
    source = opened("examples_palette.dcm")  # palette LUT data are OW
    out = parsed(written(source.dataset, source, ExplicitVRBigEndian))
    stored = bytes(source.dataset.RedPaletteColorLookupTableData)
    assert bytes(out.RedPaletteColorLookupTableData) == np.frombuffer(stored, "<u2").astype(">u2").tobytes()
    assert np.array_equal(out.pixel_array, pydicom.dcmread(path_of("examples_palette.dcm")).pixel_array)


ROUND_TRIP_SOURCES = ["CT_small.dcm", "examples_overlay.dcm", "MR_small_bigendian.dcm", "SC_rgb_rle_2frame.dcm",
                      "examples_palette.dcm", "MR_small_RLE.dcm", "SC_ybr_full_422_uncompressed.dcm"]


@pytest.mark.parametrize("target", LOSSLESS_TARGETS, ids=lambda ts: ts.keyword)
@pytest.mark.parametrize("name", ROUND_TRIP_SOURCES)
def test_lossless_encoders_round_trip_exactly(name, target):
    source = opened(name)
    out = parsed(written(source.dataset, source, target))
    assert out.file_meta.TransferSyntaxUID == target
    assert out["PixelData"].is_undefined_length
    expected = pydicom.dcmread(path_of(name)).pixel_array
    assert np.array_equal(out.pixel_array, expected)


def test_impossible_conversions_raise_before_the_first_byte():
    dose = opened("rtdose.dcm")  # Bits Allocated 32: no RLE profile (PS3.5 8.2.2)
    with pytest.raises(TranscodeError, match="RLE"):
        encode(dose.dataset, dose, RLELossless)  # raised by the call itself, not by iteration
    jpeg = opened("SC_rgb_jpeg_dcmtk.dcm")
    with pytest.raises(TranscodeError, match="JPEG Baseline"):
        encode(jpeg.dataset, jpeg, JPEGBaseline8Bit, pixel_edit=lambda a, h: a)
    with pytest.raises(TranscodeError):
        encode(jpeg.dataset, jpeg, "1.2.3.4")


def dciodvfy_errors(path: Path) -> set[str]:
    report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return {line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) not installed")
@pytest.mark.parametrize("name, target", [
    ("CT_small.dcm", JPEG2000Lossless),
    ("examples_ybr_color.dcm", ExplicitVRLittleEndian),  # Photometric Interpretation must change with the pixels
    ("SC_rgb_jpeg_dcmtk.dcm", RLELossless),
    ("MR_small_jpeg_ls_lossless.dcm", ExplicitVRBigEndian),
    ("examples_overlay.dcm", ImplicitVRLittleEndian),
])
def test_outputs_add_no_dciodvfy_errors(name, target, tmp_path):
    source = opened(name)
    out = tmp_path / "out.dcm"
    out.write_bytes(written(source.dataset, source, target))
    assert dciodvfy_errors(out) <= dciodvfy_errors(path_of(name))


# ---------------------------------------------------------------- pixel_edit


def blank(calls: list):
    def edit(array: np.ndarray, header: Dataset) -> np.ndarray:
        calls.append((array.shape, str(header.PhotometricInterpretation)))
        array[2:6, 3:9] = 0
        return array
    return edit


@pytest.mark.parametrize("name, target", [
    ("CT_small.dcm", ExplicitVRLittleEndian),  # native, same syntax: re-encoded all the same
    ("MR_small_bigendian.dcm", ImplicitVRLittleEndian),
    ("MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless),  # compressed, back into its own syntax
    ("SC_rgb_jpeg_dcmtk.dcm", ExplicitVRLittleEndian),  # lossy source out uncompressed
    ("SC_rgb_rle_2frame.dcm", RLELossless),  # multi-frame
    ("MR_small_RLE.dcm", JPEG2000Lossless),
])
def test_pixel_edit_is_applied_to_every_frame(name, target):
    source = opened(name)
    calls: list = []
    out = parsed(written(source.dataset, source, target, pixel_edit=blank(calls)))
    original = pydicom.dcmread(path_of(name)).pixel_array  # pydicom's decoding, YCbCr as RGB
    frames = int(source.dataset.get("NumberOfFrames", 1) or 1)
    assert len(calls) == frames  # one call per frame, each a single frame
    assert all(shape[:2] == (source.dataset.Rows, source.dataset.Columns) for shape, _ in calls)
    edited = out.pixel_array
    expected = original.copy()
    if source.dataset.SamplesPerPixel > 1:
        expected[..., 2:6, 3:9, :] = 0
    else:
        expected[..., 2:6, 3:9] = 0
    assert np.array_equal(edited, expected)
    assert out.file_meta.TransferSyntaxUID == target


def test_pixel_edit_sees_rgb_and_stored_high_bits():
    seen = {}

    def look(array, header):
        seen.setdefault("photometric", str(header.PhotometricInterpretation))
        seen.setdefault("max", int(array.max()))
        return array

    ybr = opened("SC_ybr_full_422_uncompressed.dcm")
    written(ybr.dataset, ybr, ExplicitVRLittleEndian, pixel_edit=look)
    assert seen["photometric"] == "RGB"  # blanking to 0 means black

    seen.clear()
    ds = pydicom.dcmread(path_of("MR_small.dcm"))
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.PixelData = (np.frombuffer(ds.PixelData, "<u2") | 0x8000).astype("<u2").tobytes()  # an embedded overlay bit
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    source = open_source(io.BytesIO(buffer.getvalue()))
    written(source.dataset, source, ExplicitVRLittleEndian, pixel_edit=look)
    assert seen["max"] >= 0x8000  # the edit gets to clear it itself


def test_pixel_edit_must_keep_the_shape():
    source = opened("CT_small.dcm")
    with pytest.raises(TranscodeError, match="shape"):
        encode(source.dataset, source, ExplicitVRLittleEndian, pixel_edit=lambda a, h: a[:10])


class RefusedByEdit(Exception):
    pass


def test_exceptions_of_the_pixel_edit_reach_the_caller_unchanged():
    calls = []

    def refuse_second_frame(array, header):
        calls.append(1)
        if len(calls) == 2:
            raise RefusedByEdit("second frame")
        return array

    def refuse_at_once(array, header):
        raise RefusedByEdit("first frame")

    source = opened("SC_rgb_rle_2frame.dcm")
    stream = encode(source.dataset, source, RLELossless, pixel_edit=refuse_second_frame)  # frame 1 passes
    with pytest.raises(RefusedByEdit, match="second"):
        for _ in stream:
            pass
    with pytest.raises(RefusedByEdit, match="first"):
        encode(source.dataset, source, RLELossless, pixel_edit=refuse_at_once)


# ---------------------------------------------------------------- memory


ROWS = COLUMNS = 1024
FRAMES = 100  # 100 x 2 MB = 200 MB of pixels


@pytest.fixture(scope="module")
def big_native_file(tmp_path_factory) -> Path:
    """A 200 MB multi-frame Explicit VR LE object, written frame by frame without holding it in memory."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.4242"
    ds.PatientName = "Synthetic^Big"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    frame = (np.arange(ROWS * COLUMNS, dtype="<u4") % 65521).astype("<u2")
    path = tmp_path_factory.mktemp("big") / "big.dcm"
    frames = ((frame + index).tobytes() for index in range(FRAMES))
    write_native_file(path, ds, frames, FRAMES * frame.nbytes, "OW")
    return path


def peak_traced_bytes(source: SourceInstance, target: str, **kwargs) -> tuple[int, int]:
    """(bytes streamed, peak traced allocation while streaming)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in encode(source.dataset, source, target, **kwargs))
        return total, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_a_200_mb_object_stays_in_bounded_memory(big_native_file):
    with open(big_native_file, "rb") as fp:
        source = open_source(fp)
        total, peak = peak_traced_bytes(source, ImplicitVRLittleEndian)
    assert total > FRAMES * ROWS * COLUMNS * 2
    assert peak < 16 * 2**20  # copy path: about one 1 MB chunk


def test_recoding_a_200_mb_object_goes_frame_by_frame(big_native_file):
    calls = []

    def edit(array, header):
        calls.append(array.shape)
        array[:10] = 0
        return array

    with open(big_native_file, "rb") as fp:
        source = open_source(fp)
        total, peak = peak_traced_bytes(source, ExplicitVRBigEndian, pixel_edit=edit)
    assert len(calls) == FRAMES and calls[0] == (ROWS, COLUMNS)
    assert total > FRAMES * ROWS * COLUMNS * 2
    assert peak < 24 * 2**20  # a decoded frame (2 MB) and its encoded copy, not 200 MB
