"""Fixtures shared by the whole suite: small synthetic cohorts written once per session."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmdx.config import load_config
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.store.testing import (
    PostgresUnavailable,
    TemporaryPostgres,
    create_database,
    create_schema,
    drop_database,
    drop_schema,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the image cache of the test run out of the user's home."""
    os.environ["MMDX_CACHE_DIR"] = str(tmp_path_factory.mktemp("mmdx-cache"))


@pytest.fixture(scope="session")
def defect_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3D cohort (16³ volumes) with every kind of planted defect."""
    out = tmp_path_factory.mktemp("cohorts") / "defects3d"
    synthesize_cohort(out, SynthOptions(n_cases=48, seed=21, dims=3, size=16, defects=True, workers=2))
    return out


@pytest.fixture(scope="session")
def small_cohort_2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean 2D cohort of 160 cases (32² slices), big enough to train a tiny model on."""
    out = tmp_path_factory.mktemp("cohorts") / "clean2d"
    synthesize_cohort(out, SynthOptions(n_cases=160, seed=4, dims=2, size=32, workers=2))
    return out


CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"

#: the demo architecture shrunk so that an epoch on 160 cases takes about a second
TINY = [
    "data.loader.batch_size=16",
    "data.text.max_length=48",
    "model.image.channels=[8, 16]",
    "model.image.out_dim=16",
    "model.tabular={name: mlp, dim: 16, hidden_dim: 32}",
    "model.text={name: text_cnn, dim: 16, channels: 16, embedding_dim: 16}",
    "model.fusion.dim=16",
    "train.threads=1",
]


def tiny_config(*overrides: str):
    """The demo config with the TINY overrides and ``overrides`` applied."""
    return load_config(CONFIG, [*TINY, *overrides])


@pytest.fixture(scope="session")
def tiny():
    """``(overrides, make_config)``: the TINY override list and :func:`tiny_config`."""
    return TINY, tiny_config


@pytest.fixture(scope="session")
def tiny_run(small_cohort_2d: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    from pipelines.train import train_run

    train_run(tiny_config("train.epochs=2"), small_cohort_2d, out, progress=False)
    return out


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_browser() -> None:
    """Skip (fail under ``CI=true``) when Debian's chromium and chromium-driver are missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    message = f"{', '.join(missing)} not found; install them with: apt-get install chromium chromium-driver"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser_installed() -> None:
    require_browser()


@pytest.fixture
def chromium(tmp_path: Path):
    """A factory of headless Chromium sessions (selenium, the system binaries, ``HOME`` in a temporary
    folder, no background networking); every session it starts is closed after the test."""
    drivers = []

    def start(window_size: str = "1400,1000", page_load_timeout_s: float = 60, console_log: bool = False):
        require_browser()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        home = tmp_path / f"browser-home-{len(drivers)}"
        home.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--window-size={window_size}",
            f"--user-data-dir={home / 'profile'}",
        ):
            options.add_argument(argument)
        if console_log:
            options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=str(CHROMEDRIVER), env={**os.environ, "HOME": str(home)})
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(page_load_timeout_s)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL (review store, OMOP import): from ``MMDX_TEST_POSTGRES_URL`` (a user allowed to create databases)
# or, failing that, a throwaway server started here from Debian's binaries. Without either, tests needing it
# are skipped, except under CI (``CI=true``), where they fail: CI must exercise PostgreSQL.
# ---------------------------------------------------------------------------------------------------------
UNAVAILABLE = "PostgreSQL not available: apt-get install postgresql, or set MMDX_TEST_POSTGRES_URL"


def _unavailable(reason: str) -> None:
    message = f"{UNAVAILABLE} ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL on a PostgreSQL server whose user may create databases."""
    configured = os.environ.get("MMDX_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    server = TemporaryPostgres(durable=False)
    try:
        url = server.start()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of this test session, dropped at its end (a throwaway server is simply deleted)."""
    name = f"mmdx_test_{secrets.token_hex(6)}"
    url = create_database(postgres_admin_url, name)
    try:
        yield url
    finally:
        if os.environ.get("MMDX_TEST_POSTGRES_URL"):
            drop_database(postgres_admin_url, name)


@pytest.fixture
def postgres_url(postgres_database_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test (the URL selects it through search_path)."""
    name = f"t_{secrets.token_hex(6)}"
    url = create_schema(postgres_database_url, name)
    try:
        yield url
    finally:
        drop_schema(postgres_database_url, name)
