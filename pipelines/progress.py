"""Progress bars the commands share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def caching_progress(disable: bool | None = None) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for filling the image cache. Its bar opens at the first report,
    so a command that fails while it still validates the cohort or the config prints no empty bar, and it
    is closed when the block ends. ``disable``: tqdm's (``None``: only on a terminal)."""
    bars: list[tqdm] = []

    def report(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc="caching images", unit="image", leave=False, disable=disable))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        yield report
    finally:
        for bar in bars:
            bar.close()
