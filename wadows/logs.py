"""Logging for the command line and the server: our lines carry counts and codes, never patient data.

pydicom logs and warns with the offending value in the text ("Invalid value for VR PN: '...'"), so its logger
and its warnings are silenced here: a malformed name in a stored file must not end up in a log file.
"""

from __future__ import annotations

import logging
import sys
import warnings


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # spyne logs request fragments with its errors; our endpoint logs every fault itself, without values.
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    logging.getLogger("pydicom").disabled = True
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")

    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
