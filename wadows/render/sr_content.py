"""The content tree of a Structured Report (PS3.3 C.17.3) as plain nodes: concept name, value as text, children."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import UID

from wadows.render import values


_LINE_BREAK = re.compile(r"\r\n|\n\r|\r|\n")  # PS3.5 says CR LF; writers also use LF CR, LF or CR alone


@dataclass
class ContentNode:
    concept: str  # the concept name's meaning, "" when the item has none
    value: str  # the value as text, "" for containers; may hold line breaks (TEXT)
    value_type: str
    relationship: str  # CONTAINS, HAS PROPERTIES, INFERRED FROM, ...; "" for the root
    children: list[ContentNode] = field(default_factory=list)


def content_tree(dataset: Dataset) -> ContentNode:
    """The root CONTAINER of `dataset` with every nested item."""
    return _node(dataset, "")


def _node(item: Dataset, relationship: str) -> ContentNode:
    value_type = str(item.get("ValueType", "") or "").strip()
    node = ContentNode(_concept(item), _value(item, value_type), value_type, relationship)
    for child in item.get("ContentSequence") or ():
        node.children.append(_node(child, str(child.get("RelationshipType", "") or "").strip()))
    return node


def _concept(item: Dataset) -> str:
    codes = item.get("ConceptNameCodeSequence")
    return _meaning(codes[0]) if codes else ""


def _meaning(code: Dataset) -> str:
    return str(code.get("CodeMeaning", "") or code.get("CodeValue", "") or "").strip()


def _value(item: Dataset, value_type: str) -> str:
    reference = item.get("ReferencedContentItemIdentifier")
    if reference is not None:  # by-reference relationship (PS3.3 C.17.3.2.5)
        return "see content item " + ".".join(str(int(n)) for n in values.as_list(reference))
    reader = _VALUE_READERS.get(value_type)
    return reader(item) if reader else ""


def _text(item: Dataset) -> str:
    text = str(item.get("TextValue", "") or "")
    return _LINE_BREAK.sub("\n", text).strip("\n")


def _code(item: Dataset) -> str:
    codes = item.get("ConceptCodeSequence")
    return _meaning(codes[0]) if codes else ""


def _num(item: Dataset) -> str:
    measured = item.get("MeasuredValueSequence")
    if not measured:
        qualifier = item.get("NumericValueQualifierCodeSequence")
        return _meaning(qualifier[0]) if qualifier else "(no value)"
    value = str(measured[0].get("NumericValue", "") or "").strip()
    units = measured[0].get("MeasurementUnitsCodeSequence")
    if not units:
        return value
    unit = units[0]
    # UCUM code values ("mm", "cm2") read better than their meanings ("millimeter"); "1" means no unit
    symbol = str(unit.get("CodeValue", "")) if str(unit.get("CodingSchemeDesignator", "")) == "UCUM" else _meaning(unit)
    return f"{value} {symbol}" if symbol and symbol != "1" else value


def _reference(item: Dataset) -> str:
    refs = item.get("ReferencedSOPSequence")
    if not refs:
        return ""
    ref = refs[0]
    sop_class = UID(str(ref.get("ReferencedSOPClassUID", "") or ""))
    text = f"{sop_class.name if sop_class.is_valid else 'object'} {ref.get('ReferencedSOPInstanceUID', '')}".strip()
    frames = ref.get("ReferencedFrameNumber")
    if frames not in (None, ""):
        text += ", frame " + ", ".join(str(f) for f in values.as_list(frames))
    return text


def _coordinates(item: Dataset) -> str:
    shape = str(item.get("GraphicType", "") or "").strip()
    data = item.get("GraphicData") or []
    dimensions = 3 if "ReferencedFrameOfReferenceUID" in item else 2  # SCOORD3D carries its frame of reference
    points = [data[i:i + dimensions] for i in range(0, len(data) - dimensions + 1, dimensions)]
    listed = " ".join("(" + ", ".join(f"{float(v):g}" for v in point) + ")" for point in points)
    return f"{shape} {listed}".strip()


def _temporal(item: Dataset) -> str:
    kind = str(item.get("TemporalRangeType", "") or "").strip()
    for keyword in ("ReferencedSamplePositions", "ReferencedTimeOffsets", "ReferencedDateTime"):
        listed = values.as_list(item.get(keyword))
        if listed:
            return f"{kind} {', '.join(str(v) for v in listed)}".strip()
    return kind


_VALUE_READERS = {
    "TEXT": _text,
    "CODE": _code,
    "NUM": _num,
    "DATE": lambda item: values.date(item.get("Date")),
    "TIME": lambda item: values.time(item.get("Time")),
    "DATETIME": lambda item: values.datetime(item.get("DateTime")),
    "PNAME": lambda item: values.person_name(item.get("PersonName")),
    "UIDREF": lambda item: str(item.get("UID", "") or ""),
    "COMPOSITE": _reference,
    "IMAGE": _reference,
    "WAVEFORM": _reference,
    "SCOORD": _coordinates,
    "SCOORD3D": _coordinates,
    "TCOORD": _temporal,
    "CONTAINER": lambda item: "",
}
