"""How mmdx reaches a DICOMweb server: its URL, authentication, TLS checks and the errors it reports.

A :class:`DicomwebSettings` is built from the command line by :func:`settings_from_arguments`. Credentials
never come from the command line, where the process list and the shell history would show them: a user name
comes from ``--user`` or ``MMDX_DICOMWEB_USER``, a password from ``--password-file`` or
``MMDX_DICOMWEB_PASSWORD``, a bearer token from ``--token-file`` or ``MMDX_DICOMWEB_TOKEN``. A URL with
credentials in it (``https://user:pw@host``) is refused for the same reason. Secrets are held in
:class:`Secret`, whose ``repr`` and ``str`` hide them, and travel only in the ``Authorization`` header of a
``requests.Session``; no message of this module or its callers contains them.

Every failure of a request is raised as :class:`DicomwebError` with a :class:`DicomwebFailure` reason (server
unreachable, authentication refused, TLS check failed, not found, other server error), a message naming the
URL and what to do, and never a raw ``requests`` traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mmdx.errors import MmdxError

if TYPE_CHECKING:
    import requests
    from dicomweb_client.api import DICOMwebClient

log = logging.getLogger(__name__)

ENV_USER = "MMDX_DICOMWEB_USER"
ENV_PASSWORD = "MMDX_DICOMWEB_PASSWORD"
ENV_TOKEN = "MMDX_DICOMWEB_TOKEN"
DEFAULT_TIMEOUT_S = 60.0
#: Tries of a request that fails to connect, and the back-off multiplier (ms; waits of 2^n times it).
RETRY_ATTEMPTS = 3
RETRY_WAIT_MULTIPLIER_MS = 500
INSTALL_HINT = "pip install dicomweb-client (it comes with mmdx: pip install -e . or 'make setup')"


class AuthKind(StrEnum):
    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"


class DicomwebFailure(StrEnum):
    """Why a DICOMweb request failed."""

    UNREACHABLE = "unreachable"  # no connection, DNS failure, timeout
    AUTH_REFUSED = "auth_refused"  # HTTP 401 / 403
    TLS_FAILED = "tls_failed"  # the server's certificate did not verify
    NOT_FOUND = "not_found"  # HTTP 404: the study, series or endpoint does not exist
    SERVER_ERROR = "server_error"  # any other HTTP error, or an unreadable answer


class DicomwebError(MmdxError):
    """A DICOMweb request that failed; ``failure`` says why."""

    def __init__(self, failure: DicomwebFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


class Secret:
    """A password or token that does not show itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class DicomwebSettings:
    """Where the DICOMweb server is and how to talk to it.

    ``url``: the service root (e.g. ``https://pacs.example.org/dicom-web``), without credentials.
    ``verify_tls``: check the server's certificate (``ca_bundle``: a PEM file of trusted authorities to
    check it against instead of the system's). ``timeout_s``: seconds to wait for a connection or an answer.
    """

    url: str
    auth: AuthKind = AuthKind.NONE
    username: str | None = None
    secret: Secret | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_bundle: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        check_url(self.url)

    def describe(self) -> str:
        """A one-line description safe to print: the URL and the kind of authentication, no secret."""
        who = f" as {self.username}" if self.auth == AuthKind.BASIC and self.username else ""
        tls = (
            "" if not self.url.startswith("https") else (" (TLS not verified)" if not self.verify_tls else "")
        )
        return f"{self.url} ({self.auth.value} authentication{who}){tls}"


def check_url(url: str) -> None:
    """Refuse a URL that is not http(s) or that carries credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MmdxError(f"'{_without_credentials(url)}' is not an http:// or https:// DICOMweb URL")
    if parts.username or parts.password:
        raise MmdxError(
            f"the DICOMweb URL '{_without_credentials(url)}' carries credentials; remove them from the URL "
            f"and give them through {ENV_USER} / {ENV_PASSWORD} (or --user / --password-file), or "
            f"{ENV_TOKEN} (or --token-file) for a bearer token"
        )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


def read_secret_file(path: str | Path, what: str) -> Secret:
    """The first line of ``path`` as a secret. Warns when others may read the file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise MmdxError(f"cannot read the {what} file {path} ({exc.strerror or exc})") from None
    value = text.splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise MmdxError(f"the {what} file {path} is empty; put the {what} on its first line")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("the %s file %s can be read by other users; chmod 600 it", what, path)
    return Secret(value)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The authentication and TLS options shared by every command that talks to a DICOMweb server."""
    group = parser.add_argument_group(
        "DICOMweb connection",
        f"Credentials never go on the command line: the password comes from --password-file or "
        f"${ENV_PASSWORD}, the bearer token from --token-file or ${ENV_TOKEN}; nothing logs them.",
    )
    group.add_argument(
        "--auth",
        choices=[a.value for a in AuthKind],
        help="authentication: none, basic (user and password) or bearer (token); default: bearer when a "
        "token is given, basic when a user is given, else none",
    )
    group.add_argument("--user", help=f"user name for basic authentication (default: ${ENV_USER})")
    group.add_argument(
        "--password-file", metavar="FILE", help=f"file whose first line is the password (or ${ENV_PASSWORD})"
    )
    group.add_argument(
        "--token-file", metavar="FILE", help=f"file whose first line is the bearer token (or ${ENV_TOKEN})"
    )
    group.add_argument(
        "--ca-bundle", metavar="PEM", help="check the server's TLS certificate against these authorities"
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="do not check the server's TLS certificate (test servers only)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds per request (default {DEFAULT_TIMEOUT_S:g})",
    )


def settings_from_arguments(
    url: str, args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> DicomwebSettings:
    """Settings from the options of :func:`add_connection_arguments` and the environment."""
    env = os.environ if environ is None else environ
    user = getattr(args, "user", None) or env.get(ENV_USER) or None
    token_file = getattr(args, "token_file", None)
    password_file = getattr(args, "password_file", None)
    auth = getattr(args, "auth", None)
    if auth is None:
        if token_file or env.get(ENV_TOKEN):
            auth = AuthKind.BEARER
        elif user:
            auth = AuthKind.BASIC
        else:
            auth = AuthKind.NONE
    auth = AuthKind(auth)
    secret: Secret | None = None
    if auth == AuthKind.BASIC:
        if not user:
            raise MmdxError(f"basic authentication needs a user name: --user NAME or ${ENV_USER}")
        if password_file:
            secret = read_secret_file(password_file, "password")
        elif env.get(ENV_PASSWORD):
            secret = Secret(env[ENV_PASSWORD])
        else:
            raise MmdxError(f"basic authentication needs a password: --password-file FILE or ${ENV_PASSWORD}")
    elif auth == AuthKind.BEARER:
        if token_file:
            secret = read_secret_file(token_file, "token")
        elif env.get(ENV_TOKEN):
            secret = Secret(env[ENV_TOKEN])
        else:
            raise MmdxError(f"bearer authentication needs a token: --token-file FILE or ${ENV_TOKEN}")
    ca_bundle = getattr(args, "ca_bundle", None)
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise MmdxError(f"--ca-bundle {ca_bundle}: no such file")
    timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT_S))
    if not timeout > 0:
        raise MmdxError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    insecure = bool(getattr(args, "insecure", False))
    if insecure and ca_bundle:
        raise MmdxError("--insecure and --ca-bundle contradict each other; give one")
    return DicomwebSettings(
        url=url.rstrip("/"),
        auth=auth,
        username=user if auth == AuthKind.BASIC else None,
        secret=secret,
        verify_tls=not insecure,
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        timeout_s=timeout,
    )


def open_session(settings: DicomwebSettings) -> requests.Session:
    """A ``requests.Session`` carrying the authentication and TLS settings."""
    import requests

    class _Session(requests.Session):
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own `verify`; an explicit
        # --ca-bundle or --insecure must win (without them the environment's bundle still applies)
        def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if settings.ca_bundle is not None or not settings.verify_tls:
                merged["verify"] = self.verify
            return merged

    session = _Session()
    if settings.auth == AuthKind.BASIC and settings.secret is not None:
        session.auth = (settings.username or "", settings.secret.reveal())
    elif settings.auth == AuthKind.BEARER and settings.secret is not None:
        session.headers["Authorization"] = f"Bearer {settings.secret.reveal()}"
    session.verify = str(settings.ca_bundle) if settings.ca_bundle else settings.verify_tls
    if not settings.verify_tls:
        import urllib3

        # the user asked for it on the command line; one warning from us instead of one per request
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        log.warning("not checking the TLS certificate of %s (--insecure)", settings.url)
    return session


def open_client(settings: DicomwebSettings, session: requests.Session | None = None) -> DICOMwebClient:
    """A ``dicomweb_client`` client on the service root of ``settings`` (on ``session`` when given, which
    the caller then closes; else on a new session from :func:`open_session`)."""
    try:
        from dicomweb_client.api import DICOMwebClient
    except ModuleNotFoundError:
        raise MmdxError(
            f"talking to a DICOMweb server needs the package dicomweb-client: {INSTALL_HINT}"
        ) from None
    client = DICOMwebClient(
        settings.url, session=session or open_session(settings), timeout=settings.timeout_s
    )
    # dicomweb-client retries a request that raised (refused connection, TLS failure) 5 times with waits of
    # 2, 4, 8 and 16 s: half a minute before an unreachable server is reported. Three tries, 1 and 2 s
    # apart, still ride out a blip.
    client.set_http_retry_params(
        retry=True, max_attempts=RETRY_ATTEMPTS, wait_exponential_multiplier=RETRY_WAIT_MULTIPLIER_MS
    )
    return client


@contextlib.contextmanager
def reporting_failures(settings: DicomwebSettings, action: str) -> Iterator[None]:
    """Translate ``requests`` errors raised inside the block into :class:`DicomwebError`.

    ``action`` says what was being done ("storing 3 objects of case C001") for the message.
    """
    import requests

    where = settings.url
    try:
        yield
    except requests.exceptions.SSLError:
        raise DicomwebError(
            DicomwebFailure.TLS_FAILED,
            f"{action}: the TLS certificate of {where} did not verify; give the authority that signed it "
            "with --ca-bundle PEM (or --insecure for a test server)",
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "cannot connect"
        raise DicomwebError(
            DicomwebFailure.UNREACHABLE,
            f"{action}: {kind} to the DICOMweb server {where}; check the URL, that the server runs and "
            "that this machine may reach it (--timeout S to wait longer)",
        ) from None
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        url = exc.response.url if exc.response is not None else where
        if status in (401, 403):
            raise DicomwebError(
                DicomwebFailure.AUTH_REFUSED,
                f"{action}: {where} refused the request (HTTP {status}); check the credentials "
                f"(${ENV_USER}/${ENV_PASSWORD}, ${ENV_TOKEN}, or the --password-file/--token-file) and the "
                "account's permissions",
            ) from None
        if status == 404:
            raise DicomwebError(
                DicomwebFailure.NOT_FOUND, f"{action}: not found on the server (HTTP 404 for {url})"
            ) from None
        raise DicomwebError(
            DicomwebFailure.SERVER_ERROR, f"{action}: the server answered HTTP {status} for {url}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise DicomwebError(
            DicomwebFailure.SERVER_ERROR, f"{action}: request to {where} failed ({type(exc).__name__})"
        ) from None
