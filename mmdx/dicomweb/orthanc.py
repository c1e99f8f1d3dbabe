"""A throwaway Orthanc PACS with its DICOMweb plugin, for tests and benchmarks.

:class:`TemporaryOrthanc` runs Debian's ``Orthanc`` (package ``orthanc``) with the DICOMweb plugin (package
``orthanc-dicomweb``, whose ``libOrthancDicomWeb.so`` is found with ``dpkg -L``) from a JSON configuration it
writes into a temporary folder, which also holds the server's storage. The server listens on 127.0.0.1
only, on a free port, with HTTP basic authentication (a random password unless one is given), its DICOM
network listener off. As root it runs as Debian's unprivileged ``orthanc`` system user; otherwise as the
calling user. (Debian 12's Orthanc 1.10.1 crashes on its first HTTPS request, so it is run on plain HTTP and
the TLS options of mmdx are tested against a small Python HTTPS server instead.) :meth:`TemporaryOrthanc.stop`
ends the process and removes the folder.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from mmdx.errors import MmdxError

ORTHANC_PACKAGES = "orthanc orthanc-dicomweb"
PLUGIN_NAME = "libOrthancDicomWeb.so"
_PLUGIN_FALLBACKS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")


class OrthancUnavailable(MmdxError):
    """Orthanc or its DICOMweb plugin is not installed, or the server did not start."""


def find_orthanc() -> Path | None:
    """The ``Orthanc`` executable, or ``None``."""
    found = shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).is_file()), None
    )
    return Path(found) if found else None


def find_dicomweb_plugin() -> Path | None:
    """``libOrthancDicomWeb.so`` as installed by Debian's ``orthanc-dicomweb``, or ``None``."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        listing = []
    candidates = [Path(line) for line in listing if Path(line).name == PLUGIN_NAME]
    candidates += [Path(folder) / PLUGIN_NAME for folder in _PLUGIN_FALLBACKS]
    return next((p for p in candidates if p.is_file()), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryOrthanc:
    """A private Orthanc server; use as a context manager or ``start``/``stop``.

    Args:
        username, password: the one account of the server (HTTP basic authentication); a random
            password when ``None``.
    """

    def __init__(self, username: str = "mmdx", password: str | None = None) -> None:
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.url: str | None = None
        self.root: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log = None

    def __enter__(self) -> TemporaryOrthanc:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb service root (``.../dicom-web``)."""
        if self.url is None:
            raise RuntimeError("the server is not started")
        return f"{self.url}/dicom-web"

    @property
    def log_file(self) -> Path | None:
        return None if self.root is None else self.root / "orthanc.log"

    def start(self, timeout_s: float = 60) -> str:
        """Start the server and wait until it answers; returns its base URL (``http(s)://127.0.0.1:PORT``)."""
        if self.url is not None:
            return self.url
        executable = find_orthanc()
        plugin = find_dicomweb_plugin()
        missing = [n for n, p in (("orthanc", executable), ("orthanc-dicomweb", plugin)) if p is None]
        if missing:
            raise OrthancUnavailable(
                f"{' and '.join(missing)} not installed; install with: apt-get install {ORTHANC_PACKAGES}"
            )
        run_as = self._unprivileged_user()
        base = Path(tempfile.gettempdir())
        if run_as is not None and not _others_may_traverse(base):
            base = Path("/tmp")  # the server's user must reach its folder
        self.root = Path(tempfile.mkdtemp(prefix="mmdx-orthanc-", dir=base))
        atexit.register(self.stop)
        storage = self.root / "storage"
        storage.mkdir()
        port = _free_port()
        config: dict = {
            "Name": "mmdx-test-pacs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": port,
            "RemoteAccessAllowed": False,  # loopback only
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "DicomServerEnabled": False,
            "HttpCompressionEnabled": False,
            "StableAge": 1,
            "Plugins": [str(plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        config_file = self.root / "orthanc.json"
        config_file.write_text(json.dumps(config, indent=1), encoding="utf-8")
        if run_as is not None:
            user = pwd.getpwnam(run_as)
            for path in (self.root, storage, *self.root.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            command = ["runuser", "-u", run_as, "--", str(executable), str(config_file)]
        else:
            command = [str(executable), str(config_file)]
        self._log = (self.root / "orthanc.log").open("wb")
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{port}"
        try:
            self._wait(timeout_s)
        except OrthancUnavailable:
            self.stop()
            raise
        return self.url

    def _unprivileged_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("orthanc")
        except KeyError:
            raise OrthancUnavailable(
                "running as root and Debian's 'orthanc' system user is missing; reinstall the orthanc package"
            ) from None
        return "orthanc" if shutil.which("runuser") else None

    def _wait(self, timeout_s: float) -> None:
        import requests

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise OrthancUnavailable(
                    f"Orthanc exited at start (status {self._process.returncode}): {self._tail()}"
                )
            try:
                answer = requests.get(f"{self.url}/system", auth=(self.username, self.password), timeout=2)
                if answer.ok:
                    return
            except requests.exceptions.RequestException:
                pass
            time.sleep(0.1)
        raise OrthancUnavailable(f"Orthanc did not answer within {timeout_s:g} s: {self._tail()}")

    def _tail(self) -> str:
        path = self.log_file
        if path is None or not path.is_file():
            return "(no log)"
        return " | ".join(path.read_text(errors="replace").splitlines()[-5:])

    def upload(self, paths: Iterable[Path]) -> int:
        """Store DICOM files through Orthanc's own REST API (not DICOMweb); returns how many were stored."""
        import requests

        count = 0
        with requests.Session() as session:
            session.auth = (self.username, self.password)
            for path in paths:
                answer = session.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=60)
                answer.raise_for_status()
                count += 1
        return count

    def delete_everything(self) -> None:
        """Remove every patient (and so every study) from the server."""
        import requests

        auth = (self.username, self.password)
        for patient in requests.get(f"{self.url}/patients", auth=auth, timeout=30).json():
            requests.delete(f"{self.url}/patients/{patient}", auth=auth, timeout=30).raise_for_status()

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                # the server runs in a session of its own (under runuser when root): end that group
                group = os.getpgid(self._process.pid)
                os.killpg(group, signal.SIGTERM)
                try:
                    self._process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(group, signal.SIGKILL)
                    self._process.wait(timeout=10)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        self.url = None


def _others_may_traverse(folder: Path) -> bool:
    folder = folder.resolve()
    return all(p.stat().st_mode & 0o001 for p in (folder, *folder.parents))
