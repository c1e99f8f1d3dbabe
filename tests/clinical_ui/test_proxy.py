"""The reverse proxy of ``deploy/nginx`` in front of the real dashboard: Debian's nginx on 127.0.0.1 with the
shipped security configuration, the Streamlit server behind it, and headless Chromium through it."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import require_installed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NGINX = Path("/usr/sbin/nginx")
SECURITY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "mmdx-review-security.conf"
PASSWORD = "a proxy test password"
WAIT_S = 90


def _config(folder: Path, port: int, upstream: str) -> Path:
    """A minimal nginx.conf around the shipped security file: plain HTTP on 127.0.0.1, files in ``folder``."""
    host_port = upstream.split("://", 1)[1]
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream mmdx_review {{ server {host_port}; }}
    server {{
        listen 127.0.0.1:{port};
        include {SECURITY_CONF};
    }}
}}
"""
    )
    return conf


def _get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a local test URL
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def proxied(
    review_run, tmp_path_factory: pytest.TempPathFactory, serve_dashboard
) -> Iterator[tuple[str, str, str]]:
    """``(proxy_url, direct_url, store_url)``: the dashboard and nginx in front of it (one per module)."""
    require_installed((NGINX,), "nginx")
    from tests.clinical_ui.conftest import free_port

    served = tmp_path_factory.mktemp("proxied")
    with serve_dashboard(review_run.path, served, PASSWORD) as (direct, store_url):
        folder = served / "nginx"
        folder.mkdir()
        port = free_port()
        conf = _config(folder, port, direct)
        check = subprocess.run([str(NGINX), "-t", "-c", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        process = subprocess.Popen(
            [str(NGINX), "-c", str(conf), "-g", "daemon off;"], stderr=(folder / "stderr.log").open("w")
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while not _answers(f"{url}/_stcore/health"):
                assert process.poll() is None and time.monotonic() < deadline, (
                    folder / "error.log"
                ).read_text()
                time.sleep(0.2)
            yield url, direct, store_url
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_headers_metrics_and_media_through_the_proxy(proxied) -> None:
    url, direct, _ = proxied
    status, headers, body = _get(f"{url}/")
    assert status == 200 and b"<html" in body.lower()
    assert headers["X-Frame-Options"] == "DENY"
    policy = headers["Content-Security-Policy"]
    assert (
        "frame-ancestors 'none'" in policy and "default-src 'self'" in policy and "unsafe-eval" not in policy
    )
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert "nginx/" not in headers.get("Server", "")
    # Streamlit itself serves its metrics to anyone who can reach it; the proxy does not
    assert _get(f"{direct}/_stcore/metrics")[0] == 200
    assert _get(f"{url}/_stcore/metrics")[0] == 404
    assert _get(f"{url}/_stcore/agent/sessions")[0] == 404
    # media only for the dashboard's own page (a browser marks its requests Sec-Fetch-Site: same-origin)
    assert _get(f"{url}/media/0123456789abcdef.png")[0] == 403
    assert _get(f"{url}/media/0123456789abcdef.png", {"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert _get(f"{url}/media/0123456789abcdef.png", {"Sec-Fetch-Site": "same-origin"})[0] == 404


def test_the_dashboard_works_through_the_proxy_under_its_policy(proxied, chromium, tmp_path: Path) -> None:
    """Signed in through nginx, a case with an image renders with no Content-Security-Policy violation, its
    image inline (no URL that works outside the session), the client address reaches the trail, and a page
    of another origin cannot frame the dashboard."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from mmdx.store import AuditAction, Operator, ReviewStore, Role

    url, _, store_url = proxied
    browser = chromium(window_size="1400,2000", page_load_timeout_s=WAIT_S, console_log=True)
    console: list[str] = []

    def until(condition):
        try:
            return WebDriverWait(browser, WAIT_S).until(condition)
        except Exception:
            console.extend(entry["message"] for entry in browser.get_log("browser"))
            raise AssertionError(f"page stuck; browser console: {console}") from None

    wait = SimpleNamespace(until=until)
    browser.get(url)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[aria-label='User name']"))).send_keys(
        "clin"
    )
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Password']").send_keys(PASSWORD)
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[.//p[normalize-space()='Sign in']]"))).click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Worklist"))
    must_have = wait.until(  # keep the cases that have an image
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
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//button[.//p[normalize-space()='Open case']]"))
    ).click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Case "))
    image = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "div[data-testid='stImage'] img")))
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    console.extend(entry["message"] for entry in browser.get_log("browser"))
    violations = [m for m in console if "Content Security Policy" in m or "Content-Security-Policy" in m]
    assert violations == []
    # another site framing the dashboard gets nothing
    page = tmp_path / "framing.html"
    page.write_text(f'<html><body><iframe src="{url}/" width="800" height="600"></iframe></body></html>')
    browser.get(page.as_uri())
    time.sleep(3)
    refused = [e["message"] for e in browser.get_log("browser") if "frame-ancestors" in e["message"]]
    assert refused, "the dashboard was framed by another page"
    with ReviewStore(store_url) as store:
        store.add_user("audit.proxy", Role.AUDITOR, PASSWORD, actor=Operator("tests"))
        auditor = store.authenticate("audit.proxy", PASSWORD)
        (sign_in,) = [e for e in store.audit_events(auditor, action=AuditAction.SIGN_IN) if e.user == "clin"]
        assert sign_in.detail.get("client") == "127.0.0.1"  # the browser's address, passed on by nginx
