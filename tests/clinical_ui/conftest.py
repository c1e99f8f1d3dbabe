"""The dashboard under AppTest: the shared tiny run, a store with one account per role, and a driver."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from clinical_ui.launch import dashboard_url, start_server, wait_until_ready
from clinical_ui.settings import IDLE_TIMEOUT_ENV, RUN_ENV, STORE_ENV
from mmdx.review import sign_in
from mmdx.store import Operator, ReviewStore, Role
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS
from tests.support.review_runs import TestRun

APP = Path(__file__).resolve().parents[2] / "clinical_ui" / "app.py"
PASSWORD = "correct horse battery"
ACCOUNTS = {"clin": Role.CLINICIAN, "colleague": Role.CLINICIAN, "aud": Role.AUDITOR, "adm": Role.ADMIN}
TIMEOUT_S = 60


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReviewStore]:
    store = ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}", bcrypt_rounds=MIN_BCRYPT_ROUNDS)
    for name, role in ACCOUNTS.items():
        store.add_user(name, role, PASSWORD, actor=Operator("tests"))
    yield store
    store.close()


@dataclass
class Dashboard:
    """Drives one browser session of the app through AppTest."""

    at: AppTest
    store: ReviewStore
    run: TestRun

    def run_app(self) -> Dashboard:
        self.at.run(timeout=TIMEOUT_S)
        assert not self.at.exception, [e.value for e in self.at.exception]
        return self

    def sign_in(self, name: str, password: str = PASSWORD) -> Dashboard:
        if not self.at.text_input:
            self.run_app()
        self.widget("text_input", "User name").input(name)
        self.widget("text_input", "Password").input(password)
        self.widget("button", "Sign in").click()
        return self.run_app()

    def widget(self, kind: str, label: str):
        matches = [w for w in getattr(self.at, kind) if w.label == label]
        assert matches, f"no {kind} labelled {label!r}; have {[w.label for w in getattr(self.at, kind)]}"
        return matches[0]

    def has(self, kind: str, label: str) -> bool:
        return any(w.label == label for w in getattr(self.at, kind))

    def go(self, page: str) -> Dashboard:
        self.at.switch_page(page)
        return self.run_app()

    def open_case(self, case_id: str) -> Dashboard:
        self.at.session_state["mmdx_case_id"] = case_id
        return self.go("views/case_review.py")

    def texts(self) -> str:
        """Every text the page shows (titles, markdown, captions, messages, tables, widget labels)."""
        parts: list[str] = []
        for kind in (
            "title",
            "header",
            "subheader",
            "markdown",
            "caption",
            "text",
            "info",
            "warning",
            "error",
            "success",
        ):
            parts.extend(str(e.value) for e in getattr(self.at, kind))
        parts.extend(str(e.proto.body) for e in self.at.html)
        for frame in self.at.dataframe:
            parts.append(frame.value.to_string())
        for kind in ("selectbox", "multiselect", "radio"):
            for widget in getattr(self.at, kind):
                parts.append(widget.label)
                parts.extend(str(o) for o in widget.options)
        return "\n".join(parts)

    def events(self, action: str, **filters) -> list:
        admin = self.store.authenticate("adm", PASSWORD)
        return self.store.audit_events(admin, action=action, **filters)


@pytest.fixture
def dashboard(
    review_run: TestRun, store: ReviewStore, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Dashboard]:
    """A factory of dashboard sessions on the shared run and this test's store."""
    monkeypatch.setenv(RUN_ENV, str(review_run.path))
    monkeypatch.setenv(STORE_ENV, store.url.render_as_string(hide_password=False))
    monkeypatch.setenv(IDLE_TIMEOUT_ENV, "900")

    def make(script: Path = APP) -> Dashboard:
        return Dashboard(AppTest.from_file(str(script), default_timeout=TIMEOUT_S), store, review_run)

    return make


@pytest.fixture
def case_ids(review_run: TestRun) -> list[str]:
    return pd.read_parquet(review_run.path / "predictions.parquet")["case_id"].tolist()


@pytest.fixture
def session_of(store: ReviewStore) -> Callable[[str], object]:
    """A signed-in ReviewSession for ``name``, to put into an AppTest's session state."""

    def make(name: str):
        session = sign_in(store, name, PASSWORD)
        assert session is not None
        return session

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serving(
    run: Path,
    folder: Path,
    password: str,
    idle_timeout_s: float = 900.0,
    wait_s: float = 90,
    cohort_dir: Path | None = None,
) -> Iterator[tuple[str, str]]:
    """The real dashboard server (``mmdx review``'s launcher) on 127.0.0.1 with a store holding one clinician
    account ``clin``; yields ``(url, store_url)`` and stops the server afterwards (its log: server.log)."""
    store_url = f"sqlite:///{folder / 'review.sqlite'}"
    with ReviewStore(store_url) as store:
        store.add_user("clin", Role.CLINICIAN, password, actor=Operator("tests"))
    port = free_port()
    home = folder / "server-home"
    home.mkdir()
    with (folder / "server.log").open("w") as log:
        process = start_server(
            run,
            store_url,
            port,
            "127.0.0.1",
            cohort_dir=cohort_dir,
            idle_timeout_s=idle_timeout_s,
            home=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = dashboard_url("127.0.0.1", port)
        try:
            wait_until_ready(url, process, timeout_s=wait_s)
            yield url, store_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def serve_dashboard() -> Callable[..., AbstractContextManager[tuple[str, str]]]:
    """``serve_dashboard(run, folder, password, idle_timeout_s=900, cohort_dir=None)``: a context manager
    running the real dashboard server; see :func:`_serving`."""
    return _serving
