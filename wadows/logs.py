"""Logging for the command line and the server: our lines carry counts and codes, never patient data.

pydicom logs and warns with the offending value in the text ("Invalid value for VR PN: '...'"), so its logger
and its warnings are silenced here: a malformed name in a stored file must not end up in a log file.
"""

from __future__ import annotations

import logging
import sys
import warnings


QUIET_LIBRARIES = ("spyne", "pydicom")


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # spyne logs request fragments and exception texts with its errors (we log every fault ourselves), and
    # pydicom quotes values. Their child loggers (spyne.application.server, pydicom.pixels...) propagate to
    # these two, which keep the records to themselves.
    for name in QUIET_LIBRARIES:
        library = logging.getLogger(name)
        library.handlers[:] = [logging.NullHandler()]
        library.propagate = False
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")

    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def where(exc: BaseException) -> str:
    """Where an exception was raised (file:line, innermost frame): enough to debug, free of data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "unknown place"
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
