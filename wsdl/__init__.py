"""The WADO-WS contract (WSDL + XSDs), shipped as package data of ``wadows.contract``.

This file only makes the directory an importable package, so that
``importlib.resources.files("wadows.contract")`` finds it in editable and wheel installs alike.
"""
