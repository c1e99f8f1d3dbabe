"""`mmdx plan`, `mmdx validate --config/--bundle` and the start of `mmdx train`: images checked against the
grid where it can still be fixed; a config that cannot fit the cohort fails in one line before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx.data.synth import SynthOptions, synthesize_cohort
from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "configs" / "demo.yaml")
#: configs/demo.yaml and configs/ct3d.yaml before their image settings were fitted to the cohort
OLD_DEMO = [
    "data.image.dims=2",
    "data.image.shape=[32, 32]",
    "data.image.spacing=[11.0, 11.0]",
    "data.image.intensity=window",
]
OLD_CT3D = [
    "data.image.dims=3",
    "data.image.shape=[32, 32, 32]",
    "data.image.spacing=[11.0, 11.0, 11.0]",
    "data.image.intensity=window",
]
TINY = [
    "train.epochs=1",
    "train.threads=1",
    "data.loader.batch_size=8",
    "model.image.channels=[8, 16]",
    "model.image.out_dim=16",
    "model.tabular={name: mlp, dim: 16, hidden_dim: 32}",
    "model.text={name: text_cnn, dim: 16, channels: 16, embedding_dim: 16}",
    "model.fusion.dim=16",
]


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def small_fov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3D volumes of a 40 mm field of view, 2.5 mm slices: not the 340 mm the default sites scan."""
    out = tmp_path_factory.mktemp("fov") / "fov40"
    synthesize_cohort(
        out, SynthOptions(n_cases=40, seed=9, dims=3, size=24, slices=16, fov_mm=40.0, slice_spacing_mm=2.5)
    )
    return out


def test_plan_prints_fingerprint_and_a_grid_that_fits(small_fov: Path, tmp_path: Path, capsys) -> None:
    assert main(["plan", str(small_fov), "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "field of view median 40 x 40 x 40 mm" in out and "every image fits the plan" in out
    result = json.loads((tmp_path / "plan.json").read_text())
    assert result["plan"]["dims"] == 3 and result["plan"]["shape"] == [24, 24, 16]
    assert result["fingerprint"]["modalities"]["CT"]["n_images"] == result["fingerprint"]["n_images"]


def test_the_old_fixed_grid_is_flagged_where_it_can_still_be_fixed(small_fov: Path, capsys) -> None:
    """Validation and planning said nothing when a 40 mm volume shrank to 3 x 3 x 9 voxels of 11 mm."""
    assert (
        main(
            [
                "validate",
                str(small_fov),
                "--config",
                str(REPO / "configs" / "ct3d.yaml"),
                *sets(OLD_CT3D),
                "--show",
                "3",
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "IMAGE_FOV_MISMATCH" in out and "352 x 352 x 352 mm" in out
    assert main(["plan", str(small_fov), *sets(OLD_CT3D)]) == 0
    assert "IMAGE_FOV_MISMATCH" in capsys.readouterr().out


def test_a_2d_config_on_a_3d_cohort_fails_in_one_line_before_training(
    defect_cohort: Path, tmp_path: Path, capsys
) -> None:
    """It died inside the data loader: 'stack expects each tensor to be equal size'."""
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                DEMO,
                "--cohort",
                str(defect_cohort),
                "--out",
                str(run),
                *sets(OLD_DEMO + TINY),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "data.image.dims" in err and "3D volumes" in err and "Traceback" not in err
    )
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())


def test_the_demo_config_trains_on_a_3d_cohort(defect_cohort: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                DEMO,
                "--cohort",
                str(defect_cohort),
                "--out",
                str(run),
                "--quiet",
                *sets(TINY),
            ]
        )
        == 0
    )
    plan = json.loads((run / "bundle" / "preprocessing.json").read_text())["image"]
    assert plan["dims"] == 3 and plan["origin"]["dims"] == "fingerprint"
    training = json.loads((run / "training.json").read_text())
    assert training["image_plan"]["plan"] == plan
    # the bundle's own plan: validation against it finds the same grid, and never refits it
    assert main(["validate", str(defect_cohort), "--bundle", str(run)]) == 0
