"""DICOM Part 10 reading and writing shared by the operations and the de-identification core.

Pure data handling: no HTTP, no SOAP.
"""
