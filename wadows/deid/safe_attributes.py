"""The safety net's allow-lists: attributes that Table E.1-1 does not list and that we keep.

Table E.1-1 lists what PS3.15 knows to be identifying; an attribute it does not list (a newer one, a
retired one, one we never thought of) is judged by its VR: names, free text, dates, times, ages, AE
titles and URIs are identifying unless listed here. Numbers, code strings (CS), binary data and UIDs
(which are remapped) are not text a person can be named in and pass.

Three lists, by how much we trust the value:

* ``VERBATIM``: equipment and acquisition technique (vendor, model, software, kernel, coil ...).
  PS3.15 does not protect them; images are not usable without them; kept unchanged.
* ``CODE_FIELDS``: the parts of a code item. Kept unchanged when the item's Coding Scheme Designator is a
  public terminology (``PUBLIC_CODING_SCHEMES``: its codes name concepts, not people or sites); in a
  local scheme (99xxx, L ...) the value goes through the descriptor cleaner and becomes a dummy if
  the cleaner rejects it, so the item stays valid.
* ``CLEANED``: short descriptive labels that some IODs require (Type 1 or 2), so removing them would
  break the object: kept when the descriptor cleaner accepts them, else replaced by a dummy.

UI attributes that carry classes, transfer syntaxes or coding-scheme identifiers (``UID_KEPT``) are not
remapped: they name kinds of things, not instances.
"""

from __future__ import annotations

from pydicom.datadict import keyword_dict, tag_for_keyword


def _tags(*keywords: str) -> frozenset[int]:
    tags = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(f"unknown DICOM keyword in allow-list: {keyword}")
        tags.add(tag)
    return frozenset(tags)


VERBATIM: frozenset[int] = _tags(
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ImplementationVersionName",
    "SequenceName", "PulseSequenceName", "ImagedNucleus", "ReceiveCoilName", "TransmitCoilName",
    "ConvolutionKernel", "FilterType", "FilterMaterial", "TransducerData", "ProcessingFunction",
    "RescaleType", "ContrastBolusRoute", "SegmentAlgorithmName", "MultiplexGroupLabel",
    "ChannelLabel", "DetectorManufacturerName", "DetectorManufacturerModelName",
    "LossyImageCompressionMethod", "ScanningSequence", "SequenceVariant",
    "PrivateCreatorReference",   # names a vendor's private block in (0008,0300), kept under Retain Safe Private
)

CODE_FIELDS: frozenset[int] = _tags(
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue",
    "URNCodeValue", "MappingResourceName", "CodingSchemeName", "CodingSchemeResponsibleOrganization",
)
CODING_SCHEME_DESIGNATOR: int = tag_for_keyword("CodingSchemeDesignator")

CLEANED: frozenset[int] = _tags(
    "PositionReferenceIndicator", "WindowCenterWidthExplanation", "LUTExplanation", "ContentDescription",
    "SegmentLabel", "SegmentDescription", "BeamName", "DimensionDescriptionLabel", "GraphicLayerDescription",
    "CompletionFlagDescription", "TextValue", "UnformattedTextValue",
)

# Terminologies published for everyone (PS3.16 Table 8-1); local schemes start with 99 or L.
PUBLIC_CODING_SCHEMES: frozenset[str] = frozenset({
    "DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "FMA", "RADLEX", "NCIt", "NCIT", "MDC", "ACR", "NEU", "UMLS",
    "I10", "I10P", "I9C", "ICD10", "ICD9", "MSH", "RXNORM", "NDC", "HPC", "ISO3166_1", "ISO639_1",
    "ISO639_2", "IBSI", "ITIS_TSN", "MGI", "PUBCHEM_CID", "BARI", "CD2", "CTV3", "DC", "NCDR", "NYUMCCG",
    "SNM", "WHOATC", "NBD", "NICIP", "RFC5646", "FDA", "HGNC",
})

# UI attributes naming classes, syntaxes and coding schemes: every keyword with SOPClass / ClassUID /
# TransferSyntax in it, plus the coding-scheme ones. Table E.1-1 rows (e.g. Manufacturer's Device
# Class UID, a U row) take precedence over this list.
UID_KEPT: frozenset[int] = frozenset(
    tag for keyword, tag in keyword_dict.items()
    if "SOPClass" in keyword or keyword.endswith("ClassUID") or "TransferSyntax" in keyword
) | _tags("CodingSchemeUID", "MappingResourceUID")
