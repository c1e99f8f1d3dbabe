"""The image-caching progress bar the commands share."""

from __future__ import annotations

import pytest

from pipelines.progress import caching_progress


def test_the_bar_opens_at_the_first_report_and_closes_with_the_block(capsys) -> None:
    with pytest.raises(ValueError), caching_progress(disable=False):
        raise ValueError("the config failed before any image was cached")
    assert "caching images" not in capsys.readouterr().err  # no empty bar above the error
    with caching_progress(disable=False) as report:
        report(0, 4)
        report(3, 4)
    err = capsys.readouterr().err
    assert "caching images" in err
