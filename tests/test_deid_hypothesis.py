"""Property: whatever the dataset (random public and private tags, random VRs, nested sequences), no
planted identifying value survives de-identification.

Planted: every value of an identifying VR (names, free text, AE titles, URIs), dates, instance UIDs,
private creators and private values of any VR. Not planted, by design: the attributes the safety net
keeps verbatim (equipment and technique: ``safe_attributes.VERBATIM``), class/syntax/coding-scheme UIDs
(``safe_attributes.UID_KEPT``), and Patient Identity Removed (an earlier de-identification's markers
are trusted, see markers.py).
"""

from __future__ import annotations

import io

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from wadows.deid import Deidentifier, Profile
from wadows.deid import safe_attributes as safe

KEY = b"hypothesis-key"
TEXT_VRS = ("PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE", "UR")
OTHER_VRS = ("CS", "US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "OB", "OW", "AT", "TM")
PLANTED_DATE, PLANTED_DATETIME = "19770707", "19770707111111"
_EXCLUDED = (set(safe.VERBATIM) | set(safe.UID_KEPT) | {0x00120062, 0x00080005})


def _pool() -> dict[str, list[int]]:
    pool: dict[str, list[int]] = {}
    for tag, entry in DicomDictionary.items():
        vr = entry[0]
        group = tag >> 16
        if group in (0x0000, 0x0002, 0x0004, 0x0006, 0x7FE0) or group >= 0xFFFA or tag in _EXCLUDED \
                or (group & 0xFF00) in (0x5000, 0x6000) or " or " in vr:
            continue
        pool.setdefault(vr, []).append(tag)
    return pool


POOL = _pool()
markers = st.from_regex(r"QZX[A-Z0-9]{6}", fullmatch=True)


class Planted:
    def __init__(self) -> None:
        self.values: list[str] = []
        self.uid_counter = 0

    def marker(self, data) -> str:
        value = data.draw(markers)
        self.values.append(value)
        return value

    def uid(self) -> str:
        self.uid_counter += 1
        value = f"1.2.826.0.1.3680043.99.4242.{self.uid_counter}"
        self.values.append(value)
        return value


def _value(vr: str, data, planted: Planted):
    if vr in TEXT_VRS:
        marker = planted.marker(data)
        return {"PN": f"{marker}^DOE", "UR": f"http://example.org/{marker}"}.get(vr, marker)
    if vr == "DA":
        planted.values.append(PLANTED_DATE)
        return PLANTED_DATE
    if vr == "DT":
        planted.values.append(PLANTED_DATETIME)
        return PLANTED_DATETIME
    if vr == "UI":
        return planted.uid()
    return {"CS": "CSVAL", "IS": "7", "DS": "1.5", "FL": 1.5, "FD": 1.5, "AT": 0x00100010, "TM": "000001",
            "OB": b"\x01\x02", "OW": b"\x01\x02"}.get(vr, 1)


def _dataset(data, planted: Planted, depth: int) -> Dataset:
    ds = Dataset()
    kinds = ["text", "text", "date", "uid", "other", "private"] + (["sequence"] if depth < 3 else [])
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(kinds))
        if kind == "private":
            _private(ds, data, planted, depth)
            continue
        vr = {"text": data.draw(st.sampled_from(TEXT_VRS)), "date": data.draw(st.sampled_from(("DA", "DT"))),
              "uid": "UI", "other": data.draw(st.sampled_from(OTHER_VRS)), "sequence": "SQ"}[kind]
        tag = data.draw(st.sampled_from(POOL[vr]))
        if vr == "SQ":
            items = [_dataset(data, planted, depth + 1) for _ in range(data.draw(st.integers(0, 2)))]
            ds.add_new(tag, vr, Sequence(items))
        else:
            ds.add_new(tag, vr, _value(vr, data, planted))
    return ds


def _private(ds: Dataset, data, planted: Planted, depth: int) -> None:
    group = data.draw(st.integers(0x0009, 0x0FFF).filter(lambda g: g & 1))
    try:
        block = ds.private_block(group, planted.marker(data), create=True)
    except ValueError:
        return  # all 240 blocks of the group taken
    vr = data.draw(st.sampled_from(("LO", "PN", "UT", "DA", "UI", "US", "OB") + (("SQ",) if depth < 3 else ())))
    offset = data.draw(st.integers(0, 0xFF))
    if vr == "SQ":
        block.add_new(offset, vr, Sequence([_dataset(data, planted, depth + 1)]))
    else:
        block.add_new(offset, vr, _value(vr, data, planted))


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), implicit=st.booleans())
def test_random_datasets_leak_nothing_planted(data, implicit):
    planted = Planted()
    ds = _dataset(data, planted, depth=0)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = planted.uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    source = pydicom.dcmread(io.BytesIO(_bytes(ds)))   # read back: raw elements, as a server sees them
    deidentifier = Deidentifier(Profile(), KEY)
    out = deidentifier.apply(source, deidentifier.plan(source))
    data_out = _bytes(out)
    leaks = [v for v in planted.values
             if any(v.encode(e) in data_out for e in ("ascii", "utf-16-le"))]
    assert leaks == []
