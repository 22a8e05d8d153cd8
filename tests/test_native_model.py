"""The PS3.19 Native DICOM Model writer.

Two oracles: dcmtk's `dcm2xml --native-format` (Debian dcmtk), compared attribute by attribute on every
pydicom test file both programs read; and, for what dcmtk cannot check (Japanese ISO 2022 IR 87 names,
which the Debian build's iconv does not convert), the names published in PS3.5 Annex H-J. Every model
made here is validated against our RELAX NG schema of PS3.19 A.1.6.
"""

from __future__ import annotations

import base64
import math
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from lxml import etree
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.datadict import dictionary_is_retired, dictionary_VR, private_dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from wadows.dicom.native_model import NATIVE_DICOM_NAMESPACE, native_model
from wadows.dicom.native_schema import native_model_schema

DCM2XML = shutil.which("dcm2xml")
DCMCONV = shutil.which("dcmconv")
needs_dcmtk = pytest.mark.skipif(DCM2XML is None, reason="dcm2xml (Debian dcmtk) is not installed")

NS = {"d": NATIVE_DICOM_NAMESPACE}
N = f"{{{NATIVE_DICOM_NAMESPACE}}}"
TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
CHARSET_FILES = Path(get_charset_files("chrX1.dcm")[0]).parent
WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_DATA_TAGS = {"7FE00008", "7FE00009", "7FE00010"}
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}

# Files dcm2xml makes no model of, with the reason; every other file pydicom reads must agree.
DCMTK_CANNOT_READ = {
    "MR_truncated.dcm": "the file ends inside Pixel Data; dcmtk stops with a read error, pydicom reads the header",
    "rtplan_truncated.dcm": "the file ends inside an element; dcmtk stops, pydicom reads what is there",
    "SC_rgb_jpeg.dcm": "implicit VR data under an explicit VR transfer syntax: pydicom detects it, dcmtk does not",
}
# dcm2xml: "Cannot convert Directory Record to Native DICOM Model": DICOMDIRs have no native model in dcmtk.
DCMTK_NO_DIRECTORY_RECORDS = "Cannot convert Directory Record"
# The iconv that Debian's dcmtk uses has no ISO 2022 IR 87 (Japanese kanji): dcmtk refuses to convert, and
# unconverted it writes invalid character references and splits names on 0x5E bytes inside kanji. In these
# files only ASCII text is compared with dcmtk; test_japanese_names_match_ps3_5_annex_h checks the rest.
DCMTK_NO_IR_87 = "ISO 2022 IR 87"


def validated(model: etree._Element) -> etree._Element:
    """`model`, after checking it against our schema and the numbering RELAX NG cannot express."""
    schema = native_model_schema()
    assert schema.validate(model), schema.error_log.last_error
    for parent in model.iter():
        for kind in ("Value", "Item", "PersonName"):
            numbers = [int(child.get("number")) for child in parent if child.tag == N + kind]
            assert numbers == list(range(1, len(numbers) + 1)), (parent.get("tag"), kind, numbers)
    for attribute in model.iter(N + "DicomAttribute"):
        if attribute.find("d:PersonName", NS) is not None:
            assert attribute.get("vr") == "PN"
    return model


def model_of(name: str, **kwargs) -> etree._Element:
    return validated(native_model(pydicom.dcmread(get_testdata_file(name)), **kwargs))


def attribute(model: etree._Element, path: str) -> etree._Element:
    """The DicomAttribute at `path`, tags separated by '/', e.g. '00081115/00081140' (first items)."""
    node = model
    for step in path.split("/"):
        if node.tag == N + "DicomAttribute":
            node = node.find("d:Item", NS)
        found = node.xpath(f"d:DicomAttribute[@tag='{step}']", namespaces=NS)
        assert found, f"no {step} in {path}"
        node = found[0]
    return node


def values(node: etree._Element) -> list[str | None]:
    return [v.text for v in node.findall("d:Value", NS)]


# ---------------------------------------------------------------------------------------------------------
# dcm2xml agreement


@dataclass(frozen=True)
class Attr:
    tag: str
    vr: str
    keyword: str | None
    creator: str | None
    content: tuple  # ("values", texts) | ("names", groups) | ("items", items) | ("inline", bytes) | ("bulk",) | ()


def read_attrs(parent: etree._Element) -> list[Attr]:
    result = []
    for node in parent.findall("d:DicomAttribute", NS):
        children = list(node)
        kinds = {etree.QName(child).localname for child in children}
        if not children:
            content: tuple = ()
        elif kinds == {"Value"}:
            content = ("values", tuple(child.text or "" for child in children))
        elif kinds == {"PersonName"}:
            content = ("names", tuple(
                tuple((etree.QName(group).localname, tuple((etree.QName(c).localname, c.text) for c in group))
                      for group in name) for name in children))
        elif kinds == {"Item"}:
            content = ("items", tuple(tuple(read_attrs(item)) for item in children))
        elif kinds == {"InlineBinary"}:
            content = ("inline", base64.b64decode(children[0].text or ""))
        elif kinds == {"BulkData"}:
            content = ("bulk",)
        else:
            raise AssertionError(f"mixed content in {node.get('tag')}: {kinds}")
        result.append(Attr(node.get("tag"), node.get("vr"), node.get("keyword"), node.get("privateCreator"), content))
    return result


@dataclass
class Dcm2xml:
    model: etree._Element | None  # None when dcm2xml made none
    text: str  # "as stored": XML in the data set's own character set; "utf-8": converted; "ascii": see below
    stderr: str


def run_dcm2xml(path: Path) -> Dcm2xml:
    """dcmtk's model of `path`.

    --encode-base64 writes binary values inline (the native format's default is a BulkData uuid for each),
    --load-all so long values are there to write, --use-xml-namespace for the PS3.19 namespace. Text is left
    in its own character set (the XML declaration names it) unless dcmtk cannot name it in XML (ISO 2022,
    GB18030, or an item with a character set of its own): then --convert-to-utf8, which also rewrites
    Specific Character Set to ISO_IR 192. Where even that fails (ISO 2022 IR 87), the unconverted output is
    read leniently: only its ASCII text can be compared.
    """
    base = [DCM2XML, "--native-format", "--use-xml-namespace", "--encode-base64", "--load-all"]
    parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
    stored = subprocess.run([*base, str(path)], capture_output=True, timeout=120)
    if stored.returncode != 0:
        return Dcm2xml(None, "as stored", stored.stderr.decode("utf-8", "replace"))
    if b"quoting non-ASCII" not in stored.stderr:
        try:
            stderr = stored.stderr.decode("utf-8", "replace")
            return Dcm2xml(etree.fromstring(stored.stdout, parser), "as stored", stderr)
        except etree.XMLSyntaxError:
            pass  # an item's own character set, other than the one the XML declaration names
    utf8 = subprocess.run([*base, "--convert-to-utf8", str(path)], capture_output=True, timeout=120)
    stderr = utf8.stderr.decode("utf-8", "replace")
    if utf8.returncode == 0:
        return Dcm2xml(etree.fromstring(utf8.stdout, parser), "utf-8", stderr)
    lenient = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True, recover=True)
    return Dcm2xml(etree.fromstring(stored.stdout, lenient), "ascii", stderr)


def int_tag(text: str) -> int:
    return int(text, 16)


def float_equal(a: str, b: str, vr: str) -> bool:
    """Same FL/FD value whatever the digits: dcmtk prints %.9g / %.17g, we print the shortest round trip.

    For FD, one unit in the last place is allowed: dcmtk's own double to text conversion is not correctly
    rounded (examples_palette.dcm PhysicalDeltaX is 0x3F9ADBB824E336F7, dcmtk prints 0.026228787661969974,
    which reads back as ...36F6). It also prints -0 as 0, which == takes care of."""
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if vr == "FL":
        return struct.unpack("<f", struct.pack("<f", x)) == struct.unpack("<f", struct.pack("<f", y))
    return x == y or abs(x - y) <= math.ulp(x)


def dictionary_vr(a: Attr) -> str | None:
    tag = int_tag(a.tag)
    try:
        if a.creator is None:
            return dictionary_VR(tag)
        return private_dictionary_VR(tag | 0x1000, a.creator)  # any block: the dictionary says "xx"
    except KeyError:
        return None


def raw_matches_values(raw: bytes, ours: Attr) -> bool:
    """An element dcmtk kept as UN, against the dictionary VR reading pydicom made of the same bytes."""
    vr = ours.vr
    texts = ours.content[1] if ours.content and ours.content[0] == "values" else ()
    if not raw:
        return not ours.content
    if vr in TEXT_VRS:
        parts = raw.decode("latin-1").rstrip("\0 ").split("\\") if vr not in ("LT", "ST", "UT", "UR") else [
            raw.decode("latin-1").rstrip("\0 ")]
        return [p.strip(" \0") for p in parts] == [t.strip() for t in texts]
    if vr == "AT":
        pairs = struct.unpack(f"<{len(raw) // 2}H", raw)
        return [f"{g:04X}{e:04X}" for g, e in zip(pairs[::2], pairs[1::2])] == list(texts)
    if vr == "SQ":
        return ours.content[0] == "items" and len(ours.content[1]) == count_items(raw)
    if vr in NUMBER_FORMATS:
        size = struct.calcsize(NUMBER_FORMATS[vr])
        numbers = struct.unpack(f"<{len(raw) // size}{NUMBER_FORMATS[vr]}", raw)
        return all(float_equal(str(n), t, vr) if vr in ("FL", "FD") else str(n) == t for n, t in zip(numbers, texts))
    if vr == "PN":
        name = raw.decode("latin-1").rstrip("\0 ")
        ours_text = "=".join("^".join(text for _, text in group) for _, group in ours.content[1][0])
        return name.replace("^", "").replace("=", "") == ours_text.replace("^", "").replace("=", "")
    return False


def count_items(raw: bytes) -> int | None:
    """The number of items in a sequence value dcmtk left as UN bytes (implicit VR little endian items).

    dcmtk re-reads UN as a sequence only when its length is undefined (CP-246); pydicom also when it is
    defined. The items' content is pydicom's reading either way, so only their number is compared."""
    count, offset = 0, 0
    while offset + 8 <= len(raw):
        group, element, length = struct.unpack_from("<HHL", raw, offset)
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            return None
        count, offset = count + 1, offset + 8 + length
    return count if offset == len(raw) else None


def disagreements(ours: list[Attr], theirs: list[Attr], text: str, where: str = "") -> list[str]:
    """Every difference between our attributes and dcmtk's that no documented normalization explains."""
    problems: list[str] = []
    ours_by_tag = {(a.tag, a.creator) for a in ours}
    theirs_tags = [(a.tag, a.creator) for a in theirs]
    if len(ours) != len(theirs):
        problems.append(f"{where}: {len(ours)} attributes, dcmtk {len(theirs)} "
                        f"(only ours: {sorted(map(str, ours_by_tag - set(theirs_tags)))[:5]}, "
                        f"only dcmtk: {sorted(map(str, set(theirs_tags) - ours_by_tag))[:5]})")
        return problems
    # Creators dcmtk does not take as creators: stored as UN, it keeps them UN (pydicom reads them as the LO
    # PS3.5 7.8.1 says they are), and so writes no privateCreator on the elements of their blocks.
    un_creators = {a.content[1][0] for a, b in zip(ours, theirs)
                   if is_private_creator(a) and b.vr == "UN" and a.content and a.content[0] == "values"}
    for a, b in zip(ours, theirs):
        here = f"{where}/{a.tag}"
        problems += header_disagreements(a, b, here, un_creators)
        problems += content_disagreements(a, b, text, here)
    return problems


def is_private_creator(a: Attr) -> bool:
    """(gggg,0010-00FF) in an odd group; a data element of a block shows such a tag too, with its creator."""
    return a.creator is None and int(a.tag[:4], 16) % 2 == 1 and 0x10 <= int(a.tag[4:], 16) <= 0xFF


def header_disagreements(a: Attr, b: Attr, here: str, un_creators: set[str]) -> list[str]:
    problems = []
    tag_ok = a.tag == b.tag or (
        # A private data element with no creator in its data set: dcmtk still zeroes the block byte, which
        # then says nothing about the block; we keep the whole tag (deliberate).
        b.creator is None and (a.creator is None or a.creator in un_creators)
        and int_tag(a.tag) >> 16 & 1 and a.tag[:4] + "00" + a.tag[6:] == b.tag)
    if not tag_ok:
        problems.append(f"{here}: tag {a.tag} vs dcmtk {b.tag}")
    # dcmtk keeps an element stored as UN as UN; pydicom reads it with the VR its public or private
    # dictionary gives (replace_un_with_known_vr), which is what the metadata is queried by. Values below.
    vr_ok = a.vr == b.vr or (b.vr == "UN" and a.vr == ("LO" if is_private_creator(a) else dictionary_vr(a)))
    if not vr_ok:
        problems.append(f"{here}: vr {a.vr} vs dcmtk {b.vr}")
    # dcmtk names retired attributes RETIRED_<Keyword> in its dictionary and writes no keyword for them; PS3.6
    # gives them a keyword, which we write.
    keyword_ok = a.keyword == b.keyword or (b.keyword is None and dictionary_is_retired(int_tag(a.tag)))
    if not keyword_ok:
        problems.append(f"{here}: keyword {a.keyword} vs dcmtk {b.keyword}")
    if a.creator != b.creator and not (b.creator is None and a.creator in un_creators):
        problems.append(f"{here}: privateCreator {a.creator!r} vs dcmtk {b.creator!r}")
    return problems


def content_disagreements(a: Attr, b: Attr, text: str, here: str) -> list[str]:
    if a.tag in PIXEL_DATA_TAGS and a.content == ("bulk",):
        return []  # ours is always BulkData (deliberate); dcmtk inlines native and empties encapsulated data
    if text != "as stored" and a.tag == "00080005":
        return []  # --convert-to-utf8 rewrote dcmtk's Specific Character Set to ISO_IR 192
    if text == "ascii" and a.content and a.content[0] in ("values", "names") and not str(a.content).isascii():
        return []  # dcmtk could not decode this text (ISO 2022 IR 87): test_japanese_names_... checks it
    if a.content == b.content:
        return []
    kind_a = a.content[0] if a.content else None
    kind_b = b.content[0] if b.content else None
    if kind_a == kind_b == "items" and len(a.content[1]) == len(b.content[1]):
        problems = []
        for number, (item_a, item_b) in enumerate(zip(a.content[1], b.content[1]), 1):
            problems += disagreements(list(item_a), list(item_b), text, f"{here}[{number}]")
        return problems
    if kind_a == kind_b == "values" and a.vr in ("FL", "FD") and len(a.content[1]) == len(b.content[1]):
        if all(float_equal(x, y, a.vr) for x, y in zip(a.content[1], b.content[1])):
            return []
    if kind_a == kind_b == "inline":
        ours, dcmtk = a.content[1], b.content[1]
        if a.vr in WORD_SIZE:
            # dcmtk base64-encodes OW/OF/... words big endian ("Base64 encoder requires big endian input
            # data", dcvrobow.cc); PS3.18/19 octet streams and ours are little endian.
            dcmtk = swap_words(dcmtk, WORD_SIZE[a.vr])
        if ours == dcmtk:
            return []
        if len(ours) % 2 and dcmtk == ours + b"\0":
            return []  # an odd-length value (not valid DICOM): dcmtk pads it to even with NUL, we keep it
        if a.vr in WORD_SIZE and len(ours) % 2 and swap_words(b.content[1] , WORD_SIZE[a.vr]) == ours + b"\0":
            return []
    if kind_a == kind_b == "names" and names_match_but_dcmtk_copied_a_group(a.content[1], b.content[1]):
        return []
    if b.vr == "UN" and a.vr != "UN" and kind_b in ("inline", None) and raw_matches_values(
            b.content[1] if b.content else b"", a):
        return []
    return [f"{here}: {str(a.content)[:160]} vs dcmtk {str(b.content)[:160]}"]


def names_match_but_dcmtk_copied_a_group(ours: tuple, dcmtk: tuple) -> bool:
    """A name whose last group is empty ("Wang^XiaoDong=王^小東="): dcmtk writes the group before it a second
    time in its place (a dcmtk bug); ours leaves the empty group out."""
    if len(ours) != len(dcmtk):
        return False
    for name_a, name_b in zip(ours, dcmtk):
        if name_a != name_b and not (len(name_b) == len(name_a) + 1 and name_b[:-1] == name_a
                                     and name_b[-1][1] == name_b[-2][1]):
            return False
    return True


def swap_words(data: bytes, size: int) -> bytes:
    whole = len(data) - len(data) % size
    return b"".join(data[i:i + size][::-1] for i in range(0, whole, size)) + data[whole:]


# Data sets stored without preamble and file meta (read with force). no_meta.dcm is left out: it starts one
# byte into an element, and both pydicom and dcmtk read nothing sensible from it.
BARE_DATA_SETS = ["rtstruct.dcm", "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm"]


def agreement_files() -> list[Path]:
    """Every DICOM file under pydicom's test and charset folders: the Part 10 files and the bare data sets."""
    part10 = [path for path in sorted([*TEST_FILES.rglob("*"), *CHARSET_FILES.rglob("*")])
              if path.is_file() and pydicom.misc.is_dicom(path)]
    return part10 + [TEST_FILES / name for name in BARE_DATA_SETS]


def file_id(path: Path) -> str:
    return str(path.relative_to(path.parents[1] if path.parent.name == "charset_files" else TEST_FILES))


def charsets_of(ds: Dataset) -> set[str]:
    found = set()
    for elem in ds.iterall():
        if elem.tag == 0x00080005 and elem.value:
            found |= set([elem.value] if isinstance(elem.value, str) else elem.value)
    return found


@needs_dcmtk
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's test files hold deliberately invalid values
@pytest.mark.parametrize("path", agreement_files(), ids=file_id)
def test_agrees_with_dcm2xml(path: Path):
    ds = pydicom.dcmread(path, force=path.name in BARE_DATA_SETS)
    ours = validated(native_model(ds, bulk_data_threshold=1 << 62))  # inline everything but pixel data
    dcmtk = run_dcm2xml(path)
    if dcmtk.model is None:  # only for the documented reasons; the model above was still made and validated
        if path.name in DCMTK_CANNOT_READ:
            pytest.skip(f"dcm2xml cannot read it: {DCMTK_CANNOT_READ[path.name]}")
        assert DCMTK_NO_DIRECTORY_RECORDS in dcmtk.stderr and "DirectoryRecordSequence" in ds, dcmtk.stderr
        pytest.skip("dcm2xml has no native model of DICOMDIR directory records")
    assert path.name not in DCMTK_CANNOT_READ, "dcmtk reads it now: drop it from DCMTK_CANNOT_READ"
    if dcmtk.text == "ascii":
        # ISO 2022 IR 87 named in the data set or an item: dcmtk fails to convert it, with one message or
        # another depending on where it is declared.
        assert DCMTK_NO_IR_87 in charsets_of(ds) and (
            "ISO 2022 IR 87" in dcmtk.stderr or "Cannot convert character encoding" in dcmtk.stderr), dcmtk.stderr
    problems = disagreements(read_attrs(ours), read_attrs(dcmtk.model), dcmtk.text)
    assert not problems, "\n".join(problems[:20])


@needs_dcmtk
def test_agreement_covers_the_files_the_brief_names():
    names = {path.name for path in agreement_files()}
    for wanted in ["CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm",
                   "waveform_ecg.dcm", "examples_overlay.dcm", "nested_priv_SQ.dcm", "priv_SQ.dcm", "reportsi.dcm",
                   "liver_1frame.dcm", "SC_rgb_rle.dcm", "JPEG-lossy.dcm", "chrX1.dcm", "chrI2.dcm", "chrArab.dcm"]:
        assert wanted in names


@needs_dcmtk
def test_comparison_catches_a_changed_value(tmp_path):
    """The comparison itself can fail: one changed value in a copy is reported."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dcmtk = run_dcm2xml(Path(get_testdata_file("CT_small.dcm")))
    assert ds.PatientPosition == "FFS"
    ds.PatientPosition = "HFS"
    problems = disagreements(read_attrs(validated(native_model(ds, 1 << 62))), read_attrs(dcmtk.model), dcmtk.text)
    assert any("00185100" in problem for problem in problems), problems


# ---------------------------------------------------------------------------------------------------------
# Person names and character sets


def names(node: etree._Element) -> list[dict[str, dict[str, str]]]:
    return [{etree.QName(group).localname: {etree.QName(c).localname: c.text for c in group} for group in name}
            for name in node.findall("d:PersonName", NS)]


def charset_model(name: str) -> etree._Element:
    return validated(native_model(pydicom.dcmread(get_charset_files(name)[0])))


YAMADA_IDEOGRAPHIC = {"FamilyName": "山田", "GivenName": "太郎"}
YAMADA_PHONETIC = {"FamilyName": "やまだ", "GivenName": "たろう"}


@pytest.mark.parametrize("file, path, expected", [
    # PS3.5 Annex H: ISO 2022 IR 87 after a default first component
    ("chrH31.dcm", "00100010", {"Alphabetic": {"FamilyName": "Yamada", "GivenName": "Tarou"},
                                "Ideographic": YAMADA_IDEOGRAPHIC, "Phonetic": YAMADA_PHONETIC}),
    # PS3.5 Annex H: half-width katakana (ISO 2022 IR 13) then IR 87
    ("chrH32.dcm", "00100010", {"Alphabetic": {"FamilyName": "ﾔﾏﾀﾞ", "GivenName": "ﾀﾛｳ"},
                                "Ideographic": YAMADA_IDEOGRAPHIC, "Phonetic": YAMADA_PHONETIC}),
    ("chrJapMulti.dcm", "00100010", {"Alphabetic": YAMADA_PHONETIC}),
    ("chrJapMultiExplicitIR6.dcm", "00100010", {"Alphabetic": YAMADA_PHONETIC}),
    # the character set declared in the sequence item, not the data set's (ISO_IR 192)
    ("chrSQEncoding.dcm", "00321064/00100010", {"Alphabetic": {"FamilyName": "ﾔﾏﾀﾞ", "GivenName": "ﾀﾛｳ"},
                                                 "Ideographic": YAMADA_IDEOGRAPHIC, "Phonetic": YAMADA_PHONETIC}),
    # the item inherits the data set's ISO 2022 IR 13\ISO 2022 IR 87
    ("chrSQEncoding1.dcm", "00321064/00100010", {"Alphabetic": {"FamilyName": "ﾔﾏﾀﾞ", "GivenName": "ﾀﾛｳ"},
                                                  "Ideographic": YAMADA_IDEOGRAPHIC, "Phonetic": YAMADA_PHONETIC}),
])
def test_japanese_names_match_ps3_5_annex_h(file, path, expected):
    assert names(attribute(charset_model(file), path))[0] == expected


@pytest.mark.parametrize("file, expected", [
    ("chrI2.dcm", {"Alphabetic": {"FamilyName": "Hong", "GivenName": "Gildong"},  # PS3.5 Annex I, ISO 2022 IR 149
                   "Ideographic": {"FamilyName": "洪", "GivenName": "吉洞"},
                   "Phonetic": {"FamilyName": "홍", "GivenName": "길동"}}),
    ("chrX1.dcm", {"Alphabetic": {"FamilyName": "Wang", "GivenName": "XiaoDong"},  # PS3.5 Annex J, UTF-8
                   "Ideographic": {"FamilyName": "王", "GivenName": "小東"}}),
    ("chrX2.dcm", {"Alphabetic": {"FamilyName": "Wang", "GivenName": "XiaoDong"},  # PS3.5 Annex J, GB18030
                   "Ideographic": {"FamilyName": "王", "GivenName": "小东"}}),
    ("chrFren.dcm", {"Alphabetic": {"FamilyName": "Buc", "GivenName": "Jérôme"}}),  # ISO_IR 100
    ("chrGreek.dcm", {"Alphabetic": {"FamilyName": "Διονυσιος"}}),  # ISO_IR 126
    ("chrRuss.dcm", {"Alphabetic": {"FamilyName": "Люкceмбypг"}}),  # ISO_IR 144 (Latin c, e, y, p in the file)
])
def test_person_name_groups_and_character_sets(file, expected):
    assert names(attribute(charset_model(file), "00100010")) == [expected]


def test_multi_valued_person_names_and_text_keep_their_order():
    model = charset_model("chrFrenMulti.dcm")
    other_names = names(attribute(model, "00101001"))
    assert other_names == [{"Alphabetic": {"FamilyName": "Buc", "GivenName": "Jérôme"}}] * 2
    korean = charset_model("chrKoreanMulti.dcm")
    assert names(attribute(korean, "00101001")) == [{"Alphabetic": {"FamilyName": "김희중"}}] * 2
    assert values(attribute(korean, "001021B0")) == ["김희중"]


def test_all_five_components_and_empty_ones_left_out():
    ds = Dataset()
    ds.PatientName = "Adams^John Robert Quincy^^Rev.^B.A. M.Div."
    ds.ReferringPhysicianName = ["Morrison-Jones^Susan^^^Ph.D., Chief Executive Officer", "", "Doe^John"]
    ds.PerformingPhysicianName = "^^^^"
    model = validated(native_model(ds))
    assert names(attribute(model, "00100010")) == [{"Alphabetic": {
        "FamilyName": "Adams", "GivenName": "John Robert Quincy", "NamePrefix": "Rev.", "NameSuffix": "B.A. M.Div."}}]
    assert names(attribute(model, "00080090")) == [
        {"Alphabetic": {"FamilyName": "Morrison-Jones", "GivenName": "Susan",
                        "NameSuffix": "Ph.D., Chief Executive Officer"}},
        {},
        {"Alphabetic": {"FamilyName": "Doe", "GivenName": "John"}}]
    assert len(attribute(model, "00081050")) == 0  # delimiters only: an empty attribute, as dcmtk writes it


def test_text_in_a_character_set_xml_cannot_carry_is_replaced_not_refused():
    ds = Dataset()
    ds.StudyDescription = "head\x1b(Jneck\x00"
    model = validated(native_model(ds))
    assert values(attribute(model, "00081030")) == ["head\ufffd(Jneck\ufffd"]


# ---------------------------------------------------------------------------------------------------------
# Values


def test_numbers_are_written_as_the_standard_writes_them():
    ds = Dataset()
    ds.add_new(0x00280010, "US", 512)
    ds.add_new(0x00281101, "US", [256, 0, 16])  # RedPaletteColorLookupTableDescriptor, VM 3
    ds.add_new(0x00189219, "SS", [-5, 7])  # an SS with two values
    ds.add_new(0x00181310, "US", [0, 256, 256, 0])  # AcquisitionMatrix
    ds.add_new(0x00200032, "DS", ["-158.135803", "-179.035797", " 1e2 "])
    ds.add_new(0x00200013, "IS", "0007")
    ds.add_new(0x00189087, "FD", [0.1, 1e-300, 2.0, float("inf")])  # DiffusionBValue
    ds.add_new(0x00720064, "FL", [-77.2040634, 9.69999981])  # SelectorFLValue
    ds.add_new(0x00209165, "AT", [0x00100010, 0x7FE00010])  # DimensionIndexPointer
    ds.add_new(0x00720082, "SV", [-(2 ** 63), 2 ** 40])  # SelectorSVValue
    ds.add_new(0x00720083, "UV", [2 ** 64 - 1])  # SelectorUVValue
    ds.add_new(0x00081160, "IS", ["1", "", "3"])  # ReferencedFrameNumber with an empty middle value
    model = validated(native_model(ds))
    assert values(attribute(model, "00281101")) == ["256", "0", "16"]
    assert values(attribute(model, "00189219")) == ["-5", "7"]
    assert values(attribute(model, "00200032")) == ["-158.135803", "-179.035797", "1e2"]  # the text, not a float
    assert values(attribute(model, "00200013")) == ["0007"]
    assert values(attribute(model, "00189087")) == ["0.1", "1E-300", "2.0", "INF"]
    assert values(attribute(model, "00720064")) == ["-77.20406", "9.7"]  # shortest text that is the same float32
    assert [struct.pack("<f", float(v)) for v in values(attribute(model, "00720064"))] == [
        struct.pack("<f", -77.2040634), struct.pack("<f", 9.69999981)]
    assert values(attribute(model, "00209165")) == ["00100010", "7FE00010"]
    assert values(attribute(model, "00720082")) == [str(-(2 ** 63)), str(2 ** 40)]
    assert values(attribute(model, "00720083")) == [str(2 ** 64 - 1)]
    assert values(attribute(model, "00081160")) == ["1", None, "3"]


def test_padding_of_each_value_is_dropped_where_ps3_5_calls_it_insignificant():
    model = model_of("693_J2KI.dcm")
    assert values(attribute(model, "00080008")) == ["DERIVED", "PRIMARY", "AXIAL"]  # stored "DERIVED \PRIMARY..."


def test_empty_attributes_have_no_child_and_keep_their_vr():
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.PatientName = None
    ds.OtherPatientIDsSequence = Sequence()
    ds.add_new(0x00281201, "OW", b"")
    ds.add_new(0x00181063, "DS", None)
    model = validated(native_model(ds))
    for tag, vr in [("00080050", "SH"), ("00100010", "PN"), ("00101002", "SQ"), ("00281201", "OW"), ("00181063", "DS")]:
        node = attribute(model, tag)
        assert (node.get("vr"), len(node)) == (vr, 0)


def test_file_meta_and_group_lengths_are_left_out():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00080000, "UL", 1234)
    ds.add_new(0x00020010, "UI", ExplicitVRLittleEndian)  # a file meta element inside the data set itself
    item = Dataset()
    item.add_new(0x00080000, "UL", 8)
    item.CodeValue = "1"
    ds.ProcedureCodeSequence = Sequence([item])
    model = validated(native_model(ds))
    tags = [node.get("tag") for node in model.iter(N + "DicomAttribute")]
    assert not [tag for tag in tags if tag.startswith("0002") or tag.endswith("0000")]
    assert "00080016" in tags


def test_keywords_come_from_the_dictionary_including_repeating_groups():
    model = model_of("examples_overlay.dcm")
    assert attribute(model, "60000010").get("keyword") == "OverlayRows"
    assert attribute(model, "60003000").get("keyword") == "OverlayData"
    assert attribute(model, "00080060").get("keyword") == "Modality"
    ds = Dataset()
    ds.add_new(0x00080001, "UL", 3)  # retired (PS3.6 keeps its keyword)
    ds.add_new(0x00091001, "LO", "no creator")  # private, no block creator
    model = validated(native_model(ds))
    assert attribute(model, "00080001").get("keyword") == "LengthToEnd"
    assert attribute(model, "00091001").get("keyword") is None


def test_sequences_nest_three_deep_and_more():
    ds = Dataset()
    level3 = Dataset()
    level3.CodeValue = "T-D1100"
    level3.CodeMeaning = "Head"
    level2 = Dataset()
    level2.ConceptCodeSequence = Sequence([level3])
    level2.RelationshipType = "CONTAINS"
    level1a, level1b = Dataset(), Dataset()
    level1a.ContentSequence = Sequence([level2, Dataset()])
    level1b.ValueType = "TEXT"
    ds.ContentSequence = Sequence([level1a, level1b])
    model = validated(native_model(ds))
    path = "/d:NativeDicomModel/d:DicomAttribute[@tag='0040A730']/d:Item[@number='1']" \
           "/d:DicomAttribute[@tag='0040A730']/d:Item[@number='1']" \
           "/d:DicomAttribute[@tag='0040A168']/d:Item[@number='1']/d:DicomAttribute[@keyword='CodeMeaning']/d:Value"
    assert [v.text for v in model.xpath(path, namespaces=NS)] == ["Head"]
    inner = model.xpath("/d:NativeDicomModel/d:DicomAttribute/d:Item[1]/d:DicomAttribute/d:Item", namespaces=NS)
    assert [item.get("number") for item in inner] == ["1", "2"] and len(inner[1]) == 0  # an empty item stays
    assert model.xpath("/d:NativeDicomModel/d:DicomAttribute/d:Item[2]/d:DicomAttribute/d:Value/text()",
                       namespaces=NS) == ["TEXT"]


def test_deep_real_sequences():
    model = model_of("waveform_ecg.dcm")
    assert model.xpath("count(//d:Item)", namespaces=NS) >= 100
    sr = model_of("test-SR.dcm")
    assert sr.xpath("count(//d:Item[ancestor::d:Item[ancestor::d:Item]])", namespaces=NS) > 0  # 3 levels


# ---------------------------------------------------------------------------------------------------------
# Private attributes


def test_private_attributes_carry_their_creator_and_a_block_free_tag():
    ds = Dataset()
    ds.PatientID = "X"
    first = ds.private_block(0x0029, "ACME 1.0", create=True)  # lands in block 10
    first.add_new(0x01, "LO", "first block")
    second = ds.private_block(0x0029, "OTHER VENDOR", create=True)  # block 11
    second.add_new(0x01, "US", [1, 2])
    inner = Dataset()
    inner_block = inner.private_block(0x0029, "ACME 1.0", create=True)
    inner_block.add_new(0x02, "DS", "1.5")
    first.add_new(0x10, "SQ", Sequence([inner]))
    model = validated(native_model(ds))
    creators = model.xpath("/d:NativeDicomModel/d:DicomAttribute[@tag='00290010' or @tag='00290011']/d:Value/text()",
                           namespaces=NS)
    assert creators == ["ACME 1.0", "OTHER VENDOR"]
    acme = model.xpath("/d:NativeDicomModel/d:DicomAttribute[@privateCreator='ACME 1.0']", namespaces=NS)
    assert [(a.get("tag"), a.get("vr"), a.get("keyword")) for a in acme] == [("00290001", "LO", None),
                                                                            ("00290010", "SQ", None)]
    other = model.xpath("/d:NativeDicomModel/d:DicomAttribute[@privateCreator='OTHER VENDOR']", namespaces=NS)
    assert [(a.get("tag"), values(a)) for a in other] == [("00290001", ["1", "2"])]
    nested = acme[1].xpath("d:Item/d:DicomAttribute[@privateCreator='ACME 1.0']", namespaces=NS)
    assert [(a.get("tag"), values(a)) for a in nested] == [("00290002", ["1.5"])]
    assert attribute(model, "00290010").get("privateCreator") is None  # the creator element itself


def test_private_attributes_of_a_real_file():
    model = model_of("CT_small.dcm")
    iden = model.xpath("//d:DicomAttribute[@privateCreator='GEMS_IDEN_01']", namespaces=NS)
    assert iden[0].get("tag") == "00090001" and values(iden[0]) == ["GE_GENESIS_FF"]  # stored as (0009,1001)


# ---------------------------------------------------------------------------------------------------------
# Binary values: InlineBinary or BulkData


def binary_dataset(size: int) -> Dataset:
    ds = Dataset()
    ds.add_new(0x00281201, "OW", bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
    ds.add_new(0x00420011, "OB", b"%PDF" + b"\x01" * (size - 4))  # EncapsulatedDocument
    return ds


def test_binary_values_inline_up_to_the_threshold():
    model = validated(native_model(binary_dataset(1024)))  # default threshold: 1024 bytes
    inline = attribute(model, "00281201").find("d:InlineBinary", NS)
    assert base64.b64decode(inline.text) == bytes(range(256)) * 4
    assert attribute(model, "00420011").find("d:InlineBinary", NS) is not None


def test_binary_values_over_the_threshold_become_bulk_data_with_a_random_uuid():
    ds = binary_dataset(1026)
    first, second = (validated(native_model(ds)) for _ in range(2))
    uuids = []
    for model in (first, second):
        for tag in ("00281201", "00420011"):
            node = attribute(model, tag)
            assert [etree.QName(child).localname for child in node] == ["BulkData"]
            uuids.append(node[0].get("uuid"))
    assert len(set(uuids)) == 4  # per element and per call: nothing to link two responses by
    assert all(len(u) == 36 and u[14] == "4" for u in uuids)  # random (version 4) UUIDs
    small = validated(native_model(ds, bulk_data_threshold=4096))
    assert attribute(small, "00281201").find("d:InlineBinary", NS) is not None
    none_inline = validated(native_model(binary_dataset(2), bulk_data_threshold=0))
    assert attribute(none_inline, "00281201").find("d:BulkData", NS) is not None


def test_pixel_data_is_bulk_data_whatever_its_size():
    model = model_of("SC_rgb_small_odd.dcm", bulk_data_threshold=1 << 62)  # 27 bytes of Pixel Data
    node = attribute(model, "7FE00010")
    assert (node.get("vr"), node.get("keyword"), [etree.QName(c).localname for c in node]) == (
        "OW", "PixelData", ["BulkData"])  # the VR the file gives


def test_encapsulated_pixel_data_is_ob_even_when_the_file_says_ow():
    model = model_of("MR_small_jp2klossless.dcm")  # stored with VR OW and undefined length
    assert attribute(model, "7FE00010").get("vr") == "OB"


@pytest.mark.parametrize("name, vr", [("CT_small.dcm", "OW"), ("JPEG2000.dcm", "OB")])
def test_a_header_without_pixel_data_gets_bulk_data_in_its_place(name, vr):
    path = get_testdata_file(name)
    full = validated(native_model(pydicom.dcmread(path)))
    header = pydicom.dcmread(path, stop_before_pixels=True)
    without = validated(native_model(header))
    assert not without.xpath("//d:DicomAttribute[@tag='7FE00010']", namespaces=NS)
    with_hint = validated(native_model(header, pixel_data_vr=vr))
    tags = [node.get("tag") for node in with_hint]
    assert tags == [node.get("tag") for node in full if node.get("tag") <= "7FE00010"]
    node = attribute(with_hint, "7FE00010")
    assert (node.get("vr"), node.get("keyword"), node[0].tag) == (vr, "PixelData", N + "BulkData")


def test_the_pixel_data_hint_sits_in_tag_order_and_is_ignored_when_pixel_data_is_there():
    ds = Dataset()
    ds.Rows = 1
    ds.add_new(0x7FE10010, "LO", "AFTER")  # private creator after Pixel Data
    ds.add_new(0xFFFCFFFC, "OB", b"\0\0")  # DataSetTrailingPadding
    model = validated(native_model(ds, pixel_data_vr="OB"))
    assert [node.get("tag") for node in model] == ["00280010", "7FE00010", "7FE10010", "FFFCFFFC"]
    present = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    model = validated(native_model(present, pixel_data_vr="OB"))
    assert [node.get("vr") for node in model.xpath("d:DicomAttribute[@tag='7FE00010']", namespaces=NS)] == ["OW"]
    with pytest.raises(ValueError):
        native_model(ds, pixel_data_vr="OF")
    with pytest.raises(ValueError):
        native_model(ds, bulk_data_threshold=-1)


@pytest.mark.skipif(DCMCONV is None, reason="dcmconv (Debian dcmtk) is not installed")
def test_words_of_a_big_endian_file_are_written_little_endian(tmp_path):
    """A big endian copy made by dcmtk (which swaps OW words properly) gives the same InlineBinary."""
    source = Path(get_testdata_file("examples_overlay.dcm"))
    big = tmp_path / "big.dcm"
    subprocess.run([DCMCONV, "--write-xfer-big", str(source), str(big)], check=True, capture_output=True)
    big_ds = pydicom.dcmread(big)
    assert big_ds.original_encoding == (False, False)
    little = validated(native_model(pydicom.dcmread(source), bulk_data_threshold=1 << 62))
    swapped = validated(native_model(big_ds, bulk_data_threshold=1 << 62))
    for tag in ("00880200/00281201", "60003000"):
        ours = attribute(swapped, tag).find("d:InlineBinary", NS).text
        assert ours == attribute(little, tag).find("d:InlineBinary", NS).text
    lut = base64.b64decode(attribute(swapped, "00880200/00281201").find("d:InlineBinary", NS).text)
    assert lut[:4] == b"\x00\x01\x02\x03"  # words 0x0100, 0x0302 (dcmdump), little endian


def test_the_model_does_not_change_the_data_set():
    ds = pydicom.dcmread(get_testdata_file("MR_small_implicit.dcm"))  # ambiguous VRs to resolve
    before = [(elem.tag, elem.VR, elem.value) for elem in ds]
    validated(native_model(ds))
    assert [(elem.tag, elem.VR, elem.value) for elem in ds] == before


def test_the_namespace_is_the_default_one():
    model = model_of("MR_small.dcm")
    assert model.tag == N + "NativeDicomModel" and model.nsmap == {None: NATIVE_DICOM_NAMESPACE}
    text = etree.tostring(model, encoding="unicode")
    assert text.startswith(f'<NativeDicomModel xmlns="{NATIVE_DICOM_NAMESPACE}"><DicomAttribute tag="00080008"')


def test_the_schema_rejects_what_is_not_the_model():
    schema = native_model_schema()
    model = model_of("MR_small.dcm")
    assert schema.validate(model)
    bad_tag = model_of("MR_small.dcm")
    bad_tag[0].set("tag", "0008008")
    bad_vr = model_of("MR_small.dcm")
    bad_vr[0].set("vr", "XX")
    mixed = model_of("MR_small.dcm")
    etree.SubElement(mixed[0], N + "InlineBinary").text = "AAAA"
    for broken in (bad_tag, bad_vr, mixed):
        assert not schema.validate(broken)


def test_a_data_set_built_in_memory_with_file_meta():
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    model = validated(native_model(ds))
    assert [node.get("tag") for node in model] == ["00080016"]


def test_the_byte_order_can_be_given_for_a_copy_made_in_memory():
    ds = Dataset()  # in memory: original_encoding says nothing
    ds.add_new(0x00281201, "OW", b"\x01\x00\x03\x02")
    assert base64.b64decode(attribute(validated(native_model(ds)), "00281201")[0].text) == b"\x01\x00\x03\x02"
    swapped = native_model(ds, little_endian=False)  # the words were big endian: 0x0100, 0x0302
    assert base64.b64decode(attribute(validated(swapped), "00281201")[0].text) == b"\x00\x01\x02\x03"
