"""DICOMweb connection settings: credentials from the environment or files only, never shown; typed errors
from a real Orthanc (refused credentials, unknown path, closed port, a TLS certificate that does not verify)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from mmdx.dicomweb.connection import (
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_USER,
    AuthKind,
    DicomwebError,
    DicomwebFailure,
    DicomwebSettings,
    Secret,
    add_connection_arguments,
    open_client,
    open_session,
    reporting_failures,
    settings_from_arguments,
)
from mmdx.errors import MmdxError

URL = "https://pacs.example.org/dicom-web"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    return parser.parse_args(list(argv))


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "environ", "auth", "user", "secret"),
    [
        ([], {}, AuthKind.NONE, None, None),
        ([], {ENV_USER: "ana", ENV_PASSWORD: "pw-env"}, AuthKind.BASIC, "ana", "pw-env"),
        (["--user", "bo"], {ENV_USER: "ana", ENV_PASSWORD: "pw-env"}, AuthKind.BASIC, "bo", "pw-env"),
        (
            ["--user", "bo", "--password-file", "{pw}"],
            {ENV_PASSWORD: "pw-env"},
            AuthKind.BASIC,
            "bo",
            "pw-file",
        ),
        ([], {ENV_TOKEN: "tok-env"}, AuthKind.BEARER, None, "tok-env"),
        (["--token-file", "{token}"], {}, AuthKind.BEARER, None, "tok-file"),
        (["--auth", "none"], {ENV_USER: "ana", ENV_PASSWORD: "pw-env"}, AuthKind.NONE, None, None),
    ],
)
def test_credentials_come_from_environment_or_file(tmp_path, argv, environ, auth, user, secret) -> None:
    files = {"pw": _write(tmp_path / "pw", "pw-file\n"), "token": _write(tmp_path / "token", "tok-file\n")}
    settings = settings_from_arguments(URL, _args(*(a.format(**files) for a in argv)), environ)
    assert settings.auth == auth
    assert settings.username == user
    assert (settings.secret.reveal() if settings.secret else None) == secret
    # nothing that prints the settings shows the secret
    if secret:
        assert secret not in repr(settings) + str(settings) + settings.describe() + repr(settings.secret)


@pytest.mark.parametrize(
    ("url", "argv", "environ", "message"),
    [
        ("https://ana:pw@pacs.example.org/dicom-web", [], {}, "carries credentials"),
        ("ftp://pacs.example.org", [], {}, "not an http"),
        (URL, ["--auth", "basic"], {}, "needs a user name"),
        (URL, ["--user", "ana"], {}, "needs a password"),
        (URL, ["--auth", "bearer"], {}, "needs a token"),
        (URL, ["--password-file", "/nonexistent/pw", "--user", "ana"], {}, "cannot read the password file"),
        (URL, ["--insecure", "--ca-bundle", __file__], {}, "contradict"),
        (URL, ["--timeout", "0"], {}, "positive number"),
    ],
)
def test_bad_settings_are_explained(url, argv, environ, message) -> None:
    with pytest.raises(MmdxError, match=message) as caught:
        settings_from_arguments(url, _args(*argv), environ)
    assert ":pw@" not in str(caught.value)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MmdxError, match="is empty"):
        settings_from_arguments(
            URL, _args("--user", "a", "--password-file", _write(tmp_path / "pw", "\n")), {}
        )


def test_session_carries_the_credentials_in_headers_only() -> None:
    bearer = open_session(DicomwebSettings(URL, AuthKind.BEARER, secret=Secret("t0k")))
    assert bearer.headers["Authorization"] == "Bearer t0k"
    basic = open_session(DicomwebSettings(URL, AuthKind.BASIC, "ana", Secret("pw")))
    assert basic.auth == ("ana", "pw")
    assert basic.verify is True
    assert open_session(DicomwebSettings(URL, verify_tls=False)).verify is False


def _failure(settings: DicomwebSettings, call) -> DicomwebFailure:
    with pytest.raises(DicomwebError) as caught, reporting_failures(settings, "testing"):
        call(open_client(settings))
    if settings.secret is not None:
        assert settings.secret.reveal() not in str(caught.value)
    return caught.value.failure


def test_failures_from_a_real_server_are_typed(orthanc_server) -> None:
    pacs = orthanc_server
    good = DicomwebSettings(pacs.dicomweb_url, AuthKind.BASIC, pacs.username, Secret(pacs.password))
    assert isinstance(open_client(good).search_for_studies(), list)
    wrong = DicomwebSettings(pacs.dicomweb_url, AuthKind.BASIC, pacs.username, Secret("not-the-password"))
    assert _failure(wrong, lambda c: c.search_for_studies()) == DicomwebFailure.AUTH_REFUSED
    assert _failure(good, lambda c: c.retrieve_series_metadata("1.2.3", "4.5.6")) == DicomwebFailure.NOT_FOUND
    closed = DicomwebSettings("http://127.0.0.1:9/dicom-web", timeout_s=5)
    assert _failure(closed, lambda c: c.search_for_studies()) == DicomwebFailure.UNREACHABLE


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for 127.0.0.1: ``cert.pem`` and ``key.pem``."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


@pytest.fixture
def https_server(tls_certificate: Path):
    """An HTTPS server on 127.0.0.1 with the self-signed certificate, answering every GET with an empty
    DICOM JSON list (as a QIDO-RS search with no match)."""
    import http.server
    import ssl
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a connection whose handshake failed must not hold up the shutdown
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_certificate / "cert.pem", tls_certificate / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/dicom-web"
    server.shutdown()
    server.server_close()


def test_tls_certificate_is_checked(tls_certificate: Path, https_server: str) -> None:
    strict = DicomwebSettings(https_server, timeout_s=10)
    assert _failure(strict, lambda c: c.search_for_studies()) == DicomwebFailure.TLS_FAILED
    trusted = DicomwebSettings(https_server, ca_bundle=tls_certificate / "cert.pem", timeout_s=10)
    assert open_client(trusted).search_for_studies() == []
    unchecked = DicomwebSettings(https_server, verify_tls=False, timeout_s=10)
    assert open_client(unchecked).search_for_studies() == []
