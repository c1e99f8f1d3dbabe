"""Provenance facts (fingerprints, commit, versions) and the TRIPOD+AI coverage map."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from mmdx.audit.provenance import UNKNOWN, package_versions, source_commit
from mmdx.audit.sections import Section
from mmdx.audit.tripod import COVERED, NOT_COVERED, tripod_map
from mmdx.data.splits import split_fingerprint


def test_split_fingerprint_ignores_order_and_sees_a_moved_case() -> None:
    rng = np.random.default_rng(0)
    cases = pd.DataFrame(
        {"case_id": [f"C{i:04d}" for i in range(50)], "split": rng.choice(["train", "val", "test"], 50)}
    )
    reference = split_fingerprint(cases["case_id"], cases["split"])
    shuffled = cases.sample(frac=1.0, random_state=1)
    assert split_fingerprint(shuffled["case_id"], shuffled["split"]) == reference
    moved = cases.copy()
    moved.loc[0, "split"] = "test" if moved.loc[0, "split"] != "test" else "train"
    assert split_fingerprint(moved["case_id"], moved["split"]) != reference


def test_source_commit_of_this_checkout_and_of_a_foreign_folder(tmp_path: Path) -> None:
    here = source_commit()
    if here["commit"] != UNKNOWN:  # the tests may run from an installed copy
        assert re.fullmatch(r"[0-9a-f]{40}", here["commit"]) and isinstance(here["dirty"], bool)
    assert source_commit(tmp_path) == {"commit": UNKNOWN, "dirty": None}
    # another repository must not be mistaken for mmdx's (a virtualenv inside a project, say)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert source_commit(tmp_path) == {"commit": UNKNOWN, "dirty": None}


def test_package_versions() -> None:
    versions = package_versions(["numpy", "no-such-distribution-mmdx"])
    assert versions == {"numpy": np.__version__, "no-such-distribution-mmdx": None}


def test_tripod_coverage_follows_the_section_status() -> None:
    everything = {s.value: "ok" for s in Section}
    assert {item["coverage"] for item in tripod_map(everything)["items"]} == {"reported"}
    partial = {
        **everything,
        Section.ROBUSTNESS.value: "not_available",
        Section.SUBGROUPS.value: "not_available",
    }
    items = {item["item"]: item for item in tripod_map(partial)["items"]}
    assert items["14"]["coverage"] == "not_available"  # fairness: subgroups only
    assert items["11"]["coverage"] == "partial"  # missing data: cohort flow yes, robustness no
    assert items["23a"]["coverage"] == "reported"


def test_tripod_items_account_for_the_whole_checklist_once() -> None:
    covered = [item.item for item in COVERED]
    left = [item for item, _ in NOT_COVERED]
    assert len(set(covered)) == len(covered) and not set(covered) & set(left)
    numbers = {int(re.match(r"\d+", item).group()) for item in covered + left}
    assert numbers == set(range(1, 28))  # TRIPOD+AI has 27 items
    document = tripod_map({s.value: "ok" for s in Section})
    assert "BMJ 2024" in document["reference"] and "Collins" in document["reference"]
    assert all(s in {x.value for x in Section} for item in document["items"] for s in item["sections"])
