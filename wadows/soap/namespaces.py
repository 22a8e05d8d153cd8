"""XML namespaces on the wire (PS3.18 §6.4, IHE ITI TF-2 Appendix V)."""

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
XML = "http://www.w3.org/XML/1998/namespace"

RAD = "urn:ihe:rad:xdsi-b:2009"      # iherad: the RAD-69 request
XDS = "urn:ihe:iti:xds-b:2007"       # ihe: DocumentRequest, RetrieveDocumentSetResponse
WADO = "urn:dicom:wado:ws:2011"      # wado: Anonymize, FrameNumber, the rendered and information operations
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"

WSA_ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
WSA_NONE = "http://www.w3.org/2005/08/addressing/none"
WSA_FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"

# Prefixes used in our responses (readable envelopes for people reading captures).
NSMAP = {"env": SOAP12, "wsa": WSA, "xop": XOP, "ihe": XDS, "iherad": RAD, "wado": WADO, "rs": RS}
