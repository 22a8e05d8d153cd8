"""Running the WSGI application under gunicorn (gthread workers: one process per core, threads for I/O)."""

from __future__ import annotations

import ssl
from typing import Callable

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def run(app, host: str, port: int, workers: int, threads: int, when_ready: Callable[[], None] | None = None,
        tls: dict[str, str] | None = None, forwarded_allow_ips: list[str] | str = ()) -> None:
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        # gthread, with our answers to requests gunicorn refuses itself (its own quote the request).
        "worker_class": "wadows.gunicorn_worker.WadowsWorker",
        "http_parser": "python",  # the request class our worker hooks is the Python parser's
        "threads": threads,
        # gthread workers heartbeat from their main thread, so long downloads are not cut by this timeout.
        "timeout": 120,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,  # an access log would write WADO-URI query strings, UIDs included; ours logs counts
        "errorlog": "-",
        "loglevel": "warning",
        "preload_app": True,
        "proc_name": "wadows",
        # Whose X-Forwarded-Proto is believed: a believed "https" lets Basic credentials in over plain HTTP, so
        # nobody's by default (gunicorn's own default trusts 127.0.0.1: any local program could claim TLS).
        "forwarded_allow_ips": ",".join(_address_list(forwarded_allow_ips)),
    }
    if when_ready is not None:
        options["when_ready"] = lambda server: when_ready()
    if tls and tls.get("cert"):
        options.update(certfile=tls["cert"], keyfile=tls["key"])
        if tls.get("client_ca"):
            # Optional: callers without a certificate still connect (and are anonymous or use Basic);
            # a certificate the CA did not issue fails the handshake.
            options.update(ca_certs=tls["client_ca"], cert_reqs=ssl.CERT_OPTIONAL)
    _Gunicorn(app, options).run()


def _address_list(addresses: list[str] | str) -> list[str]:
    if isinstance(addresses, str):  # from an environment variable: "10.0.0.5,10.0.0.6"
        addresses = addresses.split(",")
    return [address.strip() for address in addresses if address.strip()]
