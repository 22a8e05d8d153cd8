"""DICOM Part 10 reading and writing shared by the operations and the de-identification core.

Pure data handling: no HTTP, no SOAP.

- part10: open_source() parses a stored object up to Pixel Data; encode() streams the object we return.
- transcode: which transfer syntax an object goes out in (can_encode, choose_transfer_syntax, explain_refusal).
- syntaxes: facts about transfer syntaxes and the pixel codecs installed here.
- pixel_span, pixel_copy, pixel_recode, header_writer: the parts encode() and open_source() are made of.
"""
