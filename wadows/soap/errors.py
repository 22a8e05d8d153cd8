"""Problems with the message itself, answered with a SOAP fault (never with internals in the text)."""

from __future__ import annotations

ONLY_SOAP12 = "Only SOAP 1.2 envelopes are accepted (namespace http://www.w3.org/2003/05/soap-envelope)"


class SoapFault(Exception):
    """A fault to answer with. `code` is a SOAP 1.2 fault code local name (Sender, Receiver, VersionMismatch,
    MustUnderstand, DataEncodingUnknown); `subcode` an optional QName-ish local name for clients that branch on it."""

    http_status = 400

    def __init__(self, code: str, reason: str, subcode: str | None = None, http_status: int | None = None):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.subcode = subcode
        if http_status is not None:
            self.http_status = http_status


def sender(reason: str, subcode: str | None = None, http_status: int = 400) -> SoapFault:
    """The request cannot be read or is not acceptable (SOAP 1.2 HTTP binding: 400)."""
    return SoapFault("Sender", reason, subcode, http_status)


def receiver(reason: str = "The server could not process the request") -> SoapFault:
    """Our failure; the text never carries internals (SOAP 1.2 HTTP binding: 500)."""
    return SoapFault("Receiver", reason, None, 500)


class Soap11Message(SoapFault):
    """The request is a SOAP/1.1 envelope. Its sender reads only SOAP/1.1, so the answer is a SOAP/1.1
    VersionMismatch fault (SOAP 1.2 Part 1, Appendix A), not a SOAP 1.2 one."""

    def __init__(self):
        super().__init__("VersionMismatch", ONLY_SOAP12)
