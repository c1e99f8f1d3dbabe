"""Fixtures shared by the whole suite: small synthetic cohorts written once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmdx.config import load_config
from mmdx.data.synth import SynthOptions, synthesize_cohort

#: fixtures shared across packages (the command-line tests in tests/pipelines use them too), defined once
pytest_plugins = [
    "tests.support.audit_runs",
    "tests.support.phi_cohorts",
    "tests.support.review_runs",
    "tests.support.export_runs",  # after review_runs, which it imports
    "tests.support.store_backends",
]

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
    # the tests' own baseline: joint training without augmentation (the demo ships staged + augmentation)
    "train.strategy=joint",
    "train.augment.affine=0",
    "train.augment.elastic=0",
    "train.augment.intensity=0",
    "train.augment.noise=0",
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
    from mmdx.workflows.train import train_run

    train_run(tiny_config("train.epochs=2"), small_cohort_2d, out, progress=False)
    return out


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def require_system(missing: list[str], packages: str, reason: str = "not found") -> None:
    """Skip the test (fail it under ``CI=true``) when a system component is ``missing``, naming the Debian
    ``packages`` that provide it."""
    if not missing:
        return
    message = f"{', '.join(missing)} {reason}; install with: apt-get install {packages}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_installed(paths: tuple[Path, ...], packages: str) -> None:
    """Skip (fail under ``CI=true``) when one of the files ``paths`` is missing, naming the Debian packages."""
    require_system([str(p) for p in paths if not p.is_file()], packages)


def require_browser() -> None:
    """Skip (fail under ``CI=true``) when Debian's chromium and chromium-driver are missing."""
    require_system([str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()], "chromium chromium-driver")


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


@pytest.fixture(scope="session")
def dciodvfy() -> Path:
    """dicom3tools' DICOM validator (skips, or fails under ``CI=true``, when it is not installed)."""
    from mmdx.export.dciodvfy import PACKAGE, find_dciodvfy

    found = find_dciodvfy()
    require_system([] if found else ["dciodvfy"], PACKAGE)
    assert found is not None
    return found


@pytest.fixture(scope="session")
def orthanc_server():
    """A throwaway Orthanc PACS with DICOMweb on 127.0.0.1 for the whole session (a
    :class:`mmdx.dicomweb.orthanc.TemporaryOrthanc`; skips, or fails under ``CI=true``, without Debian's
    orthanc and orthanc-dicomweb). Tests that need it empty use :func:`pacs`."""
    from mmdx.dicomweb.orthanc import ORTHANC_PACKAGES, OrthancUnavailable, TemporaryOrthanc

    server = TemporaryOrthanc()
    try:
        server.start()
    except OrthancUnavailable as exc:
        require_system(["Orthanc"], ORTHANC_PACKAGES, reason=f"unavailable ({exc})")
    yield server
    server.stop()


@pytest.fixture
def pacs(orthanc_server):
    """The session's Orthanc server, emptied before the test."""
    orthanc_server.delete_everything()
    return orthanc_server


@pytest.fixture
def pacs_environment(pacs, monkeypatch: pytest.MonkeyPatch):
    """The session's Orthanc server, emptied, with its basic-authentication credentials in the environment
    variables mmdx reads them from."""
    from mmdx.dicomweb.connection import ENV_PASSWORD, ENV_USER

    monkeypatch.setenv(ENV_USER, pacs.username)
    monkeypatch.setenv(ENV_PASSWORD, pacs.password)
    return pacs
