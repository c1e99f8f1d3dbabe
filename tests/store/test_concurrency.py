"""8 concurrent writers x 200 verdicts: every row present once, ids unique, every user's chains linear.

The writers are separate processes ('spawn'), which is what stresses SQLite's file locking; PostgreSQL
gets processes too. Two writers share each account, so the same user appends to the same case's chain
from two places at once — the race the unique indexes on ``supersedes`` exist for.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter, defaultdict

import pytest
from sqlalchemy import create_engine, select

from mmdx.store import ReviewStore
from mmdx.store.schema import AuditEventRow, VerdictRow
from tests.support.postgres import report_to, write_verdicts

WRITERS = 8
PER_WRITER = 200
CASES = 20
USERS = [f"clin{u}" for u in range(WRITERS // 2)]


def _writer_user(writer: int) -> str:
    return USERS[writer % len(USERS)]


@pytest.mark.slow
def test_concurrent_writers_lose_and_duplicate_nothing(store_url: str, operator, password) -> None:
    with ReviewStore(store_url, bcrypt_rounds=4) as store:
        for user in USERS:
            store.add_user(user, "clinician", password, actor=operator)

    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(WRITERS), context.Queue()
    processes = [
        context.Process(
            target=report_to,
            args=(queue, f"w{w}", write_verdicts, store_url, _writer_user(w), password),
            kwargs={
                "run_id": "run1",
                "count": PER_WRITER,
                "tag": f"w{w}",
                "cases": CASES,
                "barrier": barrier,
            },
        )
        for w in range(WRITERS)
    ]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert sorted(status for _, status, _ in reports) == ["ok"] * WRITERS, reports
    assert [p.exitcode for p in processes] == [0] * WRITERS

    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    VerdictRow.id,
                    VerdictRow.user_name,
                    VerdictRow.case_id,
                    VerdictRow.comment,
                    VerdictRow.supersedes,
                )
            ).all()
            event_ids = (
                conn.execute(select(AuditEventRow.detail).where(AuditEventRow.action == "submit_verdict"))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()

    # every (writer, i) exactly once, nothing else
    written = Counter(r.comment for r in rows)
    expected = {f"w{w}:{i}" for w in range(WRITERS) for i in range(PER_WRITER)}
    assert set(written) == expected
    assert max(written.values()) == 1
    assert len(rows) == WRITERS * PER_WRITER
    assert len({r.id for r in rows}) == len(rows)
    # each verdict was written by its writer's account
    assert all(r.user_name == _writer_user(int(r.comment[1 : r.comment.index(":")])) for r in rows)
    # one audit event per verdict, naming it
    assert sorted(d["verdict_id"] for d in event_ids) == sorted(r.id for r in rows)

    # each (user, case) holds one linear chain: one head, each verdict superseded at most once, all reached
    chains: dict[tuple[str, str], list] = defaultdict(list)
    for row in rows:
        chains[(row.user_name, row.case_id)].append(row)
    assert len(chains) == len(USERS) * CASES
    for key, chain in chains.items():
        heads = [r for r in chain if r.supersedes is None]
        assert len(heads) == 1, key
        successor = {r.supersedes: r for r in chain if r.supersedes is not None}
        assert len(successor) == len(chain) - 1, key
        walked, current = 1, heads[0]
        while current.id in successor:
            current = successor[current.id]
            walked += 1
        assert walked == len(chain) == 2 * PER_WRITER // CASES, key
