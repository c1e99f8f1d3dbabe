"""Index time: nothing recorded after a case's index time (or older than its look-back window) is used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.index_time import dicom_acquired, known_at, lookback_windows, parse_duration
from mmdx.data.issues import IssueCode
from mmdx.data.validation import validate_cohort
from mmdx.errors import CohortError

SPEC = {"name": "t", "version": 1, "task": {"label": "label", "positive": "x", "type": "binary"}}


def write_cohort(root: Path, cases: str, observations: str, notes: list[dict], **spec) -> Path:
    root.mkdir(parents=True)
    (root / "cohort.yaml").write_text(yaml.safe_dump({**SPEC, **spec}))
    (root / "cases.csv").write_text(cases)
    (root / "observations.csv").write_text(observations)
    (root / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    return root


CASES = """case_id,patient_id,label,split,index_time
A,P1,1,train,2024-03-02T12:00:00Z
B,P2,0,train,
C,P3,0,train,yesterday
D,P4,1,train,2024-03-02
"""
OBSERVATIONS = """case_id,code,value,unit,time
A,8867-4,80,/min,2024-03-02T11:00:00Z
A,8867-4,180,/min,2024-03-02T13:00:00Z
A,8867-4,70,/min,2024-02-01T13:00:00Z
A,2160-0,1.0,mg/dL,2024-02-01T13:00:00Z
A,2160-0,1.0,mg/dL,
A,2160-0,1.1,mg/dL,2024-03-02
B,8867-4,80,/min,2030-01-01T00:00:00Z
C,8867-4,80,/min,2024-03-02T11:00:00Z
D,8867-4,80,/min,2024-03-02T11:00:00Z
D,8867-4,81,/min,2024-03-01
"""
NOTES = [
    {"case_id": "A", "text": "before", "time": "2024-03-02T10:00:00Z"},
    {"case_id": "A", "text": "after", "time": "2024-03-02T14:00:00Z"},
    {"case_id": "A", "text": "same day, hour unknown", "time": "2024-03-02"},
    {"case_id": "D", "text": "undated"},
    {"case_id": "B", "text": "no index time, kept", "time": "2031-01-01T00:00:00Z"},
]


@pytest.fixture
def timed(tmp_path: Path):
    return validate_cohort(
        write_cohort(tmp_path / "c", CASES, OBSERVATIONS, NOTES, lookback={"vital": "P1D"}),
        check_images=False,
    )


def test_observations_and_notes_after_index_time_never_kept(timed) -> None:
    kept = timed.observations
    rows = {(r.case_id, int(r.row)) for r in kept.itertuples()}
    # A: row 1 before; 2 after; 3 heart rate older than the 1-day vital window; 4 creatinine (a lab, no
    # window) kept; 5 undated; 6 a bare date of the index day counts as its end, so after
    assert rows == {("A", 1), ("A", 4), ("B", 7), ("D", 10)}
    assert timed.notes["A"] == "before"
    assert "D" not in timed.notes
    assert timed.notes["B"] == "no index time, kept"
    summary = timed.report.summary["index_time"]
    assert summary["cases_with_index_time"] == 2
    assert summary["lookback"] == {"vital": "P1D"}
    assert summary["excluded"]["observations"] == {
        "AFTER_INDEX_TIME": 3,
        "BEFORE_LOOKBACK_WINDOW": 1,
        "UNDATED_WITH_INDEX_TIME": 1,
    }
    assert summary["excluded"]["notes"] == {"AFTER_INDEX_TIME": 2, "UNDATED_WITH_INDEX_TIME": 1}


@pytest.mark.parametrize(
    ("case_id", "status", "codes"),
    [
        (
            "A",
            "warning",
            {IssueCode.AFTER_INDEX_TIME, IssueCode.BEFORE_LOOKBACK_WINDOW, IssueCode.UNDATED_WITH_INDEX_TIME},
        ),
        ("B", "accepted", set()),
        ("C", "rejected", {IssueCode.INDEX_TIME_INVALID}),
        ("D", "warning", {IssueCode.AFTER_INDEX_TIME, IssueCode.UNDATED_WITH_INDEX_TIME}),
    ],
)
def test_each_exclusion_is_a_typed_issue_of_its_case(timed, case_id, status, codes) -> None:
    report = next(c for c in timed.report.cases if c.case_id == case_id)
    assert report.status == status
    assert {i.code for i in report.issues} == codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P7D", pd.Timedelta(days=7)),
        ("PT12H", pd.Timedelta(hours=12)),
        ("P1DT6H", pd.Timedelta(hours=30)),
        ("p2d", pd.Timedelta(days=2)),
        ("P1Y", None),
        ("P2M", None),
        ("7 days", None),
        ("P0D", None),
    ],
)
def test_lookback_durations(text: str, expected) -> None:
    if expected is None:
        with pytest.raises(CohortError, match="lookback"):
            parse_duration(text, "cohort.yaml: lookback.lab")
    else:
        assert parse_duration(text, "cohort.yaml: lookback.lab") == expected


def test_unknown_lookback_kind_is_named_with_a_suggestion() -> None:
    with pytest.raises(CohortError, match="lookback.labs: unknown kind; did you mean 'lab'"):
        lookback_windows({"lookback": {"labs": "P1D"}}, FeatureCatalogue.load())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-02", "2024-03-02T23:59:59.999999+00:00"),
        ("2024-03-02T08:00:00", "2024-03-02T08:00:00+00:00"),
        ("2024-03-02T08:00:00+02:00", "2024-03-02T06:00:00+00:00"),
        ("", None),
    ],
)
def test_known_at(text: str, expected: str | None) -> None:
    value = known_at(text)
    assert (value.isoformat() if value is not None else None) == expected


def test_image_acquired_after_index_time_is_excluded(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("CT_small.dcm"))
    acquired = dicom_acquired(source)
    ds = dcmread(source, stop_before_pixels=True)
    assert acquired is not None and acquired.strftime("%Y%m%d") == ds.AcquisitionDate
    root = tmp_path / "c"
    cases = (
        "case_id,patient_id,label,split,index_time,image\n"
        f"early,P1,1,train,{(acquired - pd.Timedelta(hours=1)).isoformat()},images/early.dcm\n"
        f"late,P2,0,train,{(acquired + pd.Timedelta(hours=1)).isoformat()},images/late.dcm\n"
        f"old,P3,0,train,{(acquired + pd.Timedelta(days=40)).isoformat()},images/old.dcm\n"
    )
    write_cohort(root, cases, OBSERVATIONS.splitlines()[0] + "\n", [], lookback={"image": "P30D"})
    (root / "images").mkdir()
    for name in ("early", "late", "old"):
        shutil.copy(source, root / "images" / f"{name}.dcm")
    cohort = validate_cohort(root)
    codes = {c.case_id: {str(i.code) for i in c.issues} for c in cohort.report.cases}
    assert codes["early"] >= {"AFTER_INDEX_TIME", "NO_USABLE_MODALITY"}
    assert "AFTER_INDEX_TIME" not in codes["late"]
    assert "BEFORE_LOOKBACK_WINDOW" in codes["old"]
    assert cohort.cases["case_id"].tolist() == ["late"]
    assert cohort.report.summary["index_time"]["excluded"]["images"] == {
        "AFTER_INDEX_TIME": 1,
        "BEFORE_LOOKBACK_WINDOW": 1,
    }


# ---------------------------------------------------------------------------------------------------------
# A planted leak: a lab recorded after the index time that gives the label away
# ---------------------------------------------------------------------------------------------------------
LEAKED_FEATURE = "albumin"  # does not depend on the label in the synthetic generator
LEAKED_LOINC = "1751-7"


def plant_leak(source: Path, out: Path, with_index_time: bool) -> int:
    """Copy a synthetic cohort, give each case an index time just after its last record, and add, one hour
    after it, an albumin value and a note that reveal the label. Returns how many leaked rows were planted."""
    shutil.copytree(source, out)
    cases = pd.read_csv(out / "cases.csv", dtype=str, keep_default_na=False)
    obs = pd.read_csv(out / "observations.csv", dtype=str, keep_default_na=False)
    notes = [json.loads(line) for line in (out / "notes.jsonl").read_text().splitlines()]
    times = pd.concat(
        [
            obs[["case_id", "time"]],
            pd.DataFrame([{"case_id": n["case_id"], "time": n["time"]} for n in notes]),
        ]
    )
    last = pd.to_datetime(times["time"], utc=True).groupby(times["case_id"]).max()
    index_time = (last + pd.Timedelta(minutes=30)).reindex(cases["case_id"])
    index_time = index_time.fillna(pd.Timestamp("2025-06-01T00:00:00Z"))
    leaked_rows, leaked_notes = [], []
    for case_id, label, stamp in zip(cases["case_id"], cases["label"], index_time, strict=True):
        when = (stamp + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = "2.1" if label == "1" else "4.6"
        leaked_rows.append(
            {"case_id": case_id, "code": LEAKED_LOINC, "value": value, "unit": "g/dL", "time": when}
        )
        text = "Discharge diagnosis: pneumonia, escalated." if label == "1" else "Discharge: no pneumonia."
        leaked_notes.append(
            {"case_id": case_id, "text": text, "note_type": "discharge summary", "time": when}
        )
    pd.concat([obs, pd.DataFrame(leaked_rows)]).to_csv(out / "observations.csv", index=False)
    with (out / "notes.jsonl").open("a") as fh:
        for note in leaked_notes:
            fh.write(json.dumps(note) + "\n")
    if with_index_time:
        cases["index_time"] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in index_time]
        cases.to_csv(out / "cases.csv", index=False)
    return len(leaked_rows)


@pytest.fixture(scope="module")
def leak_cohorts(small_cohort_2d: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("leak")
    planted = plant_leak(small_cohort_2d, root / "guarded", with_index_time=True)
    plant_leak(small_cohort_2d, root / "unguarded", with_index_time=False)
    return {"guarded": root / "guarded", "unguarded": root / "unguarded", "planted": planted}


def test_planted_leak_never_reaches_the_tabular_tensors(leak_cohorts: dict, tiny) -> None:
    from mmdx.data.dataset import build_case_table, fit_preprocessing

    _, make_config = tiny
    config = make_config("model.image=null", "model.text=null")
    aurocs = {}
    for name in ("guarded", "unguarded"):
        cohort = validate_cohort(leak_cohorts[name], check_images=False)
        table = build_case_table(cohort, fit_preprocessing(cohort, config))
        column = list(cohort.catalogue.keys).index(LEAKED_FEATURE)
        present = table.tabular_missing[:, column] == 0
        aurocs[name] = roc_auc_score(table.labels[present] == 0, table.canonical[present, column])
        if name == "guarded":
            excluded = cohort.report.summary["index_time"]["excluded"]
            assert excluded["observations"] == {"AFTER_INDEX_TIME": leak_cohorts["planted"]}
            assert excluded["notes"] == {"AFTER_INDEX_TIME": leak_cohorts["planted"]}
            assert not any("Discharge" in text for text in cohort.notes.values())
            index = pd.to_datetime(cohort.cases.set_index("case_id")["index_time"], utc=True)
            assert (
                cohort.observations["time"].to_numpy() <= index.loc[cohort.observations["case_id"]].to_numpy()
            ).all()
    # used, the leaked lab would separate the classes perfectly; guarded, it is the generator's noise
    assert aurocs["unguarded"] == pytest.approx(1.0)
    assert aurocs["guarded"] < 0.75


@pytest.mark.slow
def test_a_tiny_model_cannot_exploit_the_planted_leak(leak_cohorts: dict, tiny, tmp_path: Path) -> None:
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.train import train_run

    _, make_config = tiny
    # a one-token-per-feature transformer picks a single decisive feature out quickly
    config = make_config(
        "model.image=null",
        "model.text=null",
        "model.tabular={name: ft_transformer, dim: 16}",
        "train.epochs=15",
    )
    aurocs = {}
    for name in ("guarded", "unguarded"):
        train_run(config, leak_cohorts[name], tmp_path / name, progress=False)
        aurocs[name] = evaluate_run(tmp_path / name, workers=1).metrics["splits"]["test"]["auroc"]
    assert aurocs["unguarded"] > 0.95  # the leak, if it got through, is easy to learn
    assert aurocs["guarded"] < aurocs["unguarded"] - 0.1
