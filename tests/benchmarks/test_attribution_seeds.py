"""Seed means of ground-truth attribution scores over cases every file scores, and two sets paired by case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import attribution_seeds


def _file(tmp_path, name: str, rows: list[dict]) -> object:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps([{"label": "other", "rows": []}, {"label": "ig_expected", "rows": rows}]))
    return path


def _rows(values: dict[str, float | None], **extra) -> list[dict]:
    return [{"case_id": c, "tabular_auc": v, **extra.get(c, {})} for c, v in values.items()]


def test_seed_means_use_the_cases_every_file_scores_and_pair_them(tmp_path) -> None:
    rng = np.random.default_rng(0)
    cases = [f"c{i}" for i in range(200)]
    old = [{c: float(rng.uniform(0.6, 0.8)) for c in cases} for _ in range(2)]
    new = [{c: v + 0.1 for c, v in seed.items()} for seed in old]
    new[0]["c0"] = None  # not scored in one file: left out everywhere
    new_rows = [_rows(seed) for seed in new]
    result = attribution_seeds.seed_scores(
        new_rows, [_rows(seed) for seed in old], "tabular_auc", resamples=300
    )
    assert result["n"] == 199
    kept = cases[1:]
    assert result["per_seed"][1] == pytest.approx(np.mean([new[1][c] for c in kept]))
    low, high = result["seed_mean_interval"]
    assert low < result["seed_mean"] < high
    assert result["difference"] == pytest.approx(0.1)
    assert result["difference_interval"] == pytest.approx((0.1, 0.1))  # the same shift in every case
    assert "new − old +0.100" in attribution_seeds.report(result)


def test_the_command_reads_the_named_method_and_counts_negated_phrases_on_top(tmp_path, capsys) -> None:
    rows = _rows(
        {"a": 0.9, "b": 0.8, "c": 0.7},
        a={"phrase_affirmed": 0.0, "phrase_negated": 1.0},
        b={"phrase_affirmed": 0.0, "phrase_negated": 0.0},
        c={"phrase_affirmed": 1.0},
    )
    path = _file(tmp_path, "seed0", rows)
    assert attribution_seeds.affirmed_misses(rows) == (2, 1)
    attribution_seeds.main(["--new", str(path), "--method", "ig_expected", "--scores", "tabular_auc"])
    out = capsys.readouterr().out
    assert (
        "tabular_auc (n 3): 0.800" in out and "not the top phrase in 2 notes" in out and "on top in 1" in out
    )
    with pytest.raises(SystemExit, match="no method 'gradcam'"):
        attribution_seeds.main(["--new", str(path), "--method", "gradcam"])
    with pytest.raises(SystemExit, match="pair them seed by seed"):
        attribution_seeds.main(["--new", str(path), str(path), "--old", str(path)])


def test_one_seeds_cases_may_come_in_several_files_joined_by_plus(tmp_path, capsys) -> None:
    first = _file(tmp_path, "first", _rows({"a": 0.9, "b": 0.7}))
    second = _file(tmp_path, "second", _rows({"c": 0.5}))
    rows = attribution_seeds.method_rows(f"{first}+{second}", "ig_expected")
    assert [r["case_id"] for r in rows] == ["a", "b", "c"]
    attribution_seeds.main(
        ["--new", f"{first}+{second}", "--method", "ig_expected", "--scores", "tabular_auc"]
    )
    assert "tabular_auc (n 3): 0.700" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="first.json: no method .gradcam."):
        attribution_seeds.method_rows(f"{first}+{second}", "gradcam")


def test_two_methods_of_the_same_files_are_paired_by_case(tmp_path, capsys) -> None:
    path = tmp_path / "seed0.json"
    first = _rows({"a": 0.9, "b": 0.7})
    second = _rows({"a": 0.5, "b": 0.6})
    path.write_text(json.dumps([{"label": "m1", "rows": first}, {"label": "m2", "rows": second}]))
    attribution_seeds.main(
        [
            "--new",
            str(path),
            "--old",
            str(path),
            "--method",
            "m1",
            "--old-method",
            "m2",
            "--scores",
            "tabular_auc",
        ]
    )
    assert "new − old +0.250" in capsys.readouterr().out
