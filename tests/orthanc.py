"""A real Orthanc for the tests: the Debian binary with its DICOMweb plugin, on loopback ports of its own, with
its own storage, started and stopped (and started again) by the test that owns it.

Debian (bookworm) installs the server as /usr/sbin/Orthanc and the plugin as
/usr/share/orthanc/plugins/libOrthancDicomWeb.so (a link into /usr/lib/orthanc/); the packaged system service
(port 8042) is neither used nor needed: every Orthanc here gets fresh ports and a generated configuration.
"""

from __future__ import annotations

import glob
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

BINARY_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_PATTERNS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*", "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                   "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so*")
INSTALL_HINT = "install the Debian packages orthanc and orthanc-dicomweb (.ci/debian-packages does)"


class OrthancError(RuntimeError):
    pass


def find_binary() -> str:
    for candidate in (shutil.which("Orthanc"), *BINARY_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise OrthancError(f"no Orthanc binary: {INSTALL_HINT}")


def find_dicomweb_plugin() -> str:
    for pattern in PLUGIN_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise OrthancError(f"no Orthanc DICOMweb plugin: {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process. Its ports stay the same across stop() and start(), so a store keeps its URL."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = users or {}
        self.binary = find_binary()
        self.plugin = find_dicomweb_plugin()
        self.log_path = self.workdir / "orthanc.log"
        self.process: subprocess.Popen | None = None
        self._started_once = False
        self._choose_ports()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str] | None:
        return next(iter(self.users.items()), None)

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Orthanc:
        """Start and wait until its REST API and DICOMweb plugin answer. On the very first start, ports taken
        in the meantime by another process are replaced by fresh ones."""
        first = not self._started_once
        for _ in range(3 if first else 1):
            if self._launch(timeout):
                self._started_once = True
                return self
            if not first:
                break
            self._choose_ports()
        raise OrthancError(f"Orthanc did not start:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # Orthanc shuts down cleanly on SIGTERM in a fraction of a second
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ---- content -------------------------------------------------------------------------------

    def upload(self, source: Path | bytes) -> dict:
        """POST /instances; the file is streamed from disk. Returns Orthanc's answer (ID, Status...)."""
        if isinstance(source, (bytes, bytearray)):
            response = self.session().post(f"{self.url}/instances", data=bytes(source), timeout=60)
        else:
            with open(source, "rb") as fp:
                response = self.session().post(f"{self.url}/instances", data=fp, timeout=60)
        response.raise_for_status()
        answer = response.json()
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise OrthancError(f"Orthanc did not store an upload: {answer.get('Status')}")
        return answer

    def delete_instance(self, sop_instance_uid: str) -> None:
        """Delete an instance through the REST API (found by its SOP Instance UID)."""
        found = self.session().post(f"{self.url}/tools/lookup", data=sop_instance_uid, timeout=10)
        found.raise_for_status()
        ids = [item["ID"] for item in found.json() if item.get("Type") == "Instance"]
        if not ids:
            raise OrthancError("no such instance in Orthanc")
        for orthanc_id in ids:
            self.session().delete(f"{self.url}/instances/{orthanc_id}", timeout=10).raise_for_status()

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.auth
        return session

    # ---- internals -----------------------------------------------------------------------------

    def _choose_ports(self) -> None:
        self.http_port = free_port()

    def _launch(self, timeout: float) -> bool:
        config = self.workdir / "orthanc.json"
        config.write_text(json.dumps(self._configuration(), indent=2))
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen([self.binary, "--no-jobs", str(config)], cwd=self.workdir,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if self._ready():
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def _ready(self) -> bool:
        try:
            plugins = requests.get(f"{self.url}/plugins", auth=self.auth, timeout=1)
        except requests.RequestException:
            return False
        return plugins.status_code == 200 and "dicom-web" in plugins.json()

    def _configuration(self) -> dict:
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        return {
            "Name": "wadows-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "StorageCompression": False,  # what it stores is what it sends back
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,  # loopback only
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "DicomServerEnabled": False,  # DICOMweb needs no DICOM port: one port less to collide on
            "Plugins": [self.plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "HttpThreadsCount": 16,
            "SaveJobs": False,
            "OverwriteInstances": True,
            "StableAge": 3600,  # no "stable" events to process during a test
            "LoadPrivateDictionary": False,
        }
