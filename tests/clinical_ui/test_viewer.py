"""The image viewer in a real browser: a 3D case in three planes at native resolution with its overlay, and
real CT and MR files (pydicom's CT_small and MR_small) shown legibly. Screenshots are kept as artefacts:
in the test's temporary folder, and in ``$MMDX_SCREENSHOT_DIR`` when it is set (CI uploads that folder).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmdx.bundle import read_bundle_identity
from mmdx.explain.artifacts import case_folder_name

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a browser password"
WAIT_S = 90
IMAGE_CSS = "div[data-testid='stImage'] img"


def _cohort_with_real_files(run: Path, folder: Path) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the run and of its cohort in which two test-split cases hold pydicom's CT_small and MR_small
    (unexplained: their placeholder maps belonged to the synthetic images). Returns the run, the cohort and
    ``{"CT": case, "MR": case}``."""
    from pydicom.data import get_testdata_file

    cohort = Path(read_bundle_identity(run / "bundle").card["cohort"]["path"])
    run_copy, cohort_copy = folder / "run", folder / "cohort"
    shutil.copytree(run, run_copy, ignore=shutil.ignore_patterns("review.sqlite*"))
    shutil.copytree(cohort, cohort_copy)
    predictions = pd.read_parquet(run / "predictions.parquet")
    candidates = predictions.loc[
        predictions["has_image"] & predictions["split"].eq("test"), "case_id"
    ].tolist()
    cases = {"CT": candidates[0], "MR": candidates[1]}
    table = pd.read_csv(cohort_copy / "cases.csv", dtype=str, keep_default_na=False)
    for modality, case_id in cases.items():
        name = f"{modality}_small.dcm"
        shutil.copy(get_testdata_file(name), cohort_copy / name)
        table.loc[table["case_id"] == case_id, "image"] = name
        shutil.rmtree(run_copy / "explanations" / case_folder_name(case_id))
    table.to_csv(cohort_copy / "cases.csv", index=False)
    return run_copy, cohort_copy, cases


def _keep(browser, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    browser.save_screenshot(str(path))
    extra = os.environ.get("MMDX_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def _picture(element) -> np.ndarray:
    """The PNG the browser received for an image element (its inline data URL), as grey levels."""
    src = element.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L"))


@pytest.fixture
def browser(chromium, tmp_path: Path):
    driver = chromium(window_size="1400,1300", page_load_timeout_s=WAIT_S)
    try:
        yield driver
    finally:
        driver.save_screenshot(str(tmp_path / "last_screen.png"))  # the state at the end, also on failure


def test_the_viewer_shows_three_planes_and_real_ct_and_mr(
    browser, review_run_3d, tmp_path: Path, serve_dashboard
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    run, cohort, real = _cohort_with_real_files(review_run_3d.path, tmp_path)
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def button(text: str):
        return wait.until(
            ec.element_to_be_clickable((By.XPATH, f"//button[.//p[normalize-space()={text!r}]]"))
        )

    n_cases = len(pd.read_parquet(run / "predictions.parquet"))

    def open_case(case_id: str) -> None:
        search = wait.until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label='Case id contains']"))
        )
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(case_id, Keys.ENTER)
        one = f"1 of {n_cases} cases"
        wait.until(ec.presence_of_element_located((By.XPATH, f"//p[normalize-space()={one!r}]")))
        button("Open case").click()
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), f"Case {case_id}"))

    def images(count: int) -> list:
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, IMAGE_CSS)) == count)
        found = browser.find_elements(By.CSS_SELECTOR, IMAGE_CSS)
        heading = browser.find_element(By.XPATH, "//h3[normalize-space()='Image']")
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", heading)
        return found

    with serve_dashboard(run, tmp_path, PASSWORD, cohort_dir=cohort) as (url, _):
        browser.get(url)
        wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='User name']"))
        ).send_keys("clin")
        wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='Password']"))
        ).send_keys(PASSWORD)
        button("Sign in").click()
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Worklist"))
        # the cases to review by default: the test split (this run has no unlabelled case)
        chip = "//div[@data-testid='stMultiSelect'][.//p[normalize-space()='Cases']]//span[contains(., 'test split')]"
        wait.until(ec.presence_of_element_located((By.XPATH, chip)))
        _keep(browser, tmp_path, "worklist.png")

        # a 3D case: three planes of the volume at its own resolution, each opened at its slice with the
        # most attribution, with the overlay and its colour bar in calibrated-logit units
        predictions = pd.read_parquet(run / "predictions.parquet").set_index("case_id")
        volume_case = next(
            c
            for c in predictions.index[predictions["has_image"] & predictions["split"].eq("test")]
            if c not in real.values()
        )
        open_case(volume_case)
        planes = images(3)
        for label in ("Axial slice", "Coronal slice", "Sagittal slice"):
            browser.find_element(By.CSS_SELECTOR, f"input[type='range'][aria-label^='{label}']")
        bar = browser.find_element(By.CSS_SELECTOR, "div.mmdx-colour-bar")
        assert "calibrated logit" in bar.text
        overlaid = [_picture(p) for p in planes]
        assert all(min(p.shape) >= 100 for p in overlaid)
        _keep(browser, tmp_path, "viewer_3d_three_planes.png")

        # real files: CT_small (128² pixels of 0.66 mm) and MR_small (64² of 0.31 mm), legible
        for modality, case_id in real.items():
            worklist = "//a[@data-testid='stSidebarNavLink'][contains(normalize-space(), 'Worklist')]"
            wait.until(ec.element_to_be_clickable((By.XPATH, worklist))).click()  # as a reviewer goes back
            wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Worklist"))
            open_case(case_id)
            (picture,) = images(1)
            grey = _picture(picture)
            assert max(grey.shape) >= 384  # enlarged pixel for pixel, not an 8×8 block
            assert np.percentile(grey, 95) - np.percentile(grey, 5) > 100  # neither blank nor one grey
            assert 0.05 < (grey > 128).mean() < 0.95
            assert "not explained" in browser.find_element(By.TAG_NAME, "body").text
            _keep(browser, tmp_path, f"viewer_{modality.lower()}_small.png")
