"""One real browser session: headless Chromium drives ``mmdx review``'s server on a 3D run.

It signs in, keeps the cases that have an image, opens the highest-risk one, moves the slice slider,
submits a verdict, checks the store, and saves a screenshot under the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mmdx.review import run_id_of
from mmdx.store import AuditAction, Operator, ReviewStore, Role, Verdict

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a browser password"
WAIT_S = 90


@pytest.fixture
def browser(chromium, tmp_path: Path):
    driver = chromium(window_size="1400,2200", page_load_timeout_s=WAIT_S)
    try:
        yield driver
    finally:
        driver.save_screenshot(str(tmp_path / "last_screen.png"))  # the state at the end, also on failure


@pytest.fixture
def server(review_run_3d, tmp_path: Path, serve_dashboard) -> Iterator[tuple[str, str]]:
    with serve_dashboard(review_run_3d.path, tmp_path, PASSWORD) as served:
        yield served


def _sign_in(browser, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    browser.get(url)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='User name']"))).send_keys(
        "clin"
    )
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Password']").send_keys(PASSWORD)
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[.//p[normalize-space()='Sign in']]"))).click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Worklist"))


def test_review_a_case_in_a_real_browser(server, browser, review_run_3d, tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, store_url = server
    # Streamlit replaces the page's elements on each rerun (a slider move, a click): on a busy machine a rerun
    # may still be under way when the next element is looked up, so every lookup waits and looks again
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def button(text: str):
        return wait.until(
            ec.element_to_be_clickable((By.XPATH, f"//button[.//p[normalize-space()={text!r}]]"))
        )

    def heading(text: str) -> None:
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), text))

    browser.get(url)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='User name']"))).send_keys(
        "clin"
    )
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='Password']"))).send_keys(
        PASSWORD
    )
    button("Sign in").click()
    heading("Worklist")

    # keep the cases that have an image; the default order is highest risk first
    must_have = wait.until(
        ec.element_to_be_clickable(
            (By.XPATH, "//div[@data-testid='stMultiSelect'][.//p[normalize-space()='Must have']]//input")
        )
    )
    must_have.click()
    must_have.send_keys("Image")
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//*[@role='option'][normalize-space()='Image']"))
    ).click()
    must_have.send_keys(Keys.ESCAPE)
    predictions = pd.read_parquet(review_run_3d.path / "predictions.parquet").set_index("case_id")
    # by default the worklist holds the cases to review: the test split and unlabelled cases
    to_review = predictions["has_image"] & (predictions["split"].eq("test") | predictions["label"].isna())
    expected = predictions.loc[to_review, "probability"].idxmax()
    count = f"{int(to_review.sum())} of {len(predictions)} cases"
    wait.until(ec.presence_of_element_located((By.XPATH, f"//p[normalize-space()={count!r}]")))
    button("Open case").click()
    heading(f"Case {expected}")

    # the slider is a visually hidden range input; keys go to it once it has the focus
    slider_css = "input[type='range'][aria-label^='Axial slice']"
    slider = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, slider_css)))
    image_css = "div[data-testid='stImage'] img"
    before_slice = slider.get_attribute("value")
    # the page draws the slider before the image: wait for the image too
    before_src = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, image_css))).get_attribute("src")
    target = 1 if before_slice != "1" else 2  # the default is the slice with the most attribution
    # the slider counts slices from 1: Home goes to 1, each arrow one further
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", slider)
    ActionChains(browser).send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * (target - 1)).perform()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, slider_css).get_attribute("value") == str(target))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, image_css).get_attribute("src") != before_src)

    agree = wait.until(
        ec.element_to_be_clickable((By.XPATH, "//label[.//p[normalize-space()='Agree with the model']]"))
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", agree)
    agree.click()
    comment = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea[aria-label='Comment (optional)']"))
    )
    comment.send_keys("reviewed in the browser test")
    button("Submit verdict").click()
    wait.until(ec.presence_of_element_located((By.XPATH, "//div[@data-testid='stAlertContentSuccess']")))
    browser.save_screenshot(str(tmp_path / "case_review.png"))

    with ReviewStore(store_url) as store:
        clin = store.authenticate("clin", PASSWORD)
        run_id = run_id_of(review_run_3d.path)
        (record,) = store.verdict_history(clin, run_id, expected)
        assert (record.user, record.verdict, record.comment) == (
            "clin",
            Verdict.AGREE,
            "reviewed in the browser test",
        )
        store.add_user("audit.check", Role.AUDITOR, PASSWORD, actor=Operator("tests"))
        auditor = store.authenticate("audit.check", PASSWORD)
        opened = store.audit_events(auditor, action=AuditAction.OPEN_CASE)
        assert [(e.user, e.case_id) for e in opened] == [("clin", expected)]
    assert (tmp_path / "case_review.png").stat().st_size > 10_000


def test_an_abandoned_screen_is_cleared(browser, review_run, tmp_path: Path, serve_dashboard) -> None:
    """Signed in and left alone, the page returns to the sign-in form by itself once the idle timeout has
    passed, and the trail records the timeout."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with serve_dashboard(review_run.path, tmp_path, PASSWORD, idle_timeout_s=4) as (url, store_url):
        _sign_in(browser, url)
        WebDriverWait(browser, 60).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='User name']"))
        )
        # the sign-in form and the sentence saying why may arrive in separate renders of the page
        WebDriverWait(browser, 20).until(
            ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "without activity")
        )
        with ReviewStore(store_url) as store:
            store.add_user("audit.check", Role.AUDITOR, PASSWORD, actor=Operator("tests"))
            auditor = store.authenticate("audit.check", PASSWORD)
            (event,) = store.audit_events(auditor, action=AuditAction.SESSION_TIMEOUT)
            assert event.user == "clin"
