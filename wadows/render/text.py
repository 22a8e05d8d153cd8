"""render_text: a Structured Report as text/plain or text/html, in the requested charset.

Headings come from container concept names, each content item reads "concept: value", nested items are
indented (plain) or nested lists (HTML). Patient identity is shown only with the "patient" annotation,
like on images. Other objects (encapsulated PDF or CDA, waveforms, ...) are not text: RenderError.
"""

from __future__ import annotations

import codecs
import html
import re

from pydicom.dataset import Dataset

from wadows.render import media, values
from wadows.render.request import RenderedValues, Rendered, RenderError, RenderFailure, RenderRequest
from wadows.render.sr_content import ContentNode, content_tree

DEFAULT_CHARSET = "utf-8"
_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}")  # IANA names; nothing that could break a header
_SHOWN_RELATIONSHIPS = {"INFERRED FROM": "inferred from", "SELECTED FROM": "selected from"}


def render_text(dataset: Dataset, request: RenderRequest) -> Rendered:
    request.check()
    media_type = media.checked(request.media_type, media.TEXT_MEDIA_TYPES)
    if not media.is_structured_text(dataset):
        raise RenderError(RenderFailure.NOT_RENDERABLE, "only Structured Reports render as text")
    charset = (request.charset or DEFAULT_CHARSET).strip()
    codec = _codec(charset)
    tree = content_tree(dataset)
    facts = _document_facts(dataset, request.annotation)
    text = _html(tree, facts, charset) if media_type == media.HTML else _plain(tree, facts)
    try:
        data = text.encode(codec)
    except UnicodeEncodeError:  # the message would quote the character: name the charset only
        raise RenderError(RenderFailure.CHARSET_CANNOT_ENCODE, f"the report cannot be encoded in {charset}") from None
    used = RenderedValues(annotation=request.annotation & {"patient"}, charset=charset)
    return Rendered(data, f"{media_type}; charset={charset}", used)


def text_charset(charset: str) -> str:
    """The codec name of a charset that encodes text (not rot13, base64...); RenderError otherwise."""
    return _codec(charset)


def _codec(charset: str) -> str:
    if not _CHARSET_NAME.fullmatch(charset):
        raise RenderError(RenderFailure.UNSUPPORTED_CHARSET, "the charset name is malformed")
    try:
        info = codecs.lookup(charset)
    except LookupError:
        raise RenderError(RenderFailure.UNSUPPORTED_CHARSET, f"unknown charset {charset}") from None
    if not getattr(info, "_is_text_encoding", True):  # rot13, base64, ... are codecs, not charsets
        raise RenderError(RenderFailure.UNSUPPORTED_CHARSET, f"unknown charset {charset}")
    return info.name


def _document_facts(dataset: Dataset, annotation: frozenset[str]) -> list[tuple[str, str]]:
    facts = []
    if "patient" in annotation:
        facts += [
            ("Patient", values.person_name(dataset.get("PatientName"))),
            ("Patient ID", values.plain(dataset.get("PatientID"))),
            ("Born", values.date(dataset.get("PatientBirthDate"))),
            ("Sex", values.plain(dataset.get("PatientSex"))),
        ]
    facts += [
        ("Completion", values.plain(dataset.get("CompletionFlag"))),
        ("Verification", values.plain(dataset.get("VerificationFlag"))),
    ]
    return [(label, value) for label, value in facts if value]


def _title(tree: ContentNode) -> str:
    return tree.concept or "Structured Report"


def _is_heading(node: ContentNode) -> bool:
    return node.value_type == "CONTAINER" and not node.value


def _plain(tree: ContentNode, facts: list[tuple[str, str]]) -> str:
    title = _title(tree)
    lines = [title, "=" * len(title)]
    lines += [f"{label}: {value}" for label, value in facts]
    lines.append("")
    for node in tree.children:
        _plain_node(node, 0, lines)
    return "\n".join(lines) + "\n"


def _plain_node(node: ContentNode, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    prefix = f"({_SHOWN_RELATIONSHIPS[node.relationship]}) " if node.relationship in _SHOWN_RELATIONSHIPS else ""
    if _is_heading(node):
        lines.append(f"{indent}{prefix}{node.concept or '(section)'}")
    else:
        first, *rest = node.value.split("\n") if node.value else [""]
        label = f"{node.concept}: " if node.concept and first else node.concept
        lines.append(f"{indent}{prefix}{label}{first}".rstrip())
        lines += [f"{indent}  {line}".rstrip() for line in rest]
    for child in node.children:
        _plain_node(child, depth + 1, lines)


def _html(tree: ContentNode, facts: list[tuple[str, str]], charset: str) -> str:
    title = html.escape(_title(tree))
    parts = [
        "<!DOCTYPE html>",
        "<html>",
        f'<head><meta charset="{html.escape(charset)}"><title>{title}</title></head>',
        "<body>",
        f"<h1>{title}</h1>",
    ]
    if facts:
        parts.append("<dl>")
        parts += [f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>" for label, value in facts]
        parts.append("</dl>")
    parts += _html_nodes(tree.children, 2)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _html_nodes(nodes: list[ContentNode], level: int) -> list[str]:
    """Containers become sections with a heading; runs of other items become a list."""
    parts: list[str] = []
    items: list[str] = []
    for node in nodes:
        if _is_heading(node):
            if items:
                parts += ["<ul>", *items, "</ul>"]
                items = []
            heading = f"h{min(level, 6)}"
            parts.append(f"<section><{heading}>{_html_label(node) or '(section)'}</{heading}>")
            parts += _html_nodes(node.children, level + 1)
            parts.append("</section>")
        else:
            nested = "\n".join(_html_nodes(node.children, level + 1))
            items.append(f"<li>{_html_label(node)}{_html_value(node)}{nested}</li>")
    if items:
        parts += ["<ul>", *items, "</ul>"]
    return parts


def _html_label(node: ContentNode) -> str:
    relationship = _SHOWN_RELATIONSHIPS.get(node.relationship)
    prefix = f"<i>{relationship}</i> " if relationship else ""
    if _is_heading(node):
        return prefix + html.escape(node.concept)
    return prefix + (f"<b>{html.escape(node.concept)}</b>" + (": " if node.value else "") if node.concept else "")


def _html_value(node: ContentNode) -> str:
    return "<br>\n".join(html.escape(line) for line in node.value.split("\n")) if node.value else ""
