"""The index's UIDs read from the bytes (wadows/store/header_bytes.py) are pydicom's, for every file: the same
facts, or the same refusal; where the byte reader is unsure, pydicom reads the file anyway."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files

from wadows.store import header
from wadows.store.header_bytes import uid_values

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ctstudy import build_ct_study  # noqa: E402


def _by_pydicom(data: bytes):
    """What header_facts said before the byte reader: pydicom's parse, as an outcome to compare."""
    try:
        dataset = header._parse_header(io.BytesIO(data))
        meta = getattr(dataset, "file_meta", None) or pydicom.Dataset()
        return header._facts(lambda tag: header._uid(meta, tag), lambda tag: header._uid(dataset, tag))
    except (header.NotAnInstance, header.UnreadableHeader, OSError) as exc:  # (a short object: OSError)
        return type(exc)


def _now(data: bytes):
    try:
        return header.header_facts(io.BytesIO(data))
    except (header.NotAnInstance, header.UnreadableHeader, OSError) as exc:
        return type(exc)


def _part10_files(store_dir) -> list[Path]:
    files = [Path(p) for p in get_testdata_files("*.dcm")] + sorted((store_dir / "sample").rglob("*.dcm"))
    files += sorted(build_ct_study(3).glob("*.dcm"))
    return [p for p in files if p.read_bytes()[128:132] == b"DICM"]


def test_every_file_gives_pydicoms_facts(store_dir):
    read_from_bytes = 0
    for path in _part10_files(store_dir):
        data = path.read_bytes()
        assert _now(data) == _by_pydicom(data), path.name
        read_from_bytes += uid_values(data[:header.HEAD_BYTES]) is not None
    assert read_from_bytes >= 70  # the byte reader takes the common case, not only a few files


def test_damaged_headers_give_pydicoms_outcome(store_dir):
    """Cut short, bytes flipped, lengths changed: the same facts or refusal as pydicom, never other UIDs."""
    rng = random.Random(7)
    for path in _part10_files(store_dir)[:25]:
        data = path.read_bytes()
        head = data[:min(len(data), 4096)]
        variants = [data[:cut] for cut in rng.sample(range(132, len(head)), min(20, len(head) - 132))]
        for _ in range(25):
            damaged = bytearray(data)
            at = rng.randrange(132, len(head))
            damaged[at] = rng.randrange(256)
            variants.append(bytes(damaged))
        for variant in variants:
            now = _now(variant)
            if isinstance(now, header.HeaderFacts):  # whatever the byte reader gives, pydicom gives too
                assert now == _by_pydicom(variant), path.name


@pytest.mark.parametrize("implicit", [True, False])
def test_sequences_of_undefined_length_before_the_uids_are_stepped_over(tmp_path, implicit):
    ds = pydicom.dcmread(get_testdata_files("CT_small.dcm")[0])
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
    nested = pydicom.Dataset()
    nested.CodeValue, nested.CodingSchemeDesignator, nested.CodeMeaning = "1", "DCM", "a code"
    item.PurposeOfReferenceCodeSequence = [nested]
    ds.ReferencedImageSequence = [item, pydicom.Dataset(item)]
    # Undefined lengths, delimiters, as modalities often write them (pydicom writes defined lengths otherwise).
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.ReferencedImageSequence[0]["PurposeOfReferenceCodeSequence"].is_undefined_length = True
    ds.ReferencedImageSequence[0].is_undefined_length_sequence_item = True
    nested.is_undefined_length_sequence_item = True
    path = tmp_path / "seq.dcm"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
    ds.save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    data = path.read_bytes()
    assert data.count(b"\xfe\xff\xdd\xe0") >= 2 and b"\xfe\xff\x0d\xe0" in data
    assert uid_values(data) is not None
    facts = _now(data)
    assert facts == _by_pydicom(data) and facts.sop_instance_uid == ds.SOPInstanceUID
