"""The metadata operation's XPath filter: XPath 1.0 (lxml/libxml2) over a Native DICOM Model.

Names: the PS3.19 namespace is bound to the prefix `dcm`, so `/dcm:NativeDicomModel/dcm:DicomAttribute`
works as XPath has it. Callers who write no prefix at all (`/NativeDicomModel/DicomAttribute[@keyword=
"Modality"]/Value`, as the examples in the standard do) get the same answer: an expression that uses the
`dcm` prefix runs on the model itself, any other on a copy of it without namespace, and element results
are taken back to the model by position. An expression that mixes both spellings matches nothing on the
side it does not run on.

Results, as the text of a `wado:XPathResponse` (an xs:string):
- a node-set: the XML of each node in document order, concatenated. An element is serialized with the
  model's namespace declared on it; an attribute or a text node gives its value; the root node ("/") gives
  the whole model. An empty node-set gives None (the response element is then empty).
- a string, number or boolean: its XPath string value (numbers as XPath 1.0 prints them: 2, not 2.0;
  NaN, Infinity; no exponent).

Limits: an expression longer than MAX_EXPRESSION_LENGTH is refused; there are no variables, no extension
functions (lxml's EXSLT regular expressions are off) and no function that reads another document (XPath
1.0 has none; document() belongs to XSLT). A result larger than `max_result_bytes` (UTF-8) raises
ResultTooLarge as soon as it gets there, before the rest is serialized. Evaluation time is not bounded
here: the expression length keeps its nesting small, a model's size is bounded by its object.
"""

from __future__ import annotations

import copy
import math
import re
from decimal import Decimal

from lxml import etree

from wadows.dicom.native_model import NATIVE_DICOM_NAMESPACE

__all__ = ["DCM_PREFIX", "DEFAULT_MAX_RESULT_BYTES", "MAX_EXPRESSION_LENGTH", "InvalidXPath", "ModelXPath",
           "ResultTooLarge", "evaluate"]

DCM_PREFIX = "dcm"
MAX_EXPRESSION_LENGTH = 4096  # characters
DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024
_QUOTED_LENGTH = 200  # of the expression, in error messages

_STRING_LITERAL = re.compile(r'"[^"]*"|\'[^\']*\'')
_DCM_NAME = re.compile(rf"(?<![\w.\-:]){DCM_PREFIX}:(?![:])")


class InvalidXPath(ValueError):
    """The expression is not an XPath 1.0 expression we evaluate (syntax, unknown function or prefix,
    variable, too long)."""


class ResultTooLarge(ValueError):
    """The serialized result would be larger than the limit."""


def evaluate(model: etree._Element, expression: str, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> str | None:
    """The text of `expression` evaluated on `model` (a NativeDicomModel element), None for no match."""
    return ModelXPath(model, max_result_bytes).evaluate(expression)


class ModelXPath:
    """XPath over one model; keeps the namespace-free copy for the next expression on the same model.

    `model` is the root of its own document (as native_model() makes it): "/" is its document."""

    def __init__(self, model: etree._Element, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES):
        self.model = model
        self.max_result_bytes = max_result_bytes
        self._plain: etree._Element | None = None
        self._to_model: dict[etree._Element, etree._Element] | None = None

    def evaluate(self, expression: str) -> str | None:
        namespaced = _names_dcm_prefix(_checked(expression))
        context = self.model if namespaced else self._plain_copy()
        nodes_or_value = _run(context, expression)
        if not isinstance(nodes_or_value, list):
            return _serialized([_string_value(nodes_or_value)], self.max_result_bytes)
        pieces = []
        if _selects_the_root_node(context, expression):
            pieces.append(self.model)  # libxml2 returns the document node, lxml drops it: put the model back
        pieces += [node if namespaced or not isinstance(node, etree._Element) else self._in_model(node)
                   for node in nodes_or_value]
        if not pieces:
            return None
        return _serialized(pieces, self.max_result_bytes)

    def _plain_copy(self) -> etree._Element:
        """The model without namespace (built once)."""
        if self._plain is None:
            plain = copy.deepcopy(self.model)
            for element in plain.iter(etree.Element):
                element.tag = etree.QName(element).localname
            etree.cleanup_namespaces(plain)
            self._plain = plain
        return self._plain

    def _in_model(self, element: etree._Element) -> etree._Element:
        """The model's element at the place `element` has in the namespace-free copy."""
        if self._to_model is None:
            self._to_model = dict(zip(self._plain_copy().iter(), self.model.iter()))
        return self._to_model[element]


def _checked(expression: str) -> str:
    if not isinstance(expression, str):
        raise InvalidXPath("the XPath expression is not text")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidXPath(f"the XPath expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if not expression.strip():
        raise InvalidXPath("the XPath expression is empty")
    return expression


def _names_dcm_prefix(expression: str) -> bool:
    """Whether `expression` names something with the dcm prefix (string literals do not count)."""
    return bool(_DCM_NAME.search(_STRING_LITERAL.sub('""', expression)))


def _compiled(expression: str) -> etree.XPath:
    try:
        # regexp=False: no EXSLT functions; no extensions and no variables are passed in.
        return etree.XPath(expression, namespaces={DCM_PREFIX: NATIVE_DICOM_NAMESPACE}, regexp=False,
                           smart_strings=False)
    except etree.XPathError as error:
        raise _invalid(expression, error) from None


def _run(context: etree._Element, expression: str):
    try:
        return _compiled(expression)(context)
    except etree.XPathError as error:
        raise _invalid(expression, error) from None


def _invalid(expression: str, error: Exception) -> InvalidXPath:
    quoted = expression if len(expression) <= _QUOTED_LENGTH else expression[:_QUOTED_LENGTH] + "..."
    return InvalidXPath(f"invalid XPath expression {quoted!r}: {error}")


def _selects_the_root_node(context: etree._Element, expression: str) -> bool:
    """Whether the node-set of `expression` holds the root (document) node, which lxml leaves out of it.

    Only the root node has no parent: count the members of the node-set without one."""
    return _run(context, f"count(({expression})[not(parent::node())])") > 0


def _string_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


def _number_text(number: float) -> str:
    """A number as XPath 1.0 string() writes it (section 4.2): no exponent, no trailing .0."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == int(number):
        return str(int(number))  # also -0 -> "0"
    return format(Decimal(repr(number)), "f")


def _serialized(nodes: list, max_result_bytes: int) -> str:
    """The nodes as text, in order, stopping with ResultTooLarge once past `max_result_bytes`."""
    parts: list[str] = []
    size = 0
    for node in nodes:
        if isinstance(node, etree._Element):
            text = etree.tostring(node, encoding="unicode", with_tail=False)
        elif isinstance(node, tuple):  # a namespace node: (prefix, uri)
            text = node[1]
        else:  # an attribute value or a text node
            text = str(node)
        size += len(text.encode("utf-8"))
        if size > max_result_bytes:
            raise ResultTooLarge(f"the XPath result is larger than {max_result_bytes} bytes")
        parts.append(text)
    return "".join(parts)
