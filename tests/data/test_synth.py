"""The synthetic cohort: the posterior recomputed from the written files alone matches truth.jsonl exactly.

The recomputation below deliberately re-implements the likelihoods from ``cohort.yaml``'s ``generator``
section (normal CDFs over the rounding interval of each written value, template matching in the notes,
lesion presence from the ground-truth masks), so a bug in the generator's own bookkeeping cannot hide.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.imaging import read_image
from mmdx.data.synth import SynthOptions, synthesize_cohort

CATALOGUE = FeatureCatalogue.load()


@pytest.fixture(scope="module")
def cohort3d(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "c3"
    synthesize_cohort(out, SynthOptions(n_cases=60, seed=11, dims=3, size=16))
    return out


@pytest.fixture(scope="module")
def cohort2d(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "c2"
    synthesize_cohort(out, SynthOptions(n_cases=400, seed=5, dims=2, size=16, workers=2))
    return out


def _read_truth(root: Path) -> dict[str, dict]:
    return {t["case_id"]: t for t in map(json.loads, (root / "ground_truth" / "truth.jsonl").open())}


def _interval_llr(params: dict, key: str, written: str, unit: str) -> float:
    feature = CATALOGUE[key]
    p = params["features"][key]
    decimals = len(written.split(".")[1]) if "." in written else 0
    half = 0.5 * 10.0**-decimals
    value = float(written)

    def t(x: float) -> float:
        if p["transform"] == "log":
            return math.log(x) if x > 0 else -math.inf
        return x

    low, high = p["support"]
    a = max(t(feature.to_canonical(value - half, unit)), low)
    b = min(t(feature.to_canonical(value + half, unit)), high)

    def log_mass(mean: float) -> float:
        dist = norm(mean, p["sd"])
        # survival functions keep precision in the upper tail
        if a > mean:
            inside = dist.sf(a) - dist.sf(b)
        else:
            inside = dist.cdf(b) - dist.cdf(a)
        return math.log(inside) - math.log(dist.cdf(high) - dist.cdf(low))

    return log_mass(p["mean_positive"]) - log_mass(p["mean_negative"])


def _recompute_posteriors(root: Path) -> dict[str, float]:
    spec = yaml.safe_load((root / "cohort.yaml").read_text())
    params = spec["generator"]
    cases = pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False)
    obs = pd.read_csv(root / "observations.csv", dtype=str, keep_default_na=False)
    obs["feature"] = obs["code"].map(lambda c: CATALOGUE[c].key)
    obs["t"] = pd.to_datetime(obs["time"], utc=True)
    latest = obs.sort_values("t").groupby(["case_id", "feature"]).tail(1)
    notes: dict[str, list[dict]] = {}
    for line in (root / "notes.jsonl").open():
        doc = json.loads(line)
        notes.setdefault(doc["case_id"], []).append(doc)
    p_pos, p_neg = params["lesion_prob"]["positive"], params["lesion_prob"]["negative"]
    out = {}
    for row in cases.itertuples():
        logit = math.log(params["prevalence"] / (1 - params["prevalence"]))
        if row.image:
            mask = nib.load(str(root / "ground_truth" / "masks" / f"{row.case_id}.nii.gz")).get_fdata()
            lesion = bool(mask.any())
            logit += math.log(p_pos / p_neg) if lesion else math.log((1 - p_pos) / (1 - p_neg))
        for rec in latest[latest["case_id"] == row.case_id].itertuples():
            if params["features"][rec.feature]["mean_positive"] is not None:
                logit += _interval_llr(params, rec.feature, rec.value, rec.unit)
        text = " ".join(n["text"] for n in notes.get(row.case_id, []))
        if text:
            for finding, f in params["findings"].items():
                status = 2
                for kind, templates in ((0, params["affirmed_templates"]), (1, params["negated_templates"])):
                    for template in templates:
                        if template.format(f=finding, F=finding.capitalize()) in text:
                            status = kind
                logit += math.log(f["p_positive"][status] / f["p_negative"][status])
        out[row.case_id] = 1 / (1 + math.exp(-logit))
    return out


def test_posterior_recomputed_from_files_matches_truth(cohort3d: Path) -> None:
    truth = _read_truth(cohort3d)
    recomputed = _recompute_posteriors(cohort3d)
    assert set(recomputed) == set(truth)
    for case_id, posterior in recomputed.items():
        assert posterior == pytest.approx(truth[case_id]["posterior"], abs=1e-9), case_id


def test_posterior_recomputed_in_2d(cohort2d: Path) -> None:
    truth = _read_truth(cohort2d)
    recomputed = _recompute_posteriors(cohort2d)
    worst = max(abs(recomputed[c] - truth[c]["posterior"]) for c in truth)
    assert worst < 1e-9


def test_fusion_matters_each_modality_clearly_weaker(cohort2d: Path) -> None:
    truth = list(_read_truth(cohort2d).values())
    y = np.array([t["label"] for t in truth])
    full = roc_auc_score(y, [t["posterior"] for t in truth])
    for modality in ("image", "tabular", "text"):
        alone = roc_auc_score(y, [t["logit_terms"][modality] for t in truth])
        assert 0.6 < alone < full - 0.05, modality
    spec = yaml.safe_load((cohort2d / "cohort.yaml").read_text())
    assert set(spec["modality_auroc"]) == {"image", "tabular", "text"}
    assert max(spec["modality_auroc"].values()) < spec["bayes_auroc"]


def test_lesion_mask_marks_the_bright_nodule_on_the_image_grid(cohort3d: Path) -> None:
    truth = _read_truth(cohort3d)
    checked = {"dicom-series": 0, "nifti": 0}
    for case_id, t in truth.items():
        if not t["lesion"]:
            continue
        image = read_image(
            cohort3d / pd.read_csv(cohort3d / "cases.csv").set_index("case_id").loc[case_id, "image"]
        )
        mask_img = nib.load(str(cohort3d / t["mask"]))
        mask = np.asarray(mask_img.dataobj).astype(bool)
        assert mask.shape == image.array.shape
        np.testing.assert_allclose(mask_img.affine, image.affine, atol=1e-3)
        # nodule ~25 HU inside lung ~-850 HU: every lesion voxel is far brighter than lung
        assert image.array[mask].mean() > -250
        checked[image.format] = checked.get(image.format, 0) + 1
    assert checked["dicom-series"] > 0 and checked["nifti"] > 0


def test_dicom_series_look_like_a_real_extract(cohort3d: Path) -> None:
    from pydicom import dcmread

    cases = pd.read_csv(cohort3d / "cases.csv", keep_default_na=False)
    folders = [cohort3d / p for p in cases["image"] if p and (cohort3d / p).is_dir()]
    assert folders
    out_of_order = 0
    for folder in folders:
        datasets = [dcmread(f) for f in sorted(folder.iterdir())]
        ds = datasets[0]
        for tag in (
            "SOPInstanceUID",
            "SeriesInstanceUID",
            "StudyInstanceUID",
            "ImagePositionPatient",
            "PixelSpacing",
            "SliceThickness",
            "RescaleSlope",
            "RescaleIntercept",
        ):
            assert tag in ds, tag
        assert ds.file_meta.TransferSyntaxUID and ds.file_meta.MediaStorageSOPClassUID
        by_position = sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))
        numbers = [int(d.InstanceNumber) for d in by_position]
        out_of_order += numbers != sorted(numbers)
    assert out_of_order > 0  # InstanceNumber is not always in position order


def test_units_differ_by_site(cohort3d: Path) -> None:
    cases = pd.read_csv(cohort3d / "cases.csv").set_index("case_id")
    obs = pd.read_csv(cohort3d / "observations.csv")
    obs["site"] = obs["case_id"].map(cases["site"])
    temp = obs[obs["code"].map(lambda c: CATALOGUE[c].key) == "temperature"]
    units = temp.groupby("site")["unit"].agg(lambda u: set(u))
    assert units["south"] == {"[degF]"} and units["north"] == {"Cel"}
    assert obs.groupby("case_id").size().max() > len(set(obs["code"].map(lambda c: CATALOGUE[c].key)))


def test_negated_and_affirmed_findings_share_words(cohort2d: Path) -> None:
    truth = _read_truth(cohort2d).values()
    statuses = [p["status"] for t in truth for p in t["planted_phrases"]]
    assert statuses.count("affirmed") > 20 and statuses.count("negated") > 20
    negated = [p for t in truth for p in t["planted_phrases"] if p["status"] == "negated"]
    assert all(p["finding"] in p["sentence"].lower() for p in negated)


def test_deterministic_per_seed(tmp_path: Path) -> None:
    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    opts = dict(n_cases=40, seed=7, dims=3, size=16, defects=True)
    synthesize_cohort(tmp_path / "a", SynthOptions(**opts))
    synthesize_cohort(tmp_path / "b", SynthOptions(**opts, workers=2))
    synthesize_cohort(tmp_path / "c", SynthOptions(**{**opts, "seed": 8}))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_cases": 3}, "at least 10"),
        ({"dims": 4}, "2 or 3"),
        ({"size": 8}, "between 16"),
        ({"n_cases": 20, "defects": True}, "at least 40"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthOptions(**kwargs)


def test_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(FileExistsError):
        synthesize_cohort(tmp_path, SynthOptions(n_cases=10))
    assert (tmp_path / "x").read_text() == "keep me"


@pytest.mark.parametrize("which", ["cohort2d", "cohort3d"])
def test_dicom_files_pass_dciodvfy(which: str, request: pytest.FixtureRequest, dciodvfy: Path) -> None:
    """Every DICOM file of ten cases is a conformant CT Image: dicom3tools' validator finds no error."""
    from mmdx.export.dciodvfy import verify

    root = request.getfixturevalue(which)
    with (root / "cases.csv").open(encoding="utf-8") as fh:
        images = [row["image"] for row in csv.DictReader(fh) if row["image"] and ".nii" not in row["image"]]
    files = [
        p
        for image in images[:10]
        for p in ([root / image] if image.endswith(".dcm") else sorted((root / image).glob("*.dcm")))
    ]
    assert len(files) >= 10
    for path in files:
        report = verify(path)
        assert report.iod == "CTImage"
        assert report.errors == [], f"{path.relative_to(root)}: {report.errors}"
        assert report.warnings == [], f"{path.relative_to(root)}: {report.warnings}"


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cohort with every variety option: a 40 mm targeted field of view, 2.5 mm slices, 12 slices per
    volume, an MR-like site and a fifth of the images in 2D."""
    out = tmp_path_factory.mktemp("synth") / "varied"
    synthesize_cohort(
        out,
        SynthOptions(
            n_cases=40,
            seed=3,
            dims=3,
            size=24,
            fov_mm=40.0,
            slice_spacing_mm=2.5,
            slices=12,
            mr_site=True,
            mix_dims=0.2,
        ),
    )
    return out


def test_variety_options_change_geometry_modality_and_dimensionality(varied: Path) -> None:
    from mmdx.data.imaging import read_image

    cases = pd.read_csv(varied / "cases.csv", dtype=str, keep_default_na=False)
    spec = yaml.safe_load((varied / "cohort.yaml").read_text())
    assert "dims" not in spec["image"]  # a 2D/3D mix declares none
    assert spec["generator"]["fov_mm"] == 40.0 and spec["generator"]["mr_site"] is True
    shapes, modalities, mr_values = set(), set(), []
    for site, rel in zip(cases["site"], cases["image"], strict=True):
        if not rel or not (varied / rel).exists():
            continue
        volume = read_image(varied / rel)
        shapes.add(volume.array.shape)
        spacing = volume.spacing
        assert spacing[0] == pytest.approx(40.0 / 24, rel=1e-4)  # the field of view is 40 mm
        if volume.array.ndim == 3:
            assert spacing[2] == pytest.approx(2.5, rel=1e-4)  # anisotropic
        modalities.add((site, volume.meta.get("modality") or "nifti"))
        if site == "west":
            mr_values.append(float(volume.array.max()))
            assert volume.array.min() >= 0 and volume.meta["modality"] == "MR"
    assert {(24, 24, 12), (24, 24)} <= shapes
    assert ("west", "MR") in modalities and any(m == "CT" for _, m in modalities)
    assert max(mr_values) / min(mr_values) > 1.5  # arbitrary units: the scale differs per image


def test_a_targeted_field_of_view_still_shows_its_lesions(varied: Path) -> None:
    from mmdx.data.imaging import read_image

    truth = [json.loads(line) for line in (varied / "ground_truth" / "truth.jsonl").read_text().splitlines()]
    checked = 0
    for record in truth:
        if not record["lesion"] or not record["mask"]:
            continue
        mask = read_image(varied / record["mask"]).array > 0
        assert mask.any()  # the nodule lies inside the 40 mm field of view
        checked += 1
    assert checked >= 5


def test_without_variety_options_the_cohort_is_unchanged(tmp_path: Path) -> None:
    """The options default to the synthesis before they existed: same streams, same files."""
    base = dict(n_cases=12, seed=2, dims=3, size=16)
    synthesize_cohort(tmp_path / "a", SynthOptions(**base))
    synthesize_cohort(tmp_path / "b", SynthOptions(**base, fov_mm=None, mr_site=False, mix_dims=0.0))
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    assert "fov_mm" not in (tmp_path / "a" / "cohort.yaml").read_text()


def test_site_shift_moves_prevalence_and_the_named_features_only(tmp_path: Path) -> None:
    """--site-shift: one new site, rarer outcome, the named non-causal features shifted in both classes,
    and a posterior that the files alone still reproduce (its prior is the new prevalence)."""
    home, shifted = tmp_path / "home", tmp_path / "shifted"
    synthesize_cohort(home, SynthOptions(n_cases=200, seed=3, dims=2, size=16))
    synthesize_cohort(shifted, SynthOptions(n_cases=200, seed=3, dims=2, size=16, site_shift=True))
    spec = yaml.safe_load((shifted / "cohort.yaml").read_text())
    shift = spec["generator"]["site_shift"]
    assert spec["generator"]["prevalence"] == shift["prevalence"] == 0.2
    assert set(shift["shifted_features"]) == {"spo2", "creatinine", "glucose"}
    cases = pd.read_csv(shifted / "cases.csv")
    assert set(cases["site"]) == {"harbour"}
    assert 0.12 < cases["label"].mean() < 0.28
    assert 0.8 < spec["bayes_auroc"] <= 1.0
    small = tmp_path / "small"
    synthesize_cohort(small, SynthOptions(n_cases=30, seed=4, dims=2, size=16, site_shift=True))
    truth, recomputed = _read_truth(small), _recompute_posteriors(small)
    assert max(abs(recomputed[c] - truth[c]["posterior"]) for c in truth) < 1e-9

    def latest_mean(root: Path, key: str) -> float:
        obs = pd.read_csv(root / "observations.csv", dtype=str)
        keys = {code: CATALOGUE[code].key for code in obs["code"].unique()}
        obs = obs[obs["code"].map(keys) == key]
        feature = CATALOGUE[key]
        values = [feature.to_canonical(float(v), u) for v, u in zip(obs["value"], obs["unit"], strict=True)]
        return float(np.mean(values))

    assert latest_mean(shifted, "spo2") < latest_mean(home, "spo2") - 0.8  # 0.8 sd of 1.6 lower
    assert latest_mean(shifted, "glucose") > latest_mean(home, "glucose") * 1.08
    assert abs(latest_mean(shifted, "sodium") / latest_mean(home, "sodium") - 1) < 0.005  # not shifted
    with pytest.raises(ValueError, match="cannot be combined"):
        SynthOptions(site_shift=True, mr_site=True)
