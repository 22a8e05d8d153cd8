"""Status and error code strings of RAD-69 / ITI-43 / PS3.18 §6.4.4 (facts, not wording)."""

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"

SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

# IHE ITI TF-3 Table 4.2.4.1-2 (the codes valid for Retrieve Document Set)
DOCUMENT_UNIQUE_ID_ERROR = "XDSDocumentUniqueIdError"
UNKNOWN_REPOSITORY = "XDSUnknownRepositoryId"
UNKNOWN_COMMUNITY = "XDSUnknownCommunity"
REPOSITORY_BUSY = "XDSRepositoryBusy"
REPOSITORY_ERROR = "XDSRepositoryError"
# What the NIST XDS-I tests (ids_4812) expect for empty UIDs / transfer syntax lists.
REQUEST_ERROR = "XDSIRequestError"

# PS3.18 §6.4.4
UNABLE_TO_ANONYMIZE = "urn:dicom:wado:0001"
ANONYMIZE_NOT_SUPPORTED = "urn:dicom:wado:0002"
TOO_LARGE = "urn:dicom:wado:0005"
FORMAT_NOT_SUPPORTED = "urn:dicom:wado:0006"
FORMAT_NOT_POSSIBLE = "urn:dicom:wado:0007"
SINGLE_FRAME_NOT_AVAILABLE = "urn:dicom:wado:0008"
INVALID_PARAMETER = "urn:dicom:wado:0012"
UNSUPPORTED_PARAMETER = "urn:dicom:wado:0013"
PROCESSING_FAILURE = "urn:dicom:wado:0014"
FRAME_OUT_OF_RANGE = "urn:dicom:wado:0018"
PRESENTATION_UID_UNKNOWN = "urn:dicom:wado:0019"
PRESENTATION_SERIES_UID_UNKNOWN = "urn:dicom:wado:0020"
