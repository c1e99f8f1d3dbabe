"""Report settings and the command line's choice of review store, checked before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdx.audit.report import AuditOptions
from mmdx.errors import MmdxError
from mmdx.store import STORE_ENV, ReviewStore, default_store_url, resolve_store_url
from mmdx.workflows.audit import open_review


def store_url_for(run: Path, store: str | None) -> str | None:
    """The audit's choice: an explicit store must exist; the run's own counts when it exists."""
    return resolve_store_url(store, run, existing_only=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_resamples": 0}, "n_resamples must be an integer >= 1"),
        ({"n_resamples": 10.5}, "n_resamples"),
        ({"alpha": 1.0}, "alpha must be in (0, 1)"),
        ({"split": "holdout"}, "split must be one of train, val, test"),
        ({"min_group_size": -1}, "min_group_size"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"seed": -2}, "seed must be a non-negative integer"),
        ({"noise_levels": (0.1, 2.0)}, "image noise levels must be > 0 and <= 1"),
        ({"missingness_levels": (0.0,)}, "tabular missingness levels"),
    ],
)
def test_bad_settings_are_refused_with_their_name(change: dict, message: str) -> None:
    with pytest.raises(MmdxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AuditOptions(**change).checked()


def test_default_settings_are_valid_and_stated() -> None:
    options = AuditOptions().checked()
    stated = options.to_dict()
    assert stated["n_resamples"] == 1000 and stated["split"] == "test"
    assert stated["noise_levels"] == list(options.noise_levels)


def test_store_choice(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    run = tmp_path / "run"
    run.mkdir()
    assert store_url_for(run, None) is None  # no store anywhere: the section says so
    ReviewStore(default_store_url(run)).close()
    assert store_url_for(run, None) == default_store_url(run)  # the run's own store
    other = tmp_path / "elsewhere"
    other.mkdir()
    ReviewStore(default_store_url(other)).close()
    assert store_url_for(run, str(other)) == default_store_url(other)  # a run directory means its store
    monkeypatch.setenv(STORE_ENV, default_store_url(other))
    assert store_url_for(run, None) == default_store_url(other)
    absent = f"sqlite:///{tmp_path / 'absent.sqlite'}"
    with pytest.raises(MmdxError, match="review store not found"):
        store_url_for(run, absent)
    assert not (tmp_path / "absent.sqlite").exists()


def test_an_account_without_a_store_is_an_error() -> None:
    with pytest.raises(MmdxError, match="--user aud given but no review store"):
        open_review(None, "aud")
    assert open_review(None, None) is None
