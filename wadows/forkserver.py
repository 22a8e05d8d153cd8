"""The one multiprocessing fork server of a wadows process, shared by everything that starts children.

A fork server is started once, by exec, without the server's threads; children forked from it start in
milliseconds with what it preloaded. Its preload list is fixed when it starts, so it lives here, in one place:
whichever user starts it first gets every module the others need too.
"""

from __future__ import annotations

import multiprocessing

# Not "__main__": the server's own entry point must not run again in a child.
_PRELOAD = ["lxml.etree", "wadows.dicom.native_xpath", "wadows.wado.prepare_ahead"]


def context() -> multiprocessing.context.BaseContext:
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(_PRELOAD)
    return forkserver
