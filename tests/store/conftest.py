"""Fixtures of the review store tests: every store test runs on SQLite and on a real PostgreSQL server
(the ``postgres_url`` fixture of ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mmdx.store import Operator, Principal, ReviewStore, Role, VerdictRecord, default_store_url

PASSWORD = "correct horse battery"
ROUNDS = 4  # bcrypt's minimum: the tests check behaviour, not hashing cost
OPERATOR = Operator("test-operator")


@dataclass(frozen=True)
class People:
    """Signed-in principals of a small team: two clinicians, an auditor and an admin."""

    alice: Principal  # clinician
    bob: Principal  # clinician
    carol: Principal  # auditor
    dave: Principal  # admin

    def of_role(self, role: Role) -> Principal:
        return {Role.CLINICIAN: self.alice, Role.AUDITOR: self.carol, Role.ADMIN: self.dave}[role]


def sign_up(store: ReviewStore, name: str, role: Role | str, password: str = PASSWORD) -> Principal:
    store.add_user(name, role, password, actor=OPERATOR)
    principal = store.authenticate(name, password)
    assert principal is not None
    return principal


def submit(
    store: ReviewStore, principal: Principal, case_id: str, verdict: str = "agree", **overrides: Any
) -> VerdictRecord:
    """Submit a verdict on run 'run1' with plausible defaults for the fields a test does not care about."""
    fields = {
        "run_id": "run1",
        "case_id": case_id,
        "verdict": verdict,
        "diagnosis": "",
        "confidence": 3,
        "comment": "",
        "helpful": [],
        "model_version": "model-1",
        "explanation_version": "expl-1",
    }
    fields.update(overrides)
    return store.submit_verdict(principal, **fields)


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty store location on each backend."""
    if request.param == "sqlite":
        return default_store_url(tmp_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[ReviewStore]:
    with ReviewStore(store_url, bcrypt_rounds=ROUNDS) as opened:
        yield opened


@pytest.fixture
def people(store: ReviewStore) -> People:
    return People(
        alice=sign_up(store, "alice", Role.CLINICIAN),
        bob=sign_up(store, "bob", Role.CLINICIAN),
        carol=sign_up(store, "carol", Role.AUDITOR),
        dave=sign_up(store, "dave", Role.ADMIN),
    )


# Shared helpers as fixtures: with --import-mode=importlib a test module cannot import a sibling module.


@pytest.fixture
def password() -> str:
    """The password every account made by ``sign_up`` has."""
    return PASSWORD


@pytest.fixture
def operator() -> Operator:
    return OPERATOR


@pytest.fixture(name="sign_up")
def sign_up_fixture() -> Callable[..., Principal]:
    """``sign_up(store, name, role, password=PASSWORD) -> Principal``: add an account and sign in."""
    return sign_up


@pytest.fixture(name="submit")
def submit_fixture() -> Callable[..., VerdictRecord]:
    """``submit(store, principal, case_id, verdict="agree", **overrides)`` on run 'run1'."""
    return submit
