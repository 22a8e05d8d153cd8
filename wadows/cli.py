"""The `wadows` command: serve, index, sample, retrieve."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wadows import __version__, logs
from wadows.config import ConfigError
from wadows.store.index import IndexUnusable

DEFAULT_DATA_DIR = Path(".wadows")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure()
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"wadows: configuration error: {exc}", file=sys.stderr)
        return 2
    except IndexUnusable as exc:
        print(f"wadows: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wadows", description="WADO-WS server with anonymization on request")
    parser.add_argument("--version", action="version", version=f"wadows {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="index a folder of DICOM files and serve it over WADO-WS")
    serve.add_argument("--store", type=Path, help="folder of DICOM Part 10 files (indexed recursively)")
    serve.add_argument("--store-url", help="a PACS's DICOMweb root instead of a folder (QIDO-RS + WADO-RS)")
    serve.add_argument("--store-auth", help='credentials for the PACS: "user:password" or "Bearer TOKEN"')
    serve.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                       help="where the index, the repository UID and the key are kept (default .wadows)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--repository-uid", help="the RepositoryUniqueId this server answers to")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument("--unauthenticated", choices=["anonymized", "deny", "full"],
                       help="what callers without credentials get (default anonymized: de-identified objects only)")
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    serve.add_argument("--tls-client-ca", type=Path, help="accept client certificates issued by this CA (PEM)")
    serve.set_defaults(run=_serve)

    user = sub.add_parser("user", help="manage the users who may authenticate (HTTP Basic)")
    user_sub = user.add_subparsers(required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="add a user, or change a user's password")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = user_sub.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    for command in (add, remove):
        command.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
        command.add_argument("--config", type=Path, help="TOML configuration ([policy] users_file)")
    add.set_defaults(run=_user_add)
    remove.set_defaults(run=_user_remove)

    index = sub.add_parser("index", help="index (or re-index) a folder of DICOM files")
    index.add_argument("folder", type=Path)
    index.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    index.set_defaults(run=_index)

    sample = sub.add_parser("sample", help="write the bundled sample studies (fictional patients) to a folder")
    sample.add_argument("folder", type=Path)
    sample.set_defaults(run=_sample)

    deid = sub.add_parser("deidentify", help="de-identify a DICOM file or folder offline (same core as the server)")
    deid.add_argument("input", type=Path, help="a DICOM file or a folder (searched recursively)")
    deid.add_argument("output", type=Path, help="output folder: <study>/<series>/<sop>.dcm by the new UIDs")
    deid.add_argument("--config", type=Path, help="TOML configuration ([anonymize] profile, key, pixel rules)")
    deid.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                      help="where the generated key is kept when the configuration has none (default .wadows)")
    deid.add_argument("--report", type=Path, help="write a CSV of every input file and its outcome")
    deid.set_defaults(run=_deidentify)

    retrieve = sub.add_parser("retrieve", help="retrieve a study or series from a WADO-WS server (RAD-69)")
    retrieve.add_argument("--url", required=True, help="the server's endpoint, e.g. http://127.0.0.1:8080/wado-ws")
    retrieve.add_argument("--study", required=True, help="Study Instance UID")
    retrieve.add_argument("--series", help="Series Instance UID (default: every series of the study)")
    retrieve.add_argument("--anonymize", action="store_true", help="ask for de-identified objects")
    retrieve.add_argument("--transfer-syntax", action="append", dest="transfer_syntaxes",
                          help="accepted transfer syntax UID (repeatable; default: common ones)")
    retrieve.add_argument("--out", type=Path, required=True, help="folder to write the objects into")
    retrieve.add_argument("--user", help="authenticate with HTTP Basic as this user (password: WADOWS_PASSWORD "
                                         "or a prompt)")
    retrieve.add_argument("--ca", type=Path, help="CA bundle to verify an https server with")
    retrieve.set_defaults(run=_retrieve)
    return parser


def _serve(args) -> int:
    from wadows import config as cfg
    from wadows.runtime import build_app

    conf = cfg.load(args.config)
    if args.store_url:
        conf.sections["store"]["url"] = args.store_url
    if args.store_auth:
        conf.sections["store"]["auth"] = args.store_auth
    folder = args.store or (Path(conf.get("store", "folder")) if conf.get("store", "folder") else None)
    if conf.get("store", "url"):
        if folder is not None:
            print("wadows serve: give either a store folder or a store URL, not both", file=sys.stderr)
            return 2
    elif folder is None:
        print("wadows serve: --store DIR or --store-url URL is required (or [store] folder/url in the "
              "configuration)", file=sys.stderr)
        return 2
    elif not folder.is_dir():
        print(f"wadows serve: the store folder does not exist: {folder}", file=sys.stderr)
        return 2
    host = args.host or conf.get("server", "host")
    port = args.port or conf.get("server", "port")
    workers = args.workers or conf.get("server", "workers")
    if args.unauthenticated:
        conf.sections["policy"]["unauthenticated"] = args.unauthenticated
    tls = {name: str(value) for name, value in (("cert", args.tls_cert), ("key", args.tls_key),
                                                ("client_ca", args.tls_client_ca)) if value}
    conf.sections["tls"].update(tls)
    tls = {name: conf.get("tls", name) for name in ("cert", "key", "client_ca")}
    if bool(tls["cert"]) != bool(tls["key"]) or (tls["client_ca"] and not tls["cert"]):
        print("wadows serve: TLS needs both --tls-cert and --tls-key (and a certificate for --tls-client-ca)",
              file=sys.stderr)
        return 2
    app, summary = build_app(conf, folder, args.data_dir, args.repository_uid, show_progress=True)
    print(f"wadows: {summary}", file=sys.stderr)

    def ready():
        url = f"{'https' if tls['cert'] else 'http'}://{host}:{port}/wado-ws"
        print(f"wadows {__version__} serving {_instances(app.source.store)}\n"
              f"  endpoint        {url}\n"
              f"  WSDL            {url}?wsdl\n"
              f"  repository UID  {app.source.repository_uid}\n"
              f"  unauthenticated {app.policy.unauthenticated}\n"
              f"  try             .venv/bin/python examples/retrieve_study.py {url} STUDY_UID --anonymize",
              flush=True)

    from wadows.server import run

    run(app, host, port, workers, conf.get("server", "threads"), when_ready=ready, tls=tls,
        forwarded_allow_ips=conf.get("server", "forwarded_allow_ips"))
    return 0


def _instances(store) -> str:
    """What the start banner says of the store; a PACS that does not answer now does not stop the server (its
    documents get errors until it does: /health says so)."""
    from wadows.store.base import StoreError

    try:
        return f"{store.count()} instances"
    except StoreError as exc:  # its texts are written to be shown: no data, no URL
        return f"a store that cannot be counted now: {exc}"


def _users_path(args) -> Path:
    from wadows import config as cfg
    from wadows.runtime import users_file

    return users_file(cfg.load(args.config), args.data_dir)


def _user_add(args) -> int:
    from wadows.policy.users import add_user_command

    return add_user_command(_users_path(args), args.name, "stdin" if args.password_stdin else "prompt")


def _user_remove(args) -> int:
    from wadows.policy.users import remove_user_command

    return remove_user_command(_users_path(args), args.name)


def _index(args) -> int:
    from wadows.store.folder import index_folder

    if not args.folder.is_dir():
        print(f"wadows index: not a folder: {args.folder}", file=sys.stderr)
        return 2
    summary = index_folder(args.folder, args.data_dir, show_progress=True)
    print(summary)
    return 0


def _sample(args) -> int:
    from wadows.sample import build_sample, describe_sample

    paths = build_sample(args.folder)
    print(f"sample studies in {args.folder}: {len(paths)} files (fictional patients; see {args.folder}/README.txt)")
    studies = dict.fromkeys((row["study_uid"], row["study_description"]) for row in describe_sample(args.folder))
    for uid, description in studies:
        print(f"  {uid}  {description}")
    return 0


def _deidentify(args) -> int:
    from wadows import config as cfg
    from wadows.deidentify_files import deidentify_path
    from wadows.runtime import build_deidentifier

    if not args.input.exists():
        print(f"wadows deidentify: no such file or folder: {args.input}", file=sys.stderr)
        return 2
    deidentifier = build_deidentifier(cfg.load(args.config), args.data_dir)
    summary = deidentify_path(args.input, args.output, deidentifier, report=args.report)
    print("\n".join(summary.lines()))
    return 0 if not summary.refused and not summary.failed else 1


def _retrieve(args) -> int:
    import getpass
    import os

    import requests

    from wadows.client import retrieve_to_folder

    session = requests.Session()
    if args.user:
        session.auth = (args.user, os.environ.get("WADOWS_PASSWORD") or getpass.getpass(f"password for {args.user}: "))
    if args.ca:
        session.verify = str(args.ca)
    return retrieve_to_folder(args.url, args.study, args.series, args.anonymize, args.transfer_syntaxes, args.out,
                              session=session)


if __name__ == "__main__":
    sys.exit(main())
