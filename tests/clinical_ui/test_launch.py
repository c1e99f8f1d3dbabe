"""Starting the dashboard: server options, settings through the environment, and ``mmdx review``."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from clinical_ui import launch
from clinical_ui.launch import dashboard_settings, dashboard_url, is_loopback, streamlit_command
from clinical_ui.settings import (
    IDLE_TIMEOUT_ENV,
    RUN_ENV,
    DashboardSettings,
    settings_from_environment,
)
from mmdx.errors import MmdxError
from mmdx.store import default_store_url


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_server_options_are_locked_down() -> None:
    command = streamlit_command("127.0.0.1", 8765)
    assert command[command.index("run") + 1] == str(launch.APP)
    expected = {
        "--server.address": "127.0.0.1",
        "--server.port": "8765",
        "--server.headless": "true",
        "--server.fileWatcherType": "none",
        "--server.runOnSave": "false",
        "--browser.gatherUsageStats": "false",
        "--client.showErrorDetails": "none",
        "--client.disableDataExport": "true",
    }
    assert {name: _option(command, name) for name in expected} == expected
    with pytest.raises(MmdxError, match="port"):
        streamlit_command("127.0.0.1", 70000)


@pytest.mark.parametrize(
    ("host", "loopback", "url"),
    [
        ("127.0.0.1", True, "http://127.0.0.1:8501"),
        ("localhost", True, "http://localhost:8501"),
        ("::1", True, "http://[::1]:8501"),
        ("0.0.0.0", False, "http://127.0.0.1:8501"),
        ("10.1.2.3", False, "http://10.1.2.3:8501"),
    ],
)
def test_addresses(host: str, loopback: bool, url: str) -> None:
    assert is_loopback(host) is loopback
    assert dashboard_url(host, 8501) == url


def test_settings_travel_through_the_environment(tmp_path: Path) -> None:
    settings = DashboardSettings(
        str(tmp_path), "postgresql+psycopg://u:secret@db/mmdx", str(tmp_path / "c"), 300.0
    )
    assert settings_from_environment(settings.environment()) == settings
    defaults = settings_from_environment({RUN_ENV: str(tmp_path)})
    assert defaults.store_url == default_store_url(tmp_path) and defaults.idle_timeout_s == 900
    with pytest.raises(MmdxError, match=RUN_ENV):
        settings_from_environment({})
    for bad in ("soon", "0", "-5"):
        with pytest.raises(MmdxError, match=IDLE_TIMEOUT_ENV):
            settings_from_environment({RUN_ENV: str(tmp_path), IDLE_TIMEOUT_ENV: bad})


def test_a_run_without_predictions_fails_clearly(tmp_path: Path, review_run) -> None:
    with pytest.raises(MmdxError, match="not found"):
        dashboard_settings(tmp_path / "missing")
    (tmp_path / "half" / "bundle").mkdir(parents=True)
    with pytest.raises(MmdxError, match="mmdx evaluate"):
        dashboard_settings(tmp_path / "half")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_server_starts_on_loopback_and_serves_no_case_data_unauthenticated(
    review_run, tmp_path: Path, case_ids
) -> None:
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    process = launch.start_server(
        review_run.path,
        f"sqlite:///{tmp_path / 'review.sqlite'}",
        port,
        home=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = dashboard_url("127.0.0.1", port)
        launch.wait_until_ready(url, process, timeout_s=90)
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local URL
            page = response.read().decode("utf-8", "replace")
        assert not [c for c in case_ids if c in page]
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        local = {entry[1] for entry in listening if entry[3] == "0A"}  # state 0A: LISTEN
        assert f"0100007F:{port:04X}" in local  # 127.0.0.1, not 0.0.0.0
        assert f"00000000:{port:04X}" not in local
    finally:
        process.terminate()
        process.wait(timeout=30)
