"""A tiny trained run shared by the dashboard's tests, and a review store with one account per role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmdx.review import ReviewContext, open_review_context
from mmdx.store import Operator, Principal, ReviewStore, Role
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS
from tests.support.review_runs import TestRun

PASSWORD = "correct horse battery"


@pytest.fixture
def password() -> str:
    """The password of every account of :func:`accounts`."""
    return PASSWORD


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'review.sqlite'}"


@dataclass
class Accounts:
    store: ReviewStore
    clinician: Principal
    colleague: Principal
    auditor: Principal
    admin: Principal


@pytest.fixture
def accounts(store_url: str) -> Iterator[Accounts]:
    store = ReviewStore(store_url, bcrypt_rounds=MIN_BCRYPT_ROUNDS)
    operator = Operator("tests")
    people = {}
    for name, role in (
        ("clin", Role.CLINICIAN),
        ("colleague", Role.CLINICIAN),
        ("aud", Role.AUDITOR),
        ("adm", Role.ADMIN),
    ):
        store.add_user(name, role, PASSWORD, actor=operator)
        people[name] = store.authenticate(name, PASSWORD)
    yield Accounts(store, people["clin"], people["colleague"], people["aud"], people["adm"])
    store.close()


@pytest.fixture
def context(review_run: TestRun, accounts: Accounts) -> ReviewContext:
    return open_review_context(review_run.path, accounts.store)


@pytest.fixture
def run_copy(review_run: TestRun, tmp_path: Path) -> Path:
    """A private copy of the run (bundle, predictions, explanations) that a test may alter."""
    target = tmp_path / "run-copy"
    shutil.copytree(review_run.path, target, ignore=shutil.ignore_patterns("checkpoints", "review.sqlite*"))
    return target
