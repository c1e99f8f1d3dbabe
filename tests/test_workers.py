"""Pool workers leave Ctrl+C to their parent."""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor

from mmdx.workers import ignore_ctrl_c


def _sigint_handler(_: int) -> str:
    handler = signal.getsignal(signal.SIGINT)
    return "ignored" if handler is signal.SIG_IGN else repr(handler)


def test_workers_started_with_the_initializer_ignore_sigint() -> None:
    # the parent as a terminal starts it: Ctrl+C raises KeyboardInterrupt (forked workers inherit that)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with ProcessPoolExecutor(max_workers=2, initializer=ignore_ctrl_c) as pool:
            assert set(pool.map(_sigint_handler, range(4))) == {"ignored"}
        with ProcessPoolExecutor(max_workers=1) as pool:  # without it, a worker dies of Ctrl+C
            assert list(pool.map(_sigint_handler, range(1))) != ["ignored"]
    finally:
        signal.signal(signal.SIGINT, previous)
