"""``mmdx deid`` on the command line: the key file stays out of the output."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd

from mmdx.deid.canary import find_canaries
from mmdx.deid.cohort import REPORT_FILE
from pipelines.cli import main


def _cases(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False)


def test_the_key_never_reaches_the_output(phi2d_defects: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "k.key"
    out = tmp_path / "out"
    assert main(["deid", str(phi2d_defects), str(out), "--key-file", str(key_file), "--quiet"]) == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().split()[1]
    assert find_canaries([out], [secret, key_file.read_text().strip()]) == []
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["cases"]["rows"] == len(_cases(phi2d_defects))
    assert report["method"]["key_fingerprint"] and secret not in json.dumps(report)
    # a key file inside the output is refused before anything is written
    args = ["deid", str(phi2d_defects), str(tmp_path / "o2"), "--key-file", str(tmp_path / "o2" / "k")]
    assert main(args) == 2
    assert not (tmp_path / "o2").exists()
