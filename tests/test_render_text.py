"""render_text on pydicom's Structured Reports: plain text and HTML of the content tree, charsets, refusals."""

from __future__ import annotations

import html.parser

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import EncapsulatedPDFStorage

from wadows.render import RenderError, RenderFailure, RenderRequest, render_text

ODD_TEXT = '&%$§"!()<>{}/;'  # in test-SR.dcm: HTML specials and a Latin-1 character


@pytest.fixture(scope="module")
def test_sr() -> Dataset:
    return pydicom.dcmread(get_testdata_file("test-SR.dcm"))


@pytest.fixture(scope="module")
def reportsi() -> Dataset:
    return pydicom.dcmread(get_testdata_file("reportsi.dcm"))


def text_of(dataset: Dataset, media_type: str, **fields) -> str:
    rendered = render_text(dataset, RenderRequest(media_type, **fields))
    charset = rendered.media_type.split("charset=")[1]
    return rendered.data.decode(charset)


def indent_of(lines: list[str], start: str) -> int:
    line = next(line for line in lines if line.lstrip().startswith(start))
    return len(line) - len(line.lstrip())


def test_plain_text_of_test_sr(test_sr):
    text = text_of(test_sr, "text/plain")
    lines = text.splitlines()
    assert lines[0] == "Diagnosis" and set(lines[1]) == {"="}
    assert "Some UID: 1.2.3.4.5" in lines
    assert any(line.strip() == "Diameter: 3 Length Unit" for line in lines)  # NUM with its unit
    assert any(line.strip() == "Date: 2000-12-06" for line in lines)
    assert any(line.strip() == "Code: Sample Code 1" for line in lines)  # CODE value by meaning
    # nesting: a modifier sits deeper than the text it modifies, which sits deeper than its container
    assert indent_of(lines, "Code: Sample Code 1") > indent_of(lines, "Text Code: A mass of") > 0
    assert "see content item 1.3.2" in text  # a by-reference relationship
    assert ODD_TEXT in text  # plain text is not escaped
    assert "Sample Text\r" not in text and "\r" not in text  # CR, LF CR and CR LF become one line break
    assert "Patient" not in text  # patient identity only with the patient annotation


def test_html_of_test_sr_is_escaped_and_well_formed(test_sr):
    text = text_of(test_sr, "text/html")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>Diagnosis</title>" in text and "<h1>Diagnosis</h1>" in text
    assert "&amp;%$§&quot;!()&lt;&gt;{}/;" in text
    assert ODD_TEXT not in text
    assert "<b>Diameter</b>: 3 Length Unit" in text
    checker = _TagBalance()
    checker.feed(text)
    checker.close()
    assert checker.stack == [] and checker.max_list_depth >= 3  # nested items are nested lists
    assert '<meta charset="utf-8">' in text


def test_headings_come_from_container_concept_names(reportsi):
    text = text_of(reportsi, "text/html")
    assert "<h1>Document Title</h1>" in text
    assert "<h2>Section Heading</h2>" in text
    assert "<b>Report Text</b>: Enter text" in text
    plain = text_of(reportsi, "text/plain").splitlines()
    assert indent_of(plain, "Report Text: Enter text") > indent_of(plain, "Section Heading")
    assert "Recording Observer's Name: Enter text" in plain  # PNAME


def test_patient_block_only_with_the_patient_annotation(reportsi):
    assert "Last Name, First Name" not in text_of(reportsi, "text/plain")
    with_patient = text_of(reportsi, "text/plain", annotation=frozenset({"patient"}))
    assert "Patient: Last Name, First Name" in with_patient
    rendered = render_text(reportsi, RenderRequest("text/html", annotation=frozenset({"patient", "technique"})))
    assert rendered.used.annotation == frozenset({"patient"})
    assert "<dt>Patient</dt><dd>Last Name, First Name</dd>" in rendered.data.decode()


def test_latin1_charset(test_sr):
    rendered = render_text(test_sr, RenderRequest("text/plain", charset="ISO-8859-1"))
    assert rendered.media_type == "text/plain; charset=ISO-8859-1"
    assert rendered.used.charset == "ISO-8859-1"
    assert "§".encode("latin-1") in rendered.data and "§".encode("utf-8") not in rendered.data
    assert ODD_TEXT in rendered.data.decode("latin-1")
    html_rendered = render_text(test_sr, RenderRequest("text/html", charset="iso-8859-1"))
    assert b'<meta charset="iso-8859-1">' in html_rendered.data


def test_utf8_is_the_default(test_sr):
    rendered = render_text(test_sr, RenderRequest("text/plain"))
    assert rendered.media_type == "text/plain; charset=utf-8"
    assert "§".encode("utf-8") in rendered.data


def test_utf16(test_sr):
    rendered = render_text(test_sr, RenderRequest("text/plain", charset="UTF-16"))
    assert ODD_TEXT in rendered.data.decode("utf-16")


def test_charset_that_cannot_encode_the_text(test_sr):
    with pytest.raises(RenderError) as error:
        render_text(test_sr, RenderRequest("text/plain", charset="us-ascii"))
    assert error.value.code == RenderFailure.CHARSET_CANNOT_ENCODE
    assert "§" not in str(error.value) and "Sample" not in str(error.value)  # no report content in messages
    # a report that is plain ASCII is fine in us-ascii
    reportsi = pydicom.dcmread(get_testdata_file("reportsi.dcm"))
    assert render_text(reportsi, RenderRequest("text/plain", charset="us-ascii")).data.isascii()


@pytest.mark.parametrize("charset", ["klingon-8", "rot13", "base64", "utf-8\r\nX-Evil: 1", ""])
def test_unknown_charsets(test_sr, charset):
    with pytest.raises(RenderError) as error:
        render_text(test_sr, RenderRequest("text/plain", charset=charset or " "))
    assert error.value.code == RenderFailure.UNSUPPORTED_CHARSET


def test_encapsulated_pdf_is_not_text():
    pdf = Dataset()
    pdf.SOPClassUID = EncapsulatedPDFStorage
    pdf.MIMETypeOfEncapsulatedDocument = "application/pdf"
    pdf.EncapsulatedDocument = b"%PDF-1.4\n"
    with pytest.raises(RenderError) as error:
        render_text(pdf, RenderRequest("text/plain"))
    assert error.value.code == RenderFailure.NOT_RENDERABLE


def test_image_media_type_for_a_report_is_refused(test_sr):
    with pytest.raises(RenderError) as error:
        render_text(test_sr, RenderRequest("image/png"))
    assert error.value.code == RenderFailure.NOT_RENDERABLE


class _TagBalance(html.parser.HTMLParser):
    """Checks that every opened element is closed in order (void elements aside)."""

    VOID = {"meta", "br", "!doctype"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.max_list_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
            self.max_list_depth = max(self.max_list_depth, self.stack.count("ul"))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>"
        self.stack.pop()


def _code(meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "1", "99TEST", meaning
    return code


def test_concept_names_and_values_are_escaped_everywhere():
    section, item = Dataset(), Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    item.ConceptNameCodeSequence = [_code("Finding <b>")]
    item.TextValue = "1 < 2 & 3"
    section.RelationshipType, section.ValueType, section.ContinuityOfContent = "CONTAINS", "CONTAINER", "SEPARATE"
    section.ConceptNameCodeSequence = [_code("Q&A <section>")]
    section.ContentSequence = [item]
    report = Dataset()
    report.ValueType, report.ContinuityOfContent = "CONTAINER", "SEPARATE"
    report.ConceptNameCodeSequence = [_code("Report <title> & more")]
    report.ContentSequence = [section]
    text = text_of(report, "text/html")
    assert "<title>Report &lt;title&gt; &amp; more</title>" in text
    assert "<h2>Q&amp;A &lt;section&gt;</h2>" in text
    assert "<b>Finding &lt;b&gt;</b>: 1 &lt; 2 &amp; 3" in text
    assert "<section>" in text and text.count("<section>") == 1  # only ours, not the concept name's
    assert "Finding <b>: 1 < 2 & 3" in text_of(report, "text/plain")
