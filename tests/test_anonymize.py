"""Anonymize on RAD-69 through a real server: nothing identifying in the raw response or the log, consistent
keyed UIDs, markers, refusals, and cleaned pixels in every transfer syntax case."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

import planting
from support import (EXPLICIT_LE, ServerProcess, document_responses, doc, envelope, post, rad69_body, registry,
                     validate_envelope)
from wadows.sample import IDENTIFYING_STRINGS, build_sample, describe_sample

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
JPEG_BASELINE, RLE = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5"
STORED_OR_EXPLICIT = [EXPLICIT_LE, "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", RLE, JPEG_BASELINE,
                      "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                      "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"]

CONFIG = """
[anonymize]
key = "wadows test key one"

[[anonymize.pixel_rules]]
name = "test: 100x100 secondary capture, top band"
regions = [[0, 0, 100, 10]]
[anonymize.pixel_rules.match]
SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
Rows = 100

[[anonymize.pixel_rules]]
name = "test: 64x64 MR, top-left corner"
regions = [[0, 0, 16, 16]]
[anonymize.pixel_rules.match]
Modality = "MR"
Rows = 64
Columns = 64
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("anon")
    store = root / "store"
    build_sample(store / "sample")
    planted = planting.write_planted_store(store / "planted")
    planted["prior"] = planting.already_deidentified(store / "special" / "prior.dcm")
    planted["burned"] = planting.flagged(store / "special" / "burned.dcm", "BurnedInAnnotation")
    planted["faces"] = planting.flagged(store / "special" / "faces.dcm", "RecognizableVisualFeatures")
    sample = describe_sample(store / "sample")
    for row in sample:
        row["path"] = store / "sample" / row["file"]
    config = root / "wadows.toml"
    config.write_text(CONFIG)
    server = ServerProcess(store, root / "data", root / "server.log", ["--config", str(config), "--unauthenticated", "full"])
    yield {"server": server, "planted": planted, "sample": sample, "root": root, "store": store, "config": config}
    server.stop()


def anonymized(server, docs, syntaxes=STORED_OR_EXPLICIT):
    reply = post(server.endpoint, envelope(rad69_body(docs, syntaxes, anonymize="yes")))
    assert reply.status == 200, reply.raw[:1000]
    mtom = reply.mtom()
    env = reply.envelope()
    validate_envelope(env, mtom.parts)
    status, errors = registry(env)
    responses = document_responses(env)
    objects = {d["uid"]: pydicom.dcmread(io.BytesIO(mtom.parts[d["cid"]])) for d in responses}
    return reply, status, errors, responses, objects


def leaks(haystack: bytes, needles) -> list[str]:
    low = haystack.lower()
    found = []
    for needle in needles:
        for encoded in (needle.encode("utf-8"), needle.encode("latin-1", "ignore"), needle.encode("utf-16-le")):
            if encoded and encoded.lower() in low:
                found.append(needle)
                break
    return found


def test_planted_values_never_leave_in_any_byte_of_the_response_or_the_log(world):
    server, planted = world["server"], world["planted"]
    keys = [k for k in planting.SOURCES if k != "sc-jpeg"]
    reply, status, errors, responses, objects = anonymized(server, [doc(planted[k]) for k in keys])
    assert status == SUCCESS, errors
    assert len(objects) == len(keys)
    original_uids = set().union(*(planted[k]["uids"] for k in keys))
    everything = reply.raw + str(dict(reply.headers)).encode()
    assert leaks(everything, planting.PLANTED) == []
    assert leaks(everything, original_uids) == []
    # The requested SOP Instance UIDs are echoed as DocumentUniqueId (DESIGN.md §3), nowhere else.
    mtom = reply.mtom()
    sops = [planted[k]["sop_instance_uid"] for k in keys]
    for part in mtom.parts.values():
        assert leaks(part, sops) == []
    all_headers = str(dict(reply.headers)) + str(mtom.root_headers) + str(mtom.part_headers)
    assert leaks(all_headers.encode(), sops) == []
    log = world["server"].log().encode()
    assert leaks(log, planting.PLANTED) == [] and leaks(log, original_uids | set(sops)) == []
    for ds in objects.values():
        assert not any(0x6000 <= (tag >> 16) <= 0x60FF for tag in ds.keys()), "overlay group left"
        assert not any((tag >> 16) % 2 for tag in ds.keys()), "private element left"


def test_sample_identities_do_not_leave_and_suspect_objects_are_refused(world):
    server, sample = world["server"], world["sample"]
    reply, status, errors, responses, objects = anonymized(server, [doc(r) for r in sample])
    assert status == PARTIAL
    refused = {e["location"]: e for e in errors}
    us = next(r for r in sample if r["modality"] == "US")
    assert refused[us["sop_instance_uid"]]["errorCode"] == "urn:dicom:wado:0001"
    assert "burned-in" in refused[us["sop_instance_uid"]]["codeContext"].lower()
    assert len(objects) + len(refused) == len(sample)
    assert leaks(reply.raw + str(dict(reply.headers)).encode(), IDENTIFYING_STRINGS) == []
    assert leaks(reply.raw, {r["study_uid"] for r in sample} | {r["series_uid"] for r in sample}) == []


def test_one_study_stays_one_study_and_references_resolve_across_requests(world):
    server, sample = world["server"], world["sample"]
    rt = [r for r in sample if r["study_description"] == "CT THORAX RT PLANNING"]
    by_modality = {r["modality"]: r for r in rt}
    _, status, _, responses, objects = anonymized(server, [doc(r) for r in rt])
    assert status == SUCCESS
    new = {d["uid"]: d["new_uid"] for d in responses}
    assert all(new[r["sop_instance_uid"]] and new[r["sop_instance_uid"]] != r["sop_instance_uid"] for r in rt)
    studies = {ds.StudyInstanceUID for ds in objects.values()}
    assert len(studies) == 1 and studies.isdisjoint({r["study_uid"] for r in rt})
    for sop, ds in objects.items():
        assert ds.SOPInstanceUID == new[sop] == ds.file_meta.MediaStorageSOPInstanceUID
    ct = objects[by_modality["CT"]["sop_instance_uid"]]
    plan = objects[by_modality["RTPLAN"]["sop_instance_uid"]]
    dose = objects[by_modality["RTDOSE"]["sop_instance_uid"]]
    assert dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan.SOPInstanceUID
    # Asked alone, in a separate request, the structure set still lines up with the plan and the CT.
    _, _, _, _, alone = anonymized(server, [doc(by_modality["RTSTRUCT"])])
    structure = next(iter(alone.values()))
    assert plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == structure.SOPInstanceUID
    frames = {str(e.value) for e in structure.iterall() if e.keyword == "FrameOfReferenceUID"}
    assert ct.FrameOfReferenceUID in frames


def test_same_request_twice_gives_the_same_uids_and_another_key_different_ones(world, tmp_path):
    server, sample = world["server"], world["sample"]
    row = next(r for r in sample if r["modality"] == "CT")
    first = anonymized(server, [doc(row)])[3][0]["new_uid"]
    second = anonymized(server, [doc(row)])[3][0]["new_uid"]
    assert first == second
    other_config = tmp_path / "other.toml"
    other_config.write_text('[anonymize]\nkey = "a different key"\n')
    other = ServerProcess(world["store"], tmp_path / "data", tmp_path / "log", ["--config", str(other_config)])
    try:
        third = anonymized(other, [doc(row)])[3][0]["new_uid"]
    finally:
        other.stop()
    assert third != first and third.startswith("2.25.")


def test_markers_of_the_default_profile(world):
    planted = world["planted"]
    _, _, _, _, objects = anonymized(world["server"], [doc(planted["ct"])])
    ds = objects[planted["ct"]["sop_instance_uid"]]
    assert ds.PatientIdentityRemoved == "YES"
    assert "wadows" in str(ds.DeidentificationMethod).lower()
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.get("BurnedInAnnotation") != "NO"  # nothing was cleaned, so nothing is claimed


def test_markers_when_pixels_were_cleaned_and_with_options(world, tmp_path):
    planted = world["planted"]
    _, _, _, _, objects = anonymized(world["server"], [doc(planted["mr-rle"])])
    ds = objects[planted["mr-rle"]["sop_instance_uid"]]
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113101"]
    assert ds.BurnedInAnnotation == "NO"
    config = tmp_path / "options.toml"
    config.write_text('[anonymize]\nkey = "k2"\nretain_device_identity = true\nretain_long_modified_dates = true\n')
    other = ServerProcess(world["store"], tmp_path / "data", tmp_path / "log", ["--config", str(config)])
    try:
        _, _, _, _, objects = anonymized(other, [doc(planted["ct"])])
    finally:
        other.stop()
    ds = objects[planted["ct"]["sop_instance_uid"]]
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113107", "113109"]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.DeviceSerialNumber == "PLNTSERIAL9931"
    assert ds.StudyDate != "20110817" and len(ds.StudyDate) == 8


def test_already_deidentified_object_keeps_its_sop_instance_uid(world):
    prior = world["planted"]["prior"]
    _, status, _, responses, objects = anonymized(world["server"], [doc(prior)])
    assert status == SUCCESS and responses[0]["new_uid"] is None
    ds = objects[prior["sop_instance_uid"]]
    assert ds.SOPInstanceUID == prior["sop_instance_uid"]
    assert "Prior Tool 1.0" in list(ds.DeidentificationMethod) and "Zyxplant" not in str(ds.get("PatientName", ""))


@pytest.mark.parametrize("key", ["burned", "faces"])
def test_flagged_objects_are_refused_with_0001_and_the_rest_returned(world, key):
    flagged, ct = world["planted"][key], world["planted"]["ct"]
    _, status, errors, responses, _ = anonymized(world["server"], [doc(flagged), doc(ct)])
    assert status == PARTIAL
    assert [(e["errorCode"], e["location"]) for e in errors] == [("urn:dicom:wado:0001", flagged["sop_instance_uid"])]
    assert [d["uid"] for d in responses] == [ct["sop_instance_uid"]]


@pytest.mark.parametrize("key,expected_ts", [("mr-rle", RLE), ("mr-j2k", "1.2.840.10008.1.2.4.90"),
                                             ("mr-jls", "1.2.840.10008.1.2.4.80")])
def test_cleaned_compressed_pixels_are_re_encoded_in_their_syntax(world, key, expected_ts):
    item = world["planted"][key]
    _, status, _, _, objects = anonymized(world["server"], [doc(item)])
    assert status == SUCCESS
    ds = objects[item["sop_instance_uid"]]
    assert ds.file_meta.TransferSyntaxUID == expected_ts
    original = pydicom.dcmread(item["path"]).pixel_array
    cleaned = ds.pixel_array
    assert np.all(cleaned[:16, :16] == 0) and np.any(original[:16, :16] != 0)
    assert np.array_equal(cleaned[16:, :], original[16:, :]) and np.array_equal(cleaned[:, 16:], original[:, 16:])


def test_jpeg_baseline_that_must_be_cleaned_goes_out_uncompressed_or_is_refused(world):
    item = world["planted"]["sc-jpeg"]
    _, status, _, _, objects = anonymized(world["server"], [doc(item)], [JPEG_BASELINE, EXPLICIT_LE])
    assert status == SUCCESS
    ds = objects[item["sop_instance_uid"]]
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.all(ds.pixel_array[:10] == 0) and np.any(ds.pixel_array[10:] != 0)
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113101"]
    _, status, errors, _, _ = anonymized(world["server"], [doc(item)], [JPEG_BASELINE])
    assert status == FAILURE and errors[0]["errorCode"] == "urn:dicom:wado:0001"
    assert "re-encoded" in errors[0]["codeContext"]


def test_header_only_fast_path_streams_pixel_bytes_untouched(world):
    item = world["planted"]["nm-j2k"]  # lossy JPEG 2000: re-encoding would change it, so equality proves the copy
    _, status, _, _, objects = anonymized(world["server"], [doc(item)])
    ds = objects[item["sop_instance_uid"]]
    assert ds.file_meta.TransferSyntaxUID == item["transfer_syntax_uid"]
    assert ds.PixelData == pydicom.dcmread(item["path"]).PixelData


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is installed by make test")
def test_dciodvfy_finds_no_new_error_in_anonymized_objects(world, tmp_path):
    planted = world["planted"]
    keys = ["ct", "mr-rle", "overlay", "sr", "rtplan", "ecg", "seg", "deflated"]
    _, _, _, _, objects = anonymized(world["server"], [doc(planted[k]) for k in keys])
    for key in keys:
        out = tmp_path / f"{key}.dcm"
        objects[planted[key]["sop_instance_uid"]].save_as(out, enforce_file_format=True)
        before, after = _iod_errors(planted[key]["path"]), _iod_errors(out)
        assert after <= before, (key, after - before)


def _iod_errors(path) -> set[str]:
    """dciodvfy's error lines, without the values they quote (UIDs change on purpose)."""
    done = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
    lines = (done.stdout + done.stderr).splitlines()
    return {re.sub(r"\s*=\s*<[^>]*>", "", line) for line in lines if line.startswith("Error")}


def test_deidentify_command_writes_by_new_uids_and_summarizes(world, tmp_path):
    import sys

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "wadows", "deidentify", str(world["store"] / "planted"), str(out),
                           "--config", str(world["config"]), "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    written = list(out.rglob("*.dcm"))
    assert len(written) == len(planting.SOURCES)
    assert f"{len(planting.SOURCES)} de-identified, 0 refused" in done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    refusing = subprocess.run([sys.executable, "-m", "wadows", "deidentify", str(world["store"] / "special"),
                               str(tmp_path / "out2"), "--config", str(world["config"]), "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=300)
    assert refusing.returncode == 1 and "2 refused" in refusing.stdout and "burned-in" in refusing.stdout
    for path in written:
        data = path.read_bytes()
        assert leaks(data, planting.PLANTED) == []
        assert leaks(str(path).encode(), planting.PLANTED) == []
        assert pydicom.dcmread(path).SOPInstanceUID == path.stem


def test_renderings_come_from_cleaned_pixels(world):
    from test_rendered import render

    item = world["planted"]["sc-jpeg"]  # 100x100 RGB; the configured rule blanks its top ten rows
    _, status, errors, docs = render(world["server"], [(doc(item), {"ContentType": ["image/png"],
                                                                     "Anonymize": "yes"})])
    assert status == SUCCESS, errors
    from PIL import Image

    cleaned = np.asarray(Image.open(io.BytesIO(docs[0]["data"])).convert("RGB"))
    _, _, _, plain = render(world["server"], [(doc(item), {"ContentType": ["image/png"]})])
    original = np.asarray(Image.open(io.BytesIO(plain[0]["data"])).convert("RGB"))
    assert np.all(cleaned[:10] == 0) and np.any(original[:10] != 0)
    assert docs[0]["Anonymize"] == "yes" and "Anonymize" not in plain[0]


def test_patient_annotation_on_an_anonymized_rendering_draws_other_values(world):
    from test_rendered import render

    ct = world["planted"]["ct"]
    params = {"ContentType": ["image/png"], "Annotation": "patient"}
    _, _, _, anonymized_docs = render(world["server"], [(doc(ct), {**params, "Anonymize": "yes"})])
    _, _, _, original_docs = render(world["server"], [(doc(ct), params)])
    assert anonymized_docs[0]["Annotation"] == "patient"
    assert anonymized_docs[0]["data"] != original_docs[0]["data"]


def test_planted_values_never_leave_through_metadata_or_renderings(world):
    from test_metadata import ask
    from test_rendered import render

    server, planted = world["server"], world["planted"]
    keys = [k for k in planting.SOURCES if k != "sc-jpeg"]
    original_uids = set().union(*(planted[k]["uids"] for k in keys))
    reply, status, errors, answers = ask(server, [(doc(planted[k]), ["/"], "yes") for k in keys])
    assert status == SUCCESS, errors
    assert len(answers) == len(keys)
    assert leaks(reply.raw, planting.PLANTED) == [] and leaks(reply.raw, original_uids) == []

    for key in keys:
        text = key.startswith("sr")
        params = {"Anonymize": "yes", "Annotation": "patient,technique", "FrameNumber": 1,
                  "ContentType": ["text/plain"] if text else ["image/png"]}
        reply, status, errors, docs = render(server, [(doc(planted[key]), params)])
        if key in ("ecg", "rtplan"):
            assert errors[0]["errorCode"] == "urn:dicom:wado:0006"  # no image, no report: nothing to render
            continue
        assert status == SUCCESS, (key, errors)
        assert leaks(reply.raw, planting.PLANTED) == [], key
        assert leaks(reply.raw, original_uids) == [], key
    log = server.log().encode()
    assert leaks(log, planting.PLANTED) == [] and leaks(log, original_uids) == []


def test_planted_values_never_leave_through_wado_uri(world):
    import requests

    server, planted = world["server"], world["planted"]
    for key in [k for k in planting.SOURCES if k != "sc-jpeg"]:
        item = planted[key]
        reply = requests.get(f"{server.url}/wado", timeout=60, params={
            "requestType": "WADO", "studyUID": item["study_uid"], "seriesUID": item["series_uid"],
            "objectUID": item["sop_instance_uid"], "contentType": "application/dicom", "anonymize": "yes",
            "transferSyntax": "*"})
        assert reply.status_code == 200, (key, reply.text)
        everything = reply.content + str(dict(reply.headers)).encode()
        assert leaks(everything, planting.PLANTED) == [], key
        assert leaks(everything, item["uids"] | {item["sop_instance_uid"]}) == [], key
    log = server.log().encode()
    assert leaks(log, planting.PLANTED) == []


def test_audit_trail_holds_records_and_no_planted_value(world):
    import json

    anonymized(world["server"], [doc(world["planted"]["ct"])])
    audit = world["root"] / "data" / "audit.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert records and any(r["anonymized"] for r in records)
    text = audit.read_text()
    planted = world["planted"]
    original_uids = set().union(*(p.get("uids", set()) for p in planted.values()))
    sops = {p["sop_instance_uid"] for p in planted.values()}
    assert leaks(text.encode(), planting.PLANTED) == []
    assert leaks(text.encode(), original_uids | sops) == []
