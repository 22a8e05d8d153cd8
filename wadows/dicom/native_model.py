"""The PS3.19 Native DICOM Model of a data set: the XML the metadata operation runs its XPath filters on.

One `DicomAttribute` per data element, in tag order, sequences nested as `Item`s at any depth. The file
meta and group length elements are left out (PS3.19 A.1.1).

Private data elements carry `privateCreator` (the value of their block's creator element) and a `tag`
whose block byte is 00, `gggg00ee`: the block a creator lands in differs from file to file, the creator
and the low byte identify the element (dcmtk's dcm2xml writes them so too). An element of a block with
no creator keeps its whole tag.

Binary values (OB, OD, OF, OL, OV, OW, UN) are `InlineBinary` up to `bulk_data_threshold` bytes: base64 of
little endian words whatever the stored byte order, as PS3.18 octet streams and pydicom's DICOM JSON have
them (dcm2xml writes OW big endian). Above the threshold, and always for pixel data, they are
`<BulkData uuid="..."/>`. The uuid is random per element and per call, derived from nothing: this server offers no bulk
data retrieval, so the element only says "a value is there, too large to include" and must not let two
responses be linked through it.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Iterable, Sequence

import numpy as np
from lxml import etree
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.filewriter import correct_ambiguous_vr_element
from pydicom.tag import BaseTag
from pydicom.valuerep import AMBIGUOUS_VR

from wadows.dicom.native_values import person_name_groups, value_text, xml_text

__all__ = ["BINARY_VRS", "DEFAULT_BULK_DATA_THRESHOLD", "NATIVE_DICOM_NAMESPACE", "PIXEL_DATA_TAGS", "native_model"]

NATIVE_DICOM_NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
DEFAULT_BULK_DATA_THRESHOLD = 1024  # bytes; pydicom's DICOM JSON default too

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # Float, Double Float and Pixel Data
_PIXEL_DATA = 0x7FE00010
_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}  # the words a big endian value must be swapped in


def _q(name: str) -> str:
    return f"{{{NATIVE_DICOM_NAMESPACE}}}{name}"


def native_model(
    ds: Dataset,
    bulk_data_threshold: int = DEFAULT_BULK_DATA_THRESHOLD,
    *,
    pixel_data_vr: str | None = None,
    little_endian: bool | None = None,
) -> etree._Element:
    """The `NativeDicomModel` element of `ds` (its file meta excluded).

    `pixel_data_vr` is for a header read without its Pixel Data (stop_before_pixels): the VR ("OB" or
    "OW") of the (7FE0,0010) the stored object has, which is then written as BulkData in its place. It is
    ignored when `ds` holds Pixel Data itself.

    `little_endian` is the byte order of the OW/OF/OL/OD/OV values `ds` holds (pydicom keeps them as
    read). By default it is the order `ds` was read in, and little endian for a data set made in memory;
    give it when `ds` is a copy made in memory of a big endian object.
    """
    if bulk_data_threshold < 0:
        raise ValueError("bulk_data_threshold must not be negative")
    if pixel_data_vr not in (None, "OB", "OW"):
        raise ValueError("pixel_data_vr must be OB or OW")
    if little_endian is None:
        little_endian = ds.original_encoding[1] is not False
    root = etree.Element(_q("NativeDicomModel"), nsmap={None: NATIVE_DICOM_NAMESPACE})
    writer = _Writer(bulk_data_threshold, little_endian)
    absent_pixel_data = pixel_data_vr if _PIXEL_DATA not in ds else None
    writer.add_attributes(root, ds, [ds], absent_pixel_data)
    return root


class _Writer:
    def __init__(self, bulk_data_threshold: int, little_endian: bool):
        self.bulk_data_threshold = bulk_data_threshold
        self.little_endian = little_endian

    def add_attributes(
        self, parent: etree._Element, ds: Dataset, ancestors: list[Dataset], absent_pixel_data: str | None = None
    ) -> None:
        """A DicomAttribute under `parent` for each element of `ds`; `ancestors` starts with `ds` itself."""
        for elem in _data_elements(ds, top_level=len(ancestors) == 1):
            if absent_pixel_data and elem.tag > _PIXEL_DATA:
                self._add_absent_pixel_data(parent, absent_pixel_data)
                absent_pixel_data = None
            self._add_attribute(parent, elem, ds, ancestors)
        if absent_pixel_data:
            self._add_absent_pixel_data(parent, absent_pixel_data)

    def _add_attribute(self, parent: etree._Element, elem: DataElement, ds: Dataset, ancestors: list[Dataset]) -> None:
        elem = self._resolve_vr(elem, ancestors)
        tag, vr = BaseTag(elem.tag), elem.VR
        creator = _private_creator(ds, tag)
        node = etree.SubElement(parent, _q("DicomAttribute"))
        node.set("tag", f"{tag.group:04X}00{tag.element & 0xFF:02X}" if creator is not None else f"{tag:08X}")
        node.set("vr", vr)
        keyword = "" if tag.is_private else keyword_for_tag(tag)
        if keyword:
            node.set("keyword", keyword)
        if creator is not None:
            node.set("privateCreator", xml_text(creator))
        value = elem.value
        if vr == "SQ":
            for number, item in enumerate(value or (), 1):
                item_node = etree.SubElement(node, _q("Item"), number=str(number))
                self.add_attributes(item_node, item, [item, *ancestors])
        elif vr in BINARY_VRS and isinstance(value, (bytes, bytearray)):
            if value:
                self._add_binary(node, tag, vr, bytes(value))
        elif vr == "PN":
            names = [person_name_groups(name) for name in _values(value)]
            if not any(names):
                return  # "^^^^" and the like: delimiters only, no name (dcmtk writes nothing either)
            for number, groups in enumerate(names, 1):
                name_node = etree.SubElement(node, _q("PersonName"), number=str(number))
                for group, components in groups:
                    group_node = etree.SubElement(name_node, _q(group))
                    for component, text in components.items():
                        etree.SubElement(group_node, _q(component)).text = text
        else:
            for number, one in enumerate(_values(value), 1):
                text = "" if one is None or (isinstance(one, str) and not one) else value_text(vr, one)
                value_node = etree.SubElement(node, _q("Value"), number=str(number))
                if text:
                    value_node.text = text

    def _add_binary(self, node: etree._Element, tag: int, vr: str, value: bytes) -> None:
        if tag in PIXEL_DATA_TAGS or len(value) > self.bulk_data_threshold:
            etree.SubElement(node, _q("BulkData"), uuid=str(uuid.uuid4()))
            return
        if not self.little_endian and vr in _WORD_SIZE:
            value = _swapped_words(value, _WORD_SIZE[vr])
        etree.SubElement(node, _q("InlineBinary")).text = base64.b64encode(value).decode("ascii")

    def _add_absent_pixel_data(self, parent: etree._Element, vr: str) -> None:
        node = etree.SubElement(parent, _q("DicomAttribute"), tag=f"{_PIXEL_DATA:08X}", vr=vr, keyword="PixelData")
        etree.SubElement(node, _q("BulkData"), uuid=str(uuid.uuid4()))

    def _resolve_vr(self, elem: DataElement, ancestors: list[Dataset]) -> DataElement:
        """`elem`, or a copy of it with one VR when the dictionary gives several (e.g. "US or SS").

        The copy keeps the caller's data set as it was."""
        if elem.tag == _PIXEL_DATA and elem.is_undefined_length and elem.VR != "OB":
            resolved = copy.copy(elem)  # encapsulated Pixel Data is OB whatever the file says (PS3.5 A.4)
            resolved.VR = "OB"
            return resolved
        if elem.VR not in AMBIGUOUS_VR:
            return elem
        resolved = copy.copy(elem)
        try:
            resolved = correct_ambiguous_vr_element(resolved, ancestors[0], self.little_endian, ancestors)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            pass  # the element that decides (PixelRepresentation, BitsAllocated, ...) is missing or unusable
        if resolved.VR in AMBIGUOUS_VR:
            choices = resolved.VR.split(" or ")
            is_bytes = isinstance(resolved.value, (bytes, bytearray))
            resolved.VR = "OW" if is_bytes and "OW" in choices else ("OB" if is_bytes else choices[0])
        return resolved


def _data_elements(ds: Dataset, top_level: bool) -> Iterable[DataElement]:
    """The elements of `ds` the model shows: no group length, no file meta (PS3.19 A.1.1)."""
    for elem in ds:
        tag = BaseTag(elem.tag)
        if tag.element == 0 or (top_level and tag.group == 0x0002):
            continue
        yield elem


def _private_creator(ds: Dataset, tag: BaseTag) -> str | None:
    """The creator of a private data element's block, found in the same data set (PS3.5 7.8.1)."""
    if not tag.is_private or tag.element < 0x1000:
        return None
    creator = ds.get(BaseTag((tag.group << 16) | (tag.element >> 8)))
    value = creator.value if creator is not None else None
    if isinstance(value, (bytes, bytearray)):  # a creator read as UN
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.strip(" \0")
    return value or None


def _values(value: object) -> list:
    """The values of an element as a list: [] when it is empty."""
    if value is None or (isinstance(value, (str, bytes)) and not value):
        return []
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):  # MultiValue, list
        return list(value)
    return [value]


def _swapped_words(value: bytes, word_size: int) -> bytes:
    """A big endian value's words in little endian order; a trailing partial word stays as it is."""
    whole = len(value) - len(value) % word_size
    words = np.frombuffer(value[:whole], dtype=f">u{word_size}").astype(f"<u{word_size}")
    return words.tobytes() + value[whole:]
