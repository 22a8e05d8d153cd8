"""wadows: a WADO-WS server (DICOM PS3.18 Web Services mode) whose headline is Anonymize."""

__version__ = "0.1.0"
