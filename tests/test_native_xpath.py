"""XPath over the Native DICOM Model: prefixed and unprefixed names, result encoding, errors and limits,
and the same evaluation in a child process stopped at a deadline."""

from __future__ import annotations

import copy
import multiprocessing
import time

import pydicom
import pytest
from lxml import etree
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from wadows.dicom.native_model import NATIVE_DICOM_NAMESPACE, native_model
from wadows.dicom.native_schema import native_model_schema
from wadows.dicom.native_xpath import MAX_EXPRESSION_LENGTH, InvalidXPath, ModelXPath, ResultTooLarge, evaluate
from wadows.dicom.xpath_deadline import XPathTimeout, evaluate_with_deadline

N = f"{{{NATIVE_DICOM_NAMESPACE}}}"


@pytest.fixture(scope="module")
def ct() -> etree._Element:
    model = native_model(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    assert native_model_schema().validate(model)
    return model


@pytest.fixture(scope="module")
def small() -> etree._Element:
    ds = Dataset()
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientName = "Doe^Jane"
    ds.Rows = 64
    item = Dataset()
    item.CodeValue = "T-A0100"
    item.CodeMeaning = "Brain & <spine>"
    ds.AnatomicRegionSequence = Sequence([item])
    model = native_model(ds)
    assert native_model_schema().validate(model)
    return model


def fragments(text: str) -> list[etree._Element]:
    """The elements of a concatenated node-set result, parsed back."""
    return list(etree.fromstring(f"<r>{text}</r>"))


def test_unprefixed_and_prefixed_paths_give_the_same_result(ct):
    plain = evaluate(ct, '/NativeDicomModel/DicomAttribute[@keyword="Modality"]/Value')
    prefixed = evaluate(ct, '/dcm:NativeDicomModel/dcm:DicomAttribute[@keyword="Modality"]/dcm:Value')
    assert plain == prefixed == f'<Value xmlns="{NATIVE_DICOM_NAMESPACE}" number="1">CT</Value>'


@pytest.mark.parametrize("plain, prefixed", [
    ('//DicomAttribute[@keyword="ImageType"]/Value', '//dcm:DicomAttribute[@keyword="ImageType"]/dcm:Value'),
    ('//DicomAttribute[@vr="SQ"]', '//dcm:DicomAttribute[@vr="SQ"]'),
    ('//Item[@number="2"]/DicomAttribute', '//dcm:Item[@number="2"]/dcm:DicomAttribute'),
    ('//PersonName/Alphabetic/*', '//dcm:PersonName/dcm:Alphabetic/*'),
    ('//DicomAttribute[@privateCreator="GEMS_IDEN_01"][2]', '//dcm:DicomAttribute[@privateCreator="GEMS_IDEN_01"][2]'),
    ('/NativeDicomModel/DicomAttribute[last()]', '/dcm:NativeDicomModel/dcm:DicomAttribute[last()]'),
    ('count(//Value)', 'count(//dcm:Value)'),
    ('//DicomAttribute[Value="CT"]/@tag', '//dcm:DicomAttribute[dcm:Value="CT"]/@tag'),
])
def test_unprefixed_expressions_map_back_to_the_model(ct, plain, prefixed):
    assert evaluate(ct, plain) == evaluate(ct, prefixed) is not None


def test_element_results_are_the_models_own_elements_in_document_order(ct):
    result = evaluate(ct, '//DicomAttribute[@keyword="ImageType"]/Value')
    parsed = fragments(result)
    assert [(e.tag, e.get("number"), e.text) for e in parsed] == [
        (N + "Value", "1", "ORIGINAL"), (N + "Value", "2", "PRIMARY"), (N + "Value", "3", "AXIAL")]
    nested = fragments(evaluate(ct, '//DicomAttribute[@keyword="OtherPatientIDsSequence"]'))[0]
    assert [item.get("number") for item in nested] == ["1", "2"]
    assert nested.xpath("count(.//d:Value)", namespaces={"d": NATIVE_DICOM_NAMESPACE}) == 4


def test_root_returns_the_whole_model(ct):
    whole = evaluate(ct, "/")
    assert whole == etree.tostring(ct, encoding="unicode")
    assert native_model_schema().validate(etree.fromstring(whole))
    assert evaluate(ct, " / ") == evaluate(ct, "/.") == evaluate(ct, "(/)") == whole
    with_more = evaluate(ct, '/ | //DicomAttribute[@keyword="Rows"]')  # the root node comes first
    assert with_more.startswith(whole)
    assert [e.get("keyword") for e in fragments(with_more[len(whole):])] == ["Rows"]


def test_strings_numbers_and_booleans_are_their_xpath_string_value(ct):
    assert evaluate(ct, 'string(//DicomAttribute[@keyword="Rows"]/Value)') == "128"
    assert evaluate(ct, 'count(/NativeDicomModel/DicomAttribute[@keyword="ImageType"]/Value)') == "3"
    assert evaluate(ct, '//DicomAttribute[@keyword="Rows"]/Value * 2') == "256"
    assert evaluate(ct, "1 div 4") == "0.25"
    assert evaluate(ct, "1 div 3") == "0.3333333333333333"
    assert evaluate(ct, "0.0000001") == "0.0000001"  # no exponent in XPath 1.0
    assert evaluate(ct, "-0") == "0"
    assert evaluate(ct, "1 div 0") == "Infinity"
    assert evaluate(ct, "-1 div 0") == "-Infinity"
    assert evaluate(ct, "0 div 0") == "NaN"
    assert evaluate(ct, 'boolean(//DicomAttribute[@keyword="Modality"])') == "true"
    assert evaluate(ct, "1 = 2") == "false"
    assert evaluate(ct, 'concat("a", "b")') == "ab"
    assert evaluate(ct, 'string(//DicomAttribute[@keyword="Nothing"])') == ""  # a string, not a node-set


def test_attributes_and_text_nodes_give_their_values(small):
    assert evaluate(small, '//DicomAttribute[@keyword="Modality"]/@tag') == "00080060"
    assert evaluate(small, '//DicomAttribute[@keyword="ImageType"]/Value/text()') == "ORIGINALPRIMARY"
    assert evaluate(small, '//Alphabetic/FamilyName/text()') == "Doe"
    assert evaluate(small, '//DicomAttribute[@keyword="CodeMeaning"]/Value/text()') == "Brain & <spine>"
    escaped = evaluate(small, '//DicomAttribute[@keyword="CodeMeaning"]/Value')
    assert escaped.endswith(">Brain &amp; &lt;spine&gt;</Value>")
    assert fragments(escaped)[0].text == "Brain & <spine>"


def test_no_match_is_none(ct):
    assert evaluate(ct, '//DicomAttribute[@keyword="NoSuchThing"]') is None
    assert evaluate(ct, "/dcm:NativeDicomModel/DicomAttribute") is None  # mixed spellings: see the module doc
    assert evaluate(ct, '//DicomAttribute[@keyword="AccessionNumber"]/Value') is None  # empty attribute


def test_relative_expressions_start_at_the_model(small):
    assert evaluate(small, 'DicomAttribute[1]/@keyword') == "ImageType"
    assert evaluate(small, 'dcm:DicomAttribute[@keyword="Rows"]/dcm:Value/text()') == "64"


def test_string_literals_that_look_prefixed_do_not_switch_namespaces(small):
    assert evaluate(small, '//DicomAttribute[Value="dcm:x" or @keyword="Rows"]/@tag') == "00280010"


@pytest.mark.parametrize("expression", [
    "//DicomAttribute[",
    "",
    "   ",
    "$patient",
    "document('file:///etc/passwd')",
    "doc('file:///etc/passwd')",
    "unparsed-text('/etc/passwd')",
    "system-property('xsl:version')",
    "re:test('a', 'a')",
    "exsl:node-set(1)",
    "str:tokenize('a b')",
    "foo:bar",
    "count(1)",
    "//DicomAttribute/@tag/..[",
])
def test_invalid_expressions_raise_invalid_xpath(ct, expression):
    with pytest.raises(InvalidXPath) as raised:
        evaluate(ct, expression)
    assert isinstance(raised.value, ValueError)


def test_the_message_quotes_at_most_200_characters_of_the_expression(ct):
    with pytest.raises(InvalidXPath) as raised:
        evaluate(ct, "//DicomAttribute[" + "x" * 1000)
    assert "x" * 183 in str(raised.value) and "x" * 300 not in str(raised.value)


def test_expressions_over_the_length_limit_are_refused_unread(ct):
    query = "//DicomAttribute[@keyword='Rows']/@tag"
    at_limit = query + " " * (MAX_EXPRESSION_LENGTH - len(query))
    assert len(at_limit) == MAX_EXPRESSION_LENGTH
    assert evaluate(ct, at_limit) == "00280010"
    with pytest.raises(InvalidXPath, match="longer than"):
        evaluate(ct, at_limit + " ")


def test_deep_nesting_is_either_evaluated_or_refused_never_a_crash(ct):
    depth = (MAX_EXPRESSION_LENGTH - 1) // 2
    expression = "(" * depth + "1" + ")" * depth
    try:
        assert evaluate(ct, expression) == "1"
    except InvalidXPath:
        pass


def test_results_over_the_cap_raise_result_too_large(ct):
    whole = evaluate(ct, "/")
    size = len(whole.encode("utf-8"))
    assert ModelXPath(ct, max_result_bytes=size).evaluate("/") == whole  # at the cap: fine
    with pytest.raises(ResultTooLarge):
        ModelXPath(ct, max_result_bytes=size - 1).evaluate("/")
    with pytest.raises(ResultTooLarge):
        evaluate(ct, "//DicomAttribute", max_result_bytes=1000)
    with pytest.raises(ResultTooLarge):
        evaluate(ct, "string(/)", max_result_bytes=10)  # strings count too
    assert evaluate(ct, "//Value/text()", max_result_bytes=1 << 20)  # under it
    assert issubclass(ResultTooLarge, ValueError)


def test_a_query_object_serves_many_expressions_and_leaves_the_model_alone(ct):
    before = etree.tostring(ct)
    query = ModelXPath(ct)
    answers = [query.evaluate(e) for e in ['//DicomAttribute[@keyword="Modality"]/Value/text()',
                                          '//dcm:DicomAttribute[@keyword="Rows"]/dcm:Value/text()',
                                          '//DicomAttribute[@keyword="Columns"]/Value/text()']]
    assert answers == ["CT", "128", "128"]
    assert etree.tostring(ct) == before
    assert ct.nsmap == {None: NATIVE_DICOM_NAMESPACE}


def test_whole_model_of_a_copy_is_the_same(ct):
    assert evaluate(copy.deepcopy(ct), "/") == evaluate(ct, "/")


# ---------------------------------------------------------------------------------------------------------
# The deadline: evaluation in a child process


CUBIC = "//*[count(//*[count(//*[. = 'x']) > 0]) > 0]"  # about a minute in-process on CT_small


def test_a_deadline_stops_an_expression_that_would_run_for_a_minute(ct):
    started = time.monotonic()
    with pytest.raises(XPathTimeout):
        evaluate_with_deadline(ct, CUBIC, deadline_seconds=0.5)
    assert time.monotonic() - started < 5
    assert not [child for child in multiprocessing.active_children() if child.is_alive()]


@pytest.mark.parametrize("expression", [
    '/NativeDicomModel/DicomAttribute[@keyword="Modality"]/Value',
    '//dcm:DicomAttribute[@vr="SQ"]',
    "/",
    "count(//Value)",
    '//DicomAttribute[@keyword="NoSuchThing"]',
])
def test_the_child_answers_as_evaluate_does(ct, expression):
    assert evaluate_with_deadline(ct, expression) == evaluate(ct, expression)


def test_the_child_reports_errors_as_evaluate_does(ct):
    with pytest.raises(InvalidXPath, match="Unregistered function"):
        evaluate_with_deadline(ct, "document('file:///etc/passwd')")
    with pytest.raises(ResultTooLarge):
        evaluate_with_deadline(ct, "/", max_result_bytes=100)
    with pytest.raises(InvalidXPath, match="longer than"):
        evaluate_with_deadline(ct, " " * (MAX_EXPRESSION_LENGTH + 1))
