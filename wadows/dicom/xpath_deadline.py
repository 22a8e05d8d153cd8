"""XPath evaluation with a time limit: the expression runs in a child process that is killed at the deadline.

libxml2 cannot be interrupted, and XPath 1.0 lets a short expression cost the model's size to the power
of its predicate nesting: `//*[count(//*[count(//*[.='x'])>0])>0]` runs for about a minute on the
555-node model of CT_small.dcm. A caller who may send any expression (the metadata operation's callers)
must not be able to hold a server thread that long, so its expressions run here.

The children are forked from a fork server (multiprocessing "forkserver"): started once, without the
server's threads, with lxml and this package already imported, so a child costs milliseconds (plus the
model's parsing: about 50 ms for a 40,000-node enhanced multi-frame header). The child gets the model as
XML bytes, answers through a pipe, and exits. As everywhere in multiprocessing, a child imports the
program's main module again unless it is a package's __main__ (`python -m wadows`): a main script must
keep its work under `if __name__ == "__main__"` (console scripts, gunicorn and pytest do).
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection

from lxml import etree

from wadows.dicom.native_xpath import DEFAULT_MAX_RESULT_BYTES, InvalidXPath, ModelXPath, ResultTooLarge

__all__ = ["DEFAULT_DEADLINE_SECONDS", "XPathTimeout", "evaluate_with_deadline"]

DEFAULT_DEADLINE_SECONDS = 5.0
_ERRORS = {"InvalidXPath": InvalidXPath, "ResultTooLarge": ResultTooLarge}


class XPathTimeout(ValueError):
    """The expression did not finish before the deadline (it was stopped)."""


def evaluate_with_deadline(
    model: etree._Element,
    expression: str,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> str | None:
    """native_xpath.evaluate(model, expression, max_result_bytes), stopped with XPathTimeout after
    `deadline_seconds`. Raises InvalidXPath and ResultTooLarge as evaluate() does."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_evaluate_in_child, daemon=True,
                            args=(sender, etree.tostring(model), expression, max_result_bytes))
    child.start()
    sender.close()  # ours: the child holds its own copy; EOF then means the child is gone
    try:
        if not receiver.poll(deadline_seconds):
            raise XPathTimeout(f"the XPath expression ran longer than {deadline_seconds:g} s and was stopped")
        try:
            outcome, payload = receiver.recv()
        except EOFError:
            raise RuntimeError("the XPath child process ended without an answer") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if outcome == "ok":
        return payload
    raise _ERRORS.get(outcome, RuntimeError)(payload)


def _context() -> multiprocessing.context.BaseContext:
    from wadows import forkserver  # the preload list (lxml, native_xpath) is kept there

    return forkserver.context()


def _evaluate_in_child(sender: Connection, model_xml: bytes, expression: str, max_result_bytes: int) -> None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        model = etree.fromstring(model_xml, parser)
        answer = ("ok", ModelXPath(model, max_result_bytes).evaluate(expression))
    except (InvalidXPath, ResultTooLarge) as error:
        answer = (type(error).__name__, str(error))
    except Exception as error:  # noqa: BLE001 - reported to the parent by type only
        answer = ("RuntimeError", f"XPath evaluation failed: {type(error).__name__}")
    sender.send(answer)
    sender.close()
