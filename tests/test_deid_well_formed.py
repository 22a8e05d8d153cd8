"""Malformed input: only values well formed for their VR are kept, conversion and codec failures are documented
errors, and stored Pixel Data goes out only when its Image Pixel attributes account for it (FUZZ-DEID-1..11)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from test_fuzz_deid import rle_with_overflowing_segments
from wadows.deid import Deidentifier, Profile, Refusal
from wadows.deid.uids import UidMapper
from wadows.deid.well_formed import well_formed
from wadows.dicom import part10
from wadows.dicom.codec_panics import panics_raised_as_errors, without_panics
from wadows.dicom.element_values import value_of, whole_number
from wadows.dicom.frames import FrameReadError, read_frame
from wadows.dicom.image_pixel import check_described, pixel_options
from wadows.dicom.part10 import DicomReadError

KEY = b"well-formed-key"


def raw(tag: int, vr: str | None, value: bytes) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, vr is None, True)


@pytest.mark.parametrize("tag,vr,value,kept", [
    (0x00280010, "US", b"\x00\x02", True),                      # Rows: one US
    (0x00280010, "US", b"\x00\x02\x00\x02", False),             # two values where VM is 1
    (0x00280106, "US", b"DOE^JANE12", False),                   # a name as five US values
    (0x00280030, "US", b"\x01\x00\x02\x00", True),              # VM 2 allowed (judged as US here)
    (0x00189087, "FD", b"ZYXPLANT^QUORRA!", False),             # two FD where VM is 1
    (0x00191001, "FD", b"ZYXPLANT^QUORRA!", True),              # private: length only (Retain Safe Private judges)
    (0x00081234, "US", b"\x01\x00\x02\x00", False),             # public, unknown to the dictionary: one value only
    (0x00080060, "CS", b"CT", True),
    (0x00080060, "CS", b"ct", False),                           # lower case is not in the repertoire
    (0x00180022, "CS", b"HELICAL\\ZYXPLANT^QUORRA", False),
    (0x00080060, "CS", b"CT\x00\x00\x08\x00p\x00LO", False),    # stretched over the next element's header
    (0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.2\x00", True),
    (0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.2.ZYXPLANT", False),
    (0x00280030, "DS", b"0.488281011581420898\\0.488281011581420898", True),  # over-long, but digits
    (0x00280030, "DS", b"0.5\\DOE", False),
    (0x00201041, "DS", b"-12.5e+01 ", True),
    (0x00101010, "AS", b"042Y", True),
    (0x00101010, "AS", b"42 Y", False),
    (0x00080070, "LO", b"GE MEDICAL SYSTEMS ", True),
    (0x00080070, "LO", b"GE\x00\x10\x00\x20\x00\x12\x00PLANT", False),  # control characters
    (0x00081090, "LO", b"A" * 65, False),                      # longer than LO allows
    (0x00204000, "LT", b"line one\r\nline two\tend", True),    # format effectors are text in LT
    (0x00080070, "ZZ", b"GE", False),                           # not a DICOM VR
])
def test_well_formed(tag, vr, value, kept):
    assert well_formed(Dataset(), tag, vr, raw(tag, vr, value), uid_syntax=True) is kept


def test_a_class_uid_needs_uid_syntax_an_instance_uid_the_repertoire_only():
    leading_zero = raw(0x00080018, "UI", b"1.2.826.0.1.3680043.99.0123\x00")
    assert well_formed(Dataset(), 0x00080018, "UI", leading_zero) is True
    assert well_formed(Dataset(), 0x00080018, "UI", leading_zero, uid_syntax=True) is False


def test_decoded_elements_are_judged_too():
    ds = Dataset()
    ds.ScanOptions = "HELICAL\\ZYXPLANT^QUORRA"
    ds.add_new(0x00280106, "US", [1, 2, 3])
    assert not well_formed(ds, 0x00180022, "CS", ds["ScanOptions"])
    assert not well_formed(ds, 0x00280106, "US", ds[0x00280106])
    ds.Modality = "MR"
    assert well_formed(ds, 0x00080060, "CS", ds["Modality"])


def test_only_valid_uids_are_well_known():
    mapper = UidMapper(KEY)
    assert mapper.map("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    for looks_well_known in ("1.2.840.10008.5.1.4.1.1.2.ZYXPLANT", "1.2.840.10008.9\xc2.1", "1.2.840.10008.01"):
        assert mapper.map(looks_well_known).startswith("2.25.")


def _ct(**changes) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return pydicom.dcmread(io.BytesIO(_saved(ds)))


def _saved(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _deidentified(ds: Dataset, profile: Profile | None = None) -> Dataset:
    deidentifier = Deidentifier(profile or Profile(), KEY)
    return deidentifier.apply(ds, deidentifier.plan(ds))


def test_malformed_kept_values_are_dropped_well_formed_ones_stay():
    ds = _ct(ScanOptions="HELICAL\\ZYXPLANT^QUORRA", PixelSpacing=["0.488281011581420898", "0.5"])
    out = _deidentified(ds)
    assert "ScanOptions" not in out
    assert [str(v) for v in out.PixelSpacing] == ["0.488281011581420898", "0.5"]
    assert out.Modality == "CT" and out.Rows == ds.Rows


def test_a_malformed_label_that_must_stay_becomes_a_dummy():
    ds = _ct()
    ds.add_new(0x00281055, "LO", "WINDOW1\x07ZYXPLANT")  # Window Center & Width Explanation: cleaned (C)
    out = _deidentified(pydicom.dcmread(io.BytesIO(_saved(ds))))
    assert out[0x00281055].value == "ANONYMIZED"


def test_retain_uids_keeps_uids_but_not_text_in_them():
    ds = _ct()
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.99.0123"  # a leading zero: seen in the wild, kept
    ds.SeriesInstanceUID = "1.2.826.0.1.ZYXPLANT"            # text: dropped
    out = _deidentified(pydicom.dcmread(io.BytesIO(_saved(ds))), Profile(retain_uids=True))
    assert out.FrameOfReferenceUID == "1.2.826.0.1.3680043.99.0123"
    assert "SeriesInstanceUID" not in out


def test_plan_refuses_a_sop_class_uid_or_a_kept_sop_instance_uid_that_is_no_uid():
    with pytest.raises(Refusal, match="SOP Class UID"):
        Deidentifier(Profile(), KEY).plan(_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.2.ZYXPLANT"))
    ds = _ct(SOPInstanceUID="1.2.3.ZYXPLANT")
    with pytest.raises(Refusal, match="SOP Instance UID"):
        Deidentifier(Profile(retain_uids=True), KEY).plan(ds)
    assert Deidentifier(Profile(), KEY).plan(ds).new_sop_instance_uid.startswith("2.25.")


def test_a_private_creator_that_is_not_well_formed_keeps_no_block():
    ds = _ct()
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")  # B_value: on the safe private list
    ds.add_new(0x00210010, "LO", "SIEMENS MR HEADER\x01ZYXPLANT")
    ds.add_new(0x0021100C, "IS", "1000")
    out = _deidentified(pydicom.dcmread(io.BytesIO(_saved(ds))), Profile(retain_safe_private=True))
    assert 0x0019100C in out and 0x00190010 in out
    assert 0x0021100C not in out and 0x00210010 not in out


def test_conversion_errors_name_the_tag_not_the_value():
    ds = Dataset()
    ds[0x00280010] = raw(0x00280010, "US", b"\x01\x02\x03")
    ds[0x00100010] = raw(0x00100010, "XX", b"ZYXPLANT")
    for tag, where in ((0x00280010, "(0028,0010)"), (0x00100010, "(0010,0010)")):
        with pytest.raises(DicomReadError, match=r"\(0028,0010\)|\(0010,0010\)") as caught:
            value_of(ds, tag)
        assert where in str(caught.value) and "ZYXPLANT" not in str(caught.value)
    assert isinstance(ds._dict[0x00280010], RawDataElement)  # the data set is left as it was


@pytest.mark.parametrize("vr,value,number", [("US", b"\x08\x00", 8), ("IS", b"12", 12), ("IS", b"", None),
                                              ("LO", b"1 ", 1)])
def test_whole_number(vr, value, number):
    ds = Dataset()
    ds[0x00280008] = raw(0x00280008, vr, value)
    assert whole_number(ds, 0x00280008) == number


@pytest.mark.parametrize("vr,value", [("IS", b"1A"), ("PN", b"\x08"), ("US", b"\x01\x00\x02\x00")])
def test_what_is_not_a_whole_number(vr, value):
    ds = Dataset()
    ds[0x00280100] = raw(0x00280100, vr, value)
    with pytest.raises(DicomReadError):
        whole_number(ds, 0x00280100)
    with pytest.raises(DicomReadError):
        pixel_options(ds)


def _image(size: int, rows: int = 3, columns: int = 3, bits: int = 8) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = rows, columns, 1, bits
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def test_pixel_data_must_be_accounted_for():
    ds = _image(9)
    check_described(ds, 9)
    check_described(ds, 10)   # padded to even length
    check_described(ds, None)  # encapsulated: described, frames are the codec's business
    for length in (8, 11, 400):
        with pytest.raises(DicomReadError, match="Pixel Data is (shorter|longer)"):
            check_described(ds, length)
    del ds.Rows
    with pytest.raises(DicomReadError, match="nothing describes the Pixel Data"):
        check_described(ds, None)


def test_deflated_pixel_data_longer_than_described_is_not_copied():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData + b"ZYXPLANT^QUORRA!"
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    instance = part10.open_source(io.BytesIO(_saved(ds)))
    with pytest.raises(DicomReadError, match="longer"):
        b"".join(part10.encode(instance.dataset, instance, str(ExplicitVRLittleEndian)))


def test_a_codec_panic_is_a_frame_read_error_when_rendering():
    instance = part10.open_source(io.BytesIO(rle_with_overflowing_segments()))
    with pytest.raises(FrameReadError, match="CodecPanic"):
        read_frame(instance, 0)


def test_only_panics_are_turned_into_errors():
    def interrupted():
        yield 1
        raise KeyboardInterrupt

    items = without_panics(interrupted())
    assert next(items) == 1
    with pytest.raises(KeyboardInterrupt):
        next(items)
    with pytest.raises(SystemExit):
        with panics_raised_as_errors():
            raise SystemExit(3)
    closing = without_panics(iter(range(3)))
    next(closing)
    closing.close()  # GeneratorExit goes through: the generator closes as any other


def test_an_earlier_method_that_is_not_well_formed_is_not_carried_on():
    ds = _ct(PatientIdentityRemoved="YES")
    ds.add_new(0x00120063, "LO", "OLD TOOL\x00\x10\x00\x10\x00PN\x08\x00ZYXPLANT")
    out = _deidentified(pydicom.dcmread(io.BytesIO(_saved(ds))))
    assert "ZYXPLANT" not in str(out.DeidentificationMethod)
    ds = _ct(PatientIdentityRemoved="YES", DeidentificationMethod="OLD TOOL 1.0")
    assert list(_deidentified(ds).DeidentificationMethod)[0] == "OLD TOOL 1.0"


@pytest.mark.parametrize("value", [b"201108171ZYXPLANT", b"20110817101112\xc2\xa0"])
def test_a_shifted_date_time_keeps_no_text_after_its_time(value):
    ds = _ct()
    ds[0x0008002A] = raw(0x0008002A, "DT", value + b" " * (len(value) % 2))  # Acquisition DateTime
    out = _deidentified(pydicom.dcmread(io.BytesIO(_saved(ds))), Profile(retain_long_modified_dates=True))
    assert b"ZYXPLANT" not in _saved(out) and str(out.AcquisitionDateTime) in ("", "19000101000000")
