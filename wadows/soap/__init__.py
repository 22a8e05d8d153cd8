"""Transport: SOAP 1.2 envelopes, MTOM/XOP in and out, WS-Addressing, faults (spyne underneath)."""
