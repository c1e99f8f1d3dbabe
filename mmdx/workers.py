"""Worker processes of the library's process pools (image checks, synthesis, de-identification, caching).

Ctrl+C sends SIGINT to the whole process group, workers included. A worker that dies of it while it holds
the pool's task-queue lock leaves the other workers, and the parent's shutdown, waiting for ever; so the
workers ignore it and the parent alone handles the interrupt (leaving ``pool.map`` early cancels the tasks
not started).
"""

from __future__ import annotations

import signal


def ignore_ctrl_c() -> None:
    """Initializer of a pool's worker processes: leave SIGINT to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
