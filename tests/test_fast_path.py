"""Anonymized retrieval prepares most headers by difference from a similar object prepared before (the previous
slice of a series): read by difference (similar_header), de-identified by difference (walk_by_difference) and
written by splicing (spliced_copy). Whatever the object, the outcome must be exactly the reference path's
(open_source, plan, apply, plan_copy / encode): the same refusal, the same new UID, the same bytes; or the
fast path steps aside (None) and the reference runs.

Pairs of objects are made the way a series makes them: a template, and a copy with the values that change
from slice to slice changed (UIDs, numbers, positions, dates, times, descriptions, names, private values);
also copies where something changed that the fast path must not take by difference (a sequence, the Patient
ID, the character set, Burned In Annotation).
"""

from __future__ import annotations

import copy
import io
import itertools
import sys
import types
import warnings
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.data.data_manager import DATA_ROOT
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

import planting
from test_deid_hypothesis import POOL, Planted, _dataset
from wadows.deid import Deidentifier, Profile, Refusal
from wadows.deid.pixels import PixelRule, PixelRuleSet
from wadows.dicom import header_writer, part10, similar_header
from wadows.dicom.file_meta_bytes import file_meta_bytes
from wadows.dicom.transcode import choose_transfer_syntax
from wadows.sample import build_sample
from wadows.wado import anonymized
from wadows.wado.rejected import Rejected

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ctstudy import build_ct_study  # noqa: E402

KEY = b"fast path test key"
PROFILES = {
    "default": Profile(),
    "modified dates": Profile(retain_long_modified_dates=True),
    "safe private": Profile(retain_safe_private=True),
    "retain uids": Profile(retain_uids=True),
}
# The stored syntax is accepted for every test file that has pixels we can copy; the explicit VR one otherwise.
ACCEPTED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")


def _testdata_files() -> list[str]:
    # The files bundled with pydicom (get_testdata_files would try to download more).
    return sorted(str(p) for p in Path(DATA_ROOT, "test_files").rglob("*.dcm"))


def _read(path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path)
        except Exception:
            return None


def _write(ds: Dataset, path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds.save_as(path, enforce_file_format=True)
            return True
        except Exception:
            return False


# ----------------------------------------------------------------------------------------------------------------
# The two paths


def _record(path: Path) -> types.SimpleNamespace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    return types.SimpleNamespace(transfer_syntax_uid=str(ts))


def reference(deidentifier: Deidentifier, path: Path) -> tuple:
    """What the reference path makes of the file: a refusal, or the new UID, the syntax and the whole object."""
    record = _record(path)
    with open(path, "rb") as fp:
        try:
            instance = part10.open_source(fp)
        except part10.DicomReadError as exc:
            return ("unreadable", str(exc))
        try:
            plan = deidentifier.plan(instance.dataset)
        except Refusal as refusal:
            return ("refused", f"Unable to anonymize: {refusal.reason}")
        target = choose_transfer_syntax(record.transfer_syntax_uid, ACCEPTED, pixel_edit=plan.pixel_edit is not None)
        if target is None:
            return ("no syntax",)
        if plan.pixel_edit is not None:
            return ("pixel edit", plan.new_sop_instance_uid, target)
        header = deidentifier.apply(instance.dataset, plan)
        copied = part10.plan_copy(header, instance, target)
        encoded = b"".join(part10.encode(header, instance, target))
        if copied is None:
            return ("encoded", plan.new_sop_instance_uid, target, encoded)
        assert _materialized(copied, path) == encoded  # plan_copy keeps its promise
        return ("copy", plan.new_sop_instance_uid, target, encoded)


def fast(deidentifier: Deidentifier, path: Path) -> tuple | None:
    """What the fast path makes of the file, from what `deidentifier` learnt before; None when it steps aside."""
    record = _record(path)
    with open(path, "rb") as fp:
        try:
            prepared = anonymized._prepare_by_difference(deidentifier, fp, record, ACCEPTED)
        except Rejected as rejected:
            return ("refused", rejected.context)
    if prepared is None:
        return None
    plan, target, copied = prepared
    if copied is None:
        return ("pixel edit", plan.new_sop_instance_uid, target)
    return ("copy", plan.new_sop_instance_uid, target, _materialized(copied, path))


def learn(deidentifier: Deidentifier, path: Path) -> None:
    """Prepare `path` from scratch, as the server does for the first object of a series."""
    with open(path, "rb") as fp:
        try:
            anonymized._prepare_from_scratch(deidentifier, fp, _record(path), ACCEPTED, True)
        except (Rejected, part10.DicomReadError, part10.TranscodeError):
            pass


def _materialized(copied: part10.CopyPlan, path: Path) -> bytes:
    data = Path(path).read_bytes()
    return copied.head + data[copied.start:copied.end] + copied.tail


class Tally:
    def __init__(self) -> None:
        self.by_difference = 0
        self.stepped_aside = 0


def check_pair(profile: Profile, template: Path, variant: Path, tally: Tally | None = None) -> None:
    """The fast path's outcome for `variant` (after learning `template`) is the reference's, or None."""
    deidentifier = Deidentifier(profile, KEY)
    learn(deidentifier, template)
    outcome = fast(deidentifier, variant)
    if outcome is None:
        if tally:
            tally.stepped_aside += 1
        return
    expected = reference(deidentifier, variant)
    if expected[0] == "encoded":  # the reference could not plan a copy: the fast path must not have either
        raise AssertionError(f"fast path made a copy where the reference could not ({variant})")
    assert outcome[:3] == expected[:3], variant
    assert outcome == expected, f"bytes differ for {variant}"
    if tally:
        tally.by_difference += 1


# ----------------------------------------------------------------------------------------------------------------
# Making a series out of one object


def _new_uid(tag: str) -> str:
    return generate_uid(entropy_srcs=["wadows fast path test", tag])


SLICE_VALUES = {
    "InstanceNumber": "87",
    "SliceLocation": "-123.25",
    "ImagePositionPatient": ["-250.0", "-250.0", "-123.25"],
    "WindowCenter": "41",
    "ContentDate": "20191231",
    "ContentTime": "235959.123",
    "AcquisitionTime": "101010",
    "AcquisitionDateTime": "20191231101010",
    "ImageComments": "Slice of Zyxplant nine",
    "SeriesDescription": "CT CHEST W/O CONTRAST",
    "OperatorsName": "Otherop^Tech",
    "FrameOfReferenceUID": _new_uid("frame"),
    "SeriesInstanceUID": _new_uid("series"),
    "AccessionNumber": "ACC-99",
    "StationName": "STATION9",
}


def next_slice(ds: Dataset, keywords=tuple(SLICE_VALUES), seed: str = "", private: bool = True) -> Dataset:
    """A copy of `ds` as the next object of its series: new SOP Instance UID, some values changed (and one
    private value, with `private`)."""
    out = copy.deepcopy(ds)
    uid = _new_uid("sop" + seed + str(ds.get("SOPInstanceUID", "")))
    out.SOPInstanceUID = uid
    out.file_meta.MediaStorageSOPInstanceUID = uid
    for keyword in keywords:
        if keyword in out:
            setattr(out, keyword, SLICE_VALUES[keyword])
    for elem in list(out) if private else ():  # a vendor's table position, say
        if elem.tag.is_private and elem.tag.element >= 0x1000 and elem.VR in ("LO", "SH", "DS", "IS", "UL", "US"):
            out[elem.tag].value = {"LO": "PRIVSLICE7", "SH": "PS7", "DS": "7.5", "IS": "7"}.get(elem.VR, 7)
            break
    return out


def _pair(ds: Dataset, variant: Dataset, folder: Path, name: str) -> tuple[Path, Path] | None:
    template_path, variant_path = folder / f"{name}-template.dcm", folder / f"{name}-variant.dcm"
    if not (_write(ds, template_path) and _write(variant, variant_path)):
        return None
    return template_path, variant_path


# ----------------------------------------------------------------------------------------------------------------
# Every pydicom test file, every profile


@pytest.fixture(scope="module")
def testdata_pairs(tmp_path_factory) -> list[tuple[str, Path, Path]]:
    folder = tmp_path_factory.mktemp("testdata-pairs")
    pairs = []
    for number, path in enumerate(_testdata_files()):
        ds = _read(path)
        if ds is None or "SOPInstanceUID" not in ds or getattr(ds, "file_meta", None) is None:
            continue
        for kind, variant in (("slice", next_slice(ds, seed=str(number))), ("same", copy.deepcopy(ds))):
            made = _pair(ds, variant, folder, f"{number}-{kind}")
            if made:
                pairs.append((Path(path).name, *made))
    return pairs


@pytest.mark.parametrize("profile", PROFILES)
def test_every_pydicom_test_file(profile, testdata_pairs):
    tally = Tally()
    for _, template, variant in testdata_pairs:
        check_pair(PROFILES[profile], template, variant, tally)
    assert tally.by_difference >= 20, "the fast path should serve most of these pairs"


@pytest.mark.parametrize("profile", PROFILES)
def test_planted_files(profile, tmp_path):
    planted = planting.write_planted_store(tmp_path / "planted")
    tally = Tally()
    for key, info in planted.items():
        ds = _read(info["path"])
        # Under Retain Safe Private a changed private value is never taken by difference: leave them be
        made = _pair(ds, next_slice(ds, seed=key, private=profile != "safe private"), tmp_path, key)
        if made:
            check_pair(PROFILES[profile], *made, tally)
            check_pair(PROFILES[profile], info["path"], made[1])  # the template as stored, the copy as rewritten
    assert tally.by_difference >= 5


def test_already_deidentified_object(tmp_path):
    info = planting.already_deidentified(tmp_path / "prior.dcm")
    ds = _read(info["path"])
    for profile in PROFILES.values():
        tally = Tally()
        check_pair(profile, *_pair(ds, next_slice(ds), tmp_path, "prior"), tally)
        assert tally.by_difference == 1


# What must not be taken by difference: the fast path steps aside, or (for what only the plan reads) agrees.
STRUCTURAL = {
    "sequence item": lambda ds: setattr(ds.ReferencedImageSequence[0], "ReferencedSOPInstanceUID", _new_uid("r")),
    "patient id": lambda ds: setattr(ds, "PatientID", "PLANTID-OTHER"),
    "character set": lambda ds: setattr(ds, "SpecificCharacterSet", "ISO_IR 100"),
    "burned in": lambda ds: setattr(ds, "BurnedInAnnotation", "YES"),
    "sop class": lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"),
    "added element": lambda ds: setattr(ds, "PatientComments", "Added for Zyxplant"),
    "removed element": lambda ds: delattr(ds, "StudyID"),
    "deidentified marker": lambda ds: setattr(ds, "PatientIdentityRemoved", "YES"),
    "patient name": lambda ds: setattr(ds, "PatientName", "Other^Name"),
    "study uid": lambda ds: setattr(ds, "StudyInstanceUID", _new_uid("study")),
    "private creator": lambda ds: ds.private_block(0x0011, "PLANTCREATOR").add_new(0x01, "LO", "OTHERPRIV"),
}

# Values read by the plan (a slice's plan is the previous one's only while none of them differ) or by the check
# that the Image Pixel attributes account for the Pixel Data: (the template's value, the next slice's).
PLAN_INPUTS = {
    "modality": ("Modality", "CT", "US"),
    "recognizable features": ("RecognizableVisualFeatures", "NO", "YES"),
    "burned in": ("BurnedInAnnotation", "NO", "YES"),
    "overlay in the pixel bits": (0x60000102, 0, 14),
    "bits stored": ("BitsStored", 16, 12),
}


@pytest.mark.parametrize("change", STRUCTURAL)
@pytest.mark.parametrize("profile", PROFILES)
def test_changes_beyond_the_values_of_a_slice(change, profile, tmp_path):
    planted = planting.write_planted_store(tmp_path / "planted")
    ds = _read(planted["ct"]["path"])
    variant = next_slice(ds)
    STRUCTURAL[change](variant)
    check_pair(PROFILES[profile], *_pair(ds, variant, tmp_path, "ct"))


@pytest.mark.parametrize("change", PLAN_INPUTS)
@pytest.mark.parametrize("profile", PROFILES)
def test_a_value_the_plan_reads(change, profile, tmp_path):
    keyword, before, after = PLAN_INPUTS[change]
    ds = _read(sorted(build_ct_study(1, tmp_path).glob("*.dcm"))[0])
    if isinstance(keyword, int):
        ds.add_new(keyword - 0x0102 + 0x0100, "US", 1)  # Overlay Bits Allocated: an overlay group
        ds.add_new(keyword, "US", before)
    else:
        setattr(ds, keyword, before)
    variant = next_slice(ds, private=False)  # (private values are not read by difference under safe private)
    if isinstance(keyword, int):
        variant[keyword].value = after
    else:
        setattr(variant, keyword, after)
    tally = Tally()
    check_pair(PROFILES[profile], *_pair(ds, variant, tmp_path, "ct"), tally)
    assert tally.by_difference == 1  # read by difference, and then planned as the reference plans it


def test_a_pixel_rule_that_matches_the_next_slice_only(tmp_path):
    # What a pixel rule matches on is read by the plan: the slice it matches gets its pixels cleaned.
    planted = planting.write_planted_store(tmp_path / "planted")
    ds = _read(planted["ct"]["path"])
    variant = next_slice(ds)
    variant.Manufacturer = "Burnsin Medical"
    rules = PixelRuleSet([PixelRule.from_mapping({"name": "burnsin", "match": {"Manufacturer": "Burnsin Medical"},
                                                  "regions": [[0, 0, 8, 8]]})])
    deidentifier = Deidentifier(Profile(), KEY, rules)
    template, variant_path = _pair(ds, variant, tmp_path, "rule")
    learn(deidentifier, template)
    assert reference(deidentifier, variant_path)[0] == "pixel edit"
    assert fast(deidentifier, variant_path) in (None, reference(deidentifier, variant_path))


def test_refusal_is_the_references(tmp_path):
    planted = planting.write_planted_store(tmp_path / "planted")
    ds = _read(planted["ct"]["path"])
    variant = next_slice(ds)
    variant.BurnedInAnnotation = "YES"
    deidentifier = Deidentifier(Profile(), KEY)
    template, variant_path = _pair(ds, variant, tmp_path, "burned")
    learn(deidentifier, template)
    assert reference(deidentifier, variant_path)[0] == "refused"
    assert fast(deidentifier, variant_path) in (None, reference(deidentifier, variant_path))


# ----------------------------------------------------------------------------------------------------------------
# Real series: the sample and a synthetic CT, in request order, as the server prepares them


def _as_the_server_does(profile: Profile, paths: list[Path]) -> Tally:
    deidentifier = Deidentifier(profile, KEY)
    tally = Tally()
    for path in paths:
        outcome = fast(deidentifier, path)
        expected = reference(deidentifier, path)
        if outcome is None:
            tally.stepped_aside += 1
            learn(deidentifier, path)
        else:
            tally.by_difference += 1
            assert outcome == expected, path
    return tally


@pytest.mark.parametrize("profile", PROFILES)
def test_the_sample_in_order(profile, tmp_path):
    paths = build_sample(tmp_path / "sample")
    _as_the_server_does(PROFILES[profile], paths)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_ct_series_goes_by_difference(profile, tmp_path):
    folder = build_ct_study(6, root=tmp_path)
    tally = _as_the_server_does(PROFILES[profile], sorted(folder.glob("*.dcm")))
    if profile == "safe private":
        return  # private values differ from slice to slice: each slice is its own template
    assert (tally.stepped_aside, tally.by_difference) == (1, 5)


def test_implicit_vr_series(tmp_path):
    ds = _read(get_testdata_file("MR_small_implicit.dcm"))
    paths = []
    for number in range(4):
        variant = next_slice(ds, seed=str(number)) if number else ds
        paths.append(tmp_path / f"mr{number}.dcm")
        assert _write(variant, paths[-1])
    for profile in PROFILES.values():
        tally = _as_the_server_does(profile, paths)
        assert tally.by_difference >= 2


# ----------------------------------------------------------------------------------------------------------------
# Random data sets (the generator of the leak property test), random slice changes


def _changed_value(vr: str, data, planted: Planted):
    from test_deid_hypothesis import _value
    return _value(vr, data, planted)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data(), implicit=st.booleans(), profile=st.sampled_from(sorted(PROFILES)))
def test_random_data_sets(data, implicit, profile, tmp_path_factory):
    planted = Planted()
    ds = _dataset(data, planted, depth=0)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = planted.uid()
    ds.BurnedInAnnotation = "NO"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 2, 2, 16, 16, 15
    ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
    ds.PixelData = b"\1\0\2\0\3\0\4\0"
    variant = copy.deepcopy(ds)
    variant.SOPInstanceUID = planted.uid()
    top_level = [elem for elem in variant if elem.VR != "SQ" and elem.tag not in (0x00080016, 0x7FE00010)
                 and not elem.tag.is_private]
    for elem in data.draw(st.lists(st.sampled_from(top_level), max_size=4, unique_by=lambda e: e.tag)
                          if top_level else st.just([])):
        variant[elem.tag].value = _changed_value(elem.VR, data, planted)
    if data.draw(st.booleans()):
        tag = data.draw(st.sampled_from(POOL["LO"]))
        variant.add_new(tag, "LO", planted.marker(data))  # an element the template does not have
    folder = tmp_path_factory.mktemp("random")
    made = _pair(ds, variant, folder, "random")
    if made:
        check_pair(PROFILES[profile], *made)


# ----------------------------------------------------------------------------------------------------------------
# The parts


@pytest.mark.parametrize("path", _testdata_files(), ids=lambda p: Path(p).name)
def test_reading_by_difference_gives_what_pydicom_reads(path, tmp_path):
    ds = _read(path)
    if ds is None or "SOPInstanceUID" not in ds or getattr(ds, "file_meta", None) is None:
        pytest.skip("not an instance pydicom reads back")
    made = _pair(ds, next_slice(ds), tmp_path, "read")
    if made is None:
        pytest.skip("pydicom cannot write it back")
    template, variant = made
    with open(template, "rb") as fp:
        try:
            known = similar_header.learn(fp, part10.open_source(fp))
        except part10.DicomReadError:
            pytest.skip("not readable by open_source")
    if known is None:
        return
    with open(variant, "rb") as fp:
        similar = similar_header.read_like(fp, known)
        if similar is None:
            return
        expected = part10.open_source(fp)
    got = similar.instance
    assert (got.transfer_syntax, got.pixel_data) == (expected.transfer_syntax, expected.pixel_data)
    assert got.dataset.original_encoding == expected.dataset.original_encoding
    assert got.dataset.original_character_set == expected.dataset.original_character_set
    for mine, theirs in ((got.dataset, expected.dataset), (got.dataset.file_meta, expected.dataset.file_meta)):
        assert list(mine._dict) == list(theirs._dict)
        for tag, elem in mine._dict.items():
            assert _comparable(elem) == _comparable(theirs._dict[tag]), tag
    assert set(similar.changed) <= set(expected.dataset._dict)


def _comparable(elem) -> tuple:
    if isinstance(elem, pydicom.dataelem.RawDataElement):
        return ("raw", elem.tag, elem.VR, elem.length, elem.value, elem.is_implicit_VR, elem.is_little_endian)
    return ("converted", elem.tag, elem.VR, repr(elem.value))


@pytest.mark.parametrize("path", _testdata_files(), ids=lambda p: Path(p).name)
def test_file_meta_writer_matches_pydicom(path):
    ds = _read(path)
    if ds is None or getattr(ds, "file_meta", None) is None or "SOPInstanceUID" not in ds:
        pytest.skip("no file meta")
    meta = header_writer.file_meta_for(ds, ExplicitVRLittleEndian)
    ours = file_meta_bytes(meta._dict)
    reference_out = DicomBytesIO()
    reference_out.is_little_endian, reference_out.is_implicit_VR = True, False
    try:
        write_file_meta_info(reference_out, copy.deepcopy(meta), enforce_standard=True)
    except Exception:
        assert ours is None
        return
    if ours is not None:
        assert ours == reference_out.getvalue()


@pytest.mark.parametrize("value", ["1.2.3", "1.2.34", ["1.2.3", "4.5"], "1.2.3 ", "ÆØÅ", ""])
def test_file_meta_writer_on_odd_values(value):
    meta = header_writer.file_meta_for(_minimal(), ExplicitVRLittleEndian)
    meta.ImplementationVersionName = value if isinstance(value, str) else "\\".join(value)
    meta.SourceApplicationEntityTitle = "AE TITLE"
    ours = file_meta_bytes(meta._dict)
    reference_out = DicomBytesIO()
    reference_out.is_little_endian, reference_out.is_implicit_VR = True, False
    write_file_meta_info(reference_out, copy.deepcopy(meta), enforce_standard=True)
    assert ours is None or ours == reference_out.getvalue()


def _minimal() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    ds.file_meta = FileMetaDataset()
    return ds


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm"])
def test_a_truncated_file_is_not_read_by_difference(name, tmp_path):
    ds = _read(get_testdata_file(name))
    template, variant = _pair(ds, next_slice(ds), tmp_path, "cut")
    with open(template, "rb") as fp:
        known = similar_header.learn(fp, part10.open_source(fp))
    data = variant.read_bytes()
    for cut in (100, 140, len(known.raw) - 3, len(known.raw) + 5, len(known.raw) + 15, len(data) - 1):
        try:
            part10.open_source(io.BytesIO(data[:cut]))
        except part10.DicomReadError:
            assert similar_header.read_like(io.BytesIO(data[:cut]), known) is None, cut


def test_memory_keeps_a_few_series(tmp_path):
    deidentifier = Deidentifier(Profile(), KEY)
    planted = planting.write_planted_store(tmp_path / "planted")
    for info in itertools.islice(planted.values(), 8):
        learn(deidentifier, info["path"])
    assert len(anonymized._memory(deidentifier).recent()) <= anonymized._Memory.size
