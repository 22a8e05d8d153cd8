"""RetrieveImagingDocumentSetInformation (PS3.18 §6.4.3, the "metadata" operation): XPath over each object's
PS3.19 Native DICOM Model, built from the de-identified dataset when Anonymize asks for it."""

from __future__ import annotations

import logging
import time

from wadows.dicom import part10
from wadows.dicom.native_model import native_model
from wadows.dicom.native_xpath import InvalidXPath, ResultTooLarge, evaluate
from wadows.dicom.xpath_deadline import XPathTimeout, evaluate_with_deadline
from wadows.wado import codes
from wadows.wado.anonymize import AnonymizeChoice, deidentified, parse_anonymize
from wadows.wado.documents import authorize, each_document, find_document, prefetch, request_size_error
from wadows.wado.messages import DocumentRef, InformationRequest, InformationResult, Response
from wadows.wado.rejected import Rejected
from wadows.wado.source import ImagingDocumentSource

log = logging.getLogger(__name__)

MAX_XPATHS_PER_DOCUMENT = 32


def information(source: ImagingDocumentSource, request: InformationRequest, caller) -> Response:
    problem = request_size_error(source, len(request.documents))
    if problem is not None:
        return Response(errors=[problem], requested=[ref.document_uid for ref, _ in request.documents])
    prefetch(source, [ref for ref, _ in request.documents])
    budget = AnswerBudget(source.information_bytes, source.information_seconds)
    results, errors = each_document(request.documents, lambda item: _answer(source, *item, caller, budget),
                                    ref_of=lambda item: item[0])
    log.info("RetrieveImagingDocumentSetInformation: %d requested, %d answered, %d errors",
             len(request.documents), len(results), len(errors))
    return Response(documents=results, errors=errors, requested=[ref.document_uid for ref, _ in request.documents])


class AnswerBudget:
    """What one request's answers may cost: they are all held until the envelope is written, and every XPath
    but "/" takes a child process."""

    def __init__(self, max_bytes: int, max_seconds: float):
        self.bytes_left = max_bytes
        self.deadline = time.monotonic() + max_seconds

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise Rejected(codes.TOO_LARGE, "This request has used its share of XPath evaluation time; ask for "
                                            "fewer documents or expressions per request")

    def take(self, answer: str | None) -> None:
        self.bytes_left -= len(answer or "")
        if self.bytes_left < 0:
            raise Rejected(codes.TOO_LARGE, "The answers of this request exceed this server's limit; ask for "
                                            "fewer documents per request")


def _evaluate(model, expression: str, seconds: float) -> str | None:
    # A caller's expression can take minutes (nested predicates over the whole model) and libxml2 cannot be
    # interrupted: it runs in a child process with a deadline. The whole model needs no evaluation at all.
    if expression == "/":
        return evaluate(model, expression)
    return evaluate_with_deadline(model, expression, seconds)


def _answer(source: ImagingDocumentSource, ref: DocumentRef, expressions: tuple[str, ...],
            caller, budget: AnswerBudget) -> InformationResult:
    choice = parse_anonymize(ref.anonymize)
    authorize(caller, choice is AnonymizeChoice.YES)
    record, _ = find_document(source, ref)
    if not expressions:
        raise Rejected(codes.INVALID_PARAMETER, "An XPath is required (\"/\" asks for all the metadata)")
    if len(expressions) > MAX_XPATHS_PER_DOCUMENT:
        raise Rejected(codes.TOO_LARGE, f"At most {MAX_XPATHS_PER_DOCUMENT} XPath expressions per document")
    with source.store.open(record) as fp:
        try:
            instance = part10.open_source(fp)
        except part10.DicomReadError as exc:
            raise Rejected(codes.PROCESSING_FAILURE, f"The stored object cannot be read: {exc}")
    header = instance.dataset
    if choice is AnonymizeChoice.YES:
        header, _ = deidentified(source, header)
    pixel_vr = instance.pixel_data.vr if instance.pixel_data is not None else None
    model = native_model(header, pixel_data_vr=pixel_vr)  # Pixel Data as a BulkData reference
    answers = []
    for number, expression in enumerate(expressions, 1):
        budget.check_time()
        try:
            answers.append(_evaluate(model, expression, source.xpath_seconds))
            budget.take(answers[-1])
        except InvalidXPath:
            raise Rejected(codes.INVALID_PARAMETER, f"XPath number {number} is not a valid XPath 1.0 expression")
        except ResultTooLarge:
            raise Rejected(codes.TOO_LARGE, f"The result of XPath number {number} exceeds this server's limit")
        except XPathTimeout:
            raise Rejected(codes.TOO_LARGE, f"XPath number {number} ran longer than {source.xpath_seconds:g} s "
                                            "and was stopped")
    return InformationResult(ref=ref, repository_uid=ref.repository_uid or source.repository_uid, answers=answers)
