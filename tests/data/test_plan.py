"""The preprocessing plan: fingerprint -> plan, explicit values winning, checks of each image against it,
and how real DICOM files look after planning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from mmdx.config import ImageConfig
from mmdx.data.dataset import preprocess_volume
from mmdx.data.imaging import read_image
from mmdx.data.intensity import IntensityMethod
from mmdx.data.issues import IssueCode
from mmdx.data.plan import (
    ANY_MODALITY,
    GRID_MULTIPLE,
    ImageFacts,
    ImagePlan,
    PlanError,
    check_image,
    derive_plan,
    facts_of,
    fingerprint,
    grid_coverage,
    plane_axes,
)


def facts(
    fov: tuple[float, ...],
    spacing: tuple[float, ...],
    modality: str = "CT",
    p50: float = -500.0,
    p_low: float = -1000.0,
    p_high: float = 300.0,
) -> ImageFacts:
    """Facts of an axis-aligned image with this field of view and spacing."""
    shape = tuple(int(round(f / s)) for f, s in zip(fov, spacing, strict=True))
    flat = len(fov) == 2
    return ImageFacts(
        dims=len(fov),
        shape=shape,
        spacing=spacing,
        fov_mm=fov,
        axcodes="RAS",
        modality=modality,
        percentiles={"p0.5": p_low, "p50": p50, "p99.5": p_high},
        slice_fov_mm=None if flat else fov[:2],
        slice_spacing=None if flat else spacing[:2],
    )


FOV40 = facts((40.0, 40.0, 100.0), (0.833, 0.833, 2.5))
CHEST = facts((340.0, 340.0, 340.0), (10.6, 10.6, 10.6))
SMALL_CT = facts((84.7, 84.7), (0.66, 0.66))
MR_PATCH = facts((20.0, 20.0), (0.3125, 0.3125), modality="MR", p50=327.0)


@pytest.mark.parametrize(
    ("images", "settings", "dims", "shape", "spacing"),
    [
        # the median field of view fills the grid; the budget caps the voxels
        ([FOV40] * 5, {}, 3, (32, 32, 32), (1.25, 1.25, 3.125)),
        ([CHEST] * 5, {}, 3, (32, 32, 32), (10.625, 10.625, 10.625)),
        ([SMALL_CT] * 3, {}, 2, (32, 32), (2.647, 2.647)),
        # a budget larger than the images need keeps their resolution
        ([MR_PATCH], {"voxel_budget_2d": 8192}, 2, (64, 64), (0.3125, 0.3125)),
        # explicit values win
        ([FOV40] * 5, {"shape": [16, 16, 16]}, 3, (16, 16, 16), (2.5, 2.5, 6.25)),
        ([FOV40] * 5, {"spacing": [2.0, 2.0, 5.0]}, 3, (24, 24, 24), (2.0, 2.0, 5.0)),
        (
            [FOV40] * 5,
            {"dims": 3, "shape": [32, 32, 32], "spacing": [11.0, 11.0, 11.0]},
            3,
            (32, 32, 32),
            (11.0, 11.0, 11.0),
        ),
        # the majority's dimensionality
        ([FOV40] * 3 + [SMALL_CT] * 2, {}, 3, (32, 32, 32), (1.25, 1.25, 3.125)),
    ],
)
def test_derive_plan(images, settings, dims, shape, spacing) -> None:
    plan = derive_plan(fingerprint(images), ImageConfig(**settings))
    assert plan.dims == dims and plan.shape == shape
    assert plan.spacing == pytest.approx(spacing, abs=1e-3)
    assert math.prod(plan.shape) <= ImageConfig(**settings).budget(dims)


@pytest.mark.parametrize("seed", range(20))
def test_planned_grids_fit_the_budget_and_the_median_field_of_view(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dims = int(rng.choice([2, 3]))
    images = [
        facts(tuple(rng.uniform(15, 400, dims)), tuple(rng.uniform(0.2, 5.0, dims)))
        for _ in range(int(rng.integers(1, 8)))
    ]
    config = ImageConfig(
        voxel_budget_2d=int(rng.integers(256, 8192)), voxel_budget_3d=int(rng.integers(4096, 200_000))
    )
    plan = derive_plan(fingerprint(images), config)
    assert math.prod(plan.shape) <= config.budget(dims)
    assert all(s % GRID_MULTIPLE == 0 and s >= 16 for s in plan.shape)
    median = np.median([f.fov_mm for f in images], axis=0)
    np.testing.assert_allclose(plan.fov_mm, median, rtol=1e-6)  # the median image fills the grid exactly


@pytest.mark.parametrize(
    ("settings", "key"),
    [({"dims": 2}, "data.image.dims"), ({"shape": [32, 32]}, "data.image.shape")],
)
def test_a_config_fixing_the_wrong_dimensionality_fails_in_one_line(settings: dict, key: str) -> None:
    with pytest.raises(PlanError) as info:
        derive_plan(fingerprint([FOV40] * 4), ImageConfig(**settings))
    message = str(info.value)
    assert key in message and "100% of the 4 training images are 3D volumes" in message
    assert "\n" not in message and "data.image.dims=3" in message


def test_checks_name_field_of_view_crop_dimensionality_and_intensity() -> None:
    fixed = ImagePlan.from_config(
        ImageConfig(dims=3, shape=[32, 32, 32], spacing=[11.0] * 3, intensity="window")
    )
    codes = lambda image, plan, declared=None: [i.code for i in check_image(image, plan, declared)]  # noqa: E731
    assert codes(FOV40, fixed) == [IssueCode.IMAGE_FOV_MISMATCH]
    message = check_image(FOV40, fixed)[0].message
    assert "40 x 40 x 100 mm" in message and "352 x 352 x 352 mm" in message
    planned = derive_plan(fingerprint([FOV40] * 3), ImageConfig())
    assert codes(FOV40, planned) == []
    assert codes(CHEST, planned) == [IssueCode.IMAGE_FOV_CROPPED]
    assert codes(SMALL_CT, planned) == [IssueCode.IMAGE_DIMS_DROPPED]
    flat = derive_plan(fingerprint([SMALL_CT] * 3), ImageConfig())
    assert IssueCode.IMAGE_CENTRE_SLICE in codes(facts((84.7, 84.7, 20.0), (0.66, 0.66, 2.0)), flat)
    mr_windowed = ImagePlan.from_config(
        ImageConfig(dims=2, shape=[32, 32], spacing=[0.625] * 2, intensity="window")
    )
    assert codes(MR_PATCH, mr_windowed) == [IssueCode.IMAGE_INTENSITY_MISMATCH]
    raw_ct = facts((84.7, 84.7), (0.66, 0.66), p50=1040.0)  # stored values without Rescale Intercept
    assert IssueCode.IMAGE_INTENSITY_MISMATCH in codes(raw_ct, flat)
    assert IssueCode.IMAGE_MODALITY_UNSEEN in codes(MR_PATCH, flat)
    # a NIfTI file has no header modality: the cohort's declared one counts
    nifti = facts((84.7, 84.7), (0.66, 0.66), modality="", p50=327.0)
    assert IssueCode.IMAGE_INTENSITY_MISMATCH in codes(nifti, mr_windowed, "MR")


def test_a_mostly_air_ct_image_is_hounsfield_but_values_outside_the_range_are_not() -> None:
    plan = derive_plan(fingerprint([SMALL_CT] * 3), ImageConfig())
    mismatch = lambda image: IssueCode.IMAGE_INTENSITY_MISMATCH in [i.code for i in check_image(image, plan)]  # noqa: E731
    # the top of a head or a slice outside the body: the median is air, padded at -1024 by the scanner
    assert not mismatch(facts((84.7, 84.7), (0.66, 0.66), p50=-1024.0, p_low=-1024.0, p_high=60.0))
    assert not mismatch(facts((84.7, 84.7), (0.66, 0.66), p50=-1000.0, p_low=-3024.0, p_high=1500.0))
    below_air = facts((84.7, 84.7), (0.66, 0.66), p50=-2000.0, p_low=-3000.0, p_high=0.0)
    assert mismatch(below_air)
    assert "below air" in check_image(below_air, plan)[0].message
    stored = facts((84.7, 84.7), (0.66, 0.66), p50=0.0, p_low=-32768.0, p_high=30000.0)  # raw int16 values
    message = next(
        i.message for i in check_image(stored, plan) if i.code == IssueCode.IMAGE_INTENSITY_MISMATCH
    )
    assert "-32768 to 30000" in message and "Rescale Slope/Intercept" in message


def test_grid_coverage_is_the_shared_volume() -> None:
    plan = ImagePlan.from_config(ImageConfig(dims=2, shape=[16, 16], spacing=[5.0, 5.0]))  # 80 x 80 mm
    covered, cropped = grid_coverage(facts((40.0, 80.0), (1.0, 1.0)), plan)
    assert covered == pytest.approx(0.5) and cropped == pytest.approx(0.0)
    covered, cropped = grid_coverage(facts((160.0, 80.0), (1.0, 1.0)), plan)
    assert covered == pytest.approx(1.0) and cropped == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("columns", "axes"),
    [
        (([1, 0, 0], [0, 1, 0]), [0, 1]),  # axial
        (([1, 0, 0], [0, 0, -1]), [0, 2]),  # coronal radiograph
        (([0, 1, 0], [0, 0, -1]), [1, 2]),  # sagittal
        (([0, -1, 0], [1, 0, 0]), [0, 1]),  # axial, rows and columns swapped
    ],
)
def test_plane_axes(columns: tuple, axes: list[int]) -> None:
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1] = columns
    assert plane_axes(affine) == axes


def test_plans_round_trip_and_legacy_settings_mean_the_old_behaviour() -> None:
    plan = derive_plan(fingerprint([FOV40] * 3), ImageConfig())
    assert ImagePlan.from_dict(plan.to_dict()) == plan
    legacy = ImagePlan.from_dict(
        {"dims": 2, "shape": [32, 32], "spacing": [11.0, 11.0], "window": [-160.0, 240.0]}
    )
    assert legacy.legacy and legacy.window == (-160.0, 240.0)
    assert legacy.spec_for("MR").method == IntensityMethod.WINDOW  # as before plans: one window for all
    assert set(legacy.intensity) == {ANY_MODALITY}
    with pytest.raises(PlanError, match="upgrade mmdx"):
        ImagePlan.from_dict({**plan.to_dict(), "version": 99})


def test_a_volume_under_a_2d_plan_gives_its_centre_slice() -> None:
    volume = np.zeros((20, 20, 9), np.float32)
    volume[:, :, 4] = 1000.0
    plan = ImagePlan.from_config(ImageConfig(dims=2, shape=[16, 16], spacing=None, intensity="window"))
    image, grid = preprocess_volume(volume, np.eye(4), plan)
    assert image.shape == (1, 16, 16) and grid.shape == (3, 3) and image.min() == 1.0
    with pytest.raises(PlanError, match="2D image"):
        preprocess_volume(
            volume[:, :, 0],
            np.eye(4),
            ImagePlan.from_config(ImageConfig(dims=3, shape=[16] * 3, spacing=None)),
        )


# ------------------------------------------------------------------------------------------------------
# real files: what the model sees of them
# ------------------------------------------------------------------------------------------------------
def _planned(name: str):
    """A real file preprocessed under the plan fitted to it alone (default settings), with the share of the
    grid its field of view covers, measured by preprocessing a mask of ones."""
    volume = read_image(get_testdata_file(name))
    image_facts = facts_of(volume.array, volume.affine, volume.meta)
    plan = derive_plan(fingerprint([image_facts]), ImageConfig())
    modality, photometric = volume.meta["modality"], volume.meta["photometric_interpretation"]
    image, _ = preprocess_volume(
        volume.array, volume.affine, plan, modality=modality, photometric=photometric
    )
    ones, _ = preprocess_volume(np.ones_like(volume.array), volume.affine, plan, is_mask=True)
    return volume, plan, image[0], float(ones.mean())


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "RG1_UNCI.dcm"])
def test_real_images_fill_the_grid_and_are_not_a_uniform_block(name: str) -> None:
    _, plan, image, coverage = _planned(name)
    assert coverage > 0.95  # was a 2 x 2 (MR_small) or 8 x 8 (CT_small) block on the demo's 352 mm grid
    assert image.std() > 0.08 and len(np.unique(image.round(3))) > 100
    assert (image >= 1.0).mean() < 0.2 and (image <= 0.0).mean() < 0.5


def test_mr_small_is_z_scored_not_put_through_a_hu_window() -> None:
    volume, plan, image, _ = _planned("MR_small.dcm")
    assert plan.spec_for("MR").method == IntensityMethod.ZSCORE
    # through the HU window every MR value (127..2145) lands in the top fifth of [0, 1] or clips to white
    windowed, _ = preprocess_volume(
        volume.array,
        volume.affine,
        plan.__class__.from_dict(
            {"dims": 2, "shape": list(plan.shape), "spacing": list(plan.spacing), "window": [-1000, 400]}
        ),
    )
    assert windowed.min() > 0.75 and (windowed >= 0.999).mean() > 0.25
    assert image.std() > 2 * windowed.std() and (image >= 0.999).mean() < (windowed >= 0.999).mean() / 2


def test_a_monochrome1_radiograph_is_inverted_not_white() -> None:
    volume, plan, image, _ = _planned("RG1_UNCI.dcm")
    assert volume.meta["photometric_interpretation"] == "MONOCHROME1" and volume.meta["modality"] == "CR"
    assert image.mean() < 0.8 and (image >= 0.999).mean() < 0.05  # was pure white through the HU window
    raw, _ = preprocess_volume(
        volume.array,
        volume.affine,
        ImagePlan.from_config(
            ImageConfig(dims=2, shape=list(plan.shape), spacing=list(plan.spacing), intensity="zscore")
        ),
    )
    # MONOCHROME1: low stored values are shown white, so the model input runs against the stored values
    assert np.corrcoef(image.ravel(), raw[0].ravel())[0, 1] < -0.9
