"""One resolution of the review store's URL: --store, else $MMDX_STORE_URL (or its deprecated former name),
else the run's own store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mmdx.errors import MmdxError
from mmdx.store import default_store_url, resolve_store_url
from mmdx.store.engine import DEPRECATED_STORE_ENV, STORE_ENV, require_store_url


@pytest.mark.parametrize(
    ("store", "environ", "expected"),
    [
        ("sqlite:///given.sqlite", {STORE_ENV: "sqlite:///env.sqlite"}, "sqlite:///given.sqlite"),
        (None, {STORE_ENV: "sqlite:///env.sqlite"}, "sqlite:///env.sqlite"),
        (None, {STORE_ENV: " ", DEPRECATED_STORE_ENV: "sqlite:///old.sqlite"}, "sqlite:///old.sqlite"),
        (
            None,
            {STORE_ENV: "sqlite:///env.sqlite", DEPRECATED_STORE_ENV: "sqlite:///old.sqlite"},
            "sqlite:///env.sqlite",
        ),
        (None, {}, "RUN"),
    ],
)
def test_the_first_given_source_wins(store, environ, expected, tmp_path: Path) -> None:
    url = resolve_store_url(store, tmp_path, environ=environ)
    assert url == (default_store_url(tmp_path) if expected == "RUN" else expected)


def test_the_deprecated_variable_still_works_with_a_warning(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        url = resolve_store_url(None, environ={DEPRECATED_STORE_ENV: "sqlite:///old.sqlite"})
    assert url == "sqlite:///old.sqlite"
    assert f"{DEPRECATED_STORE_ENV} is deprecated; set {STORE_ENV}" in caplog.text


def test_a_directory_means_its_store_and_anything_else_is_refused(tmp_path: Path) -> None:
    assert resolve_store_url(str(tmp_path), environ={}) == default_store_url(tmp_path)
    with pytest.raises(MmdxError, match="neither a URL"):
        resolve_store_url(str(tmp_path / "nowhere"), environ={})


def test_reading_needs_an_existing_store(tmp_path: Path) -> None:
    assert resolve_store_url(None, tmp_path, existing_only=True, environ={}) is None  # no review.sqlite yet
    with pytest.raises(MmdxError, match="review store not found"):
        resolve_store_url(f"sqlite:///{tmp_path / 'absent.sqlite'}", existing_only=True, environ={})
    assert not (tmp_path / "absent.sqlite").exists()


def test_commands_without_a_run_need_a_store(monkeypatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    monkeypatch.delenv(DEPRECATED_STORE_ENV, raising=False)
    with pytest.raises(MmdxError, match=f"no review store given.*{STORE_ENV}"):
        require_store_url(None)
