"""The chat page in a real browser: Debian's Chromium, driven by Selenium, against `faceqa app` on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                  "--window-size=1500,1100"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page_url():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "faceqa", "app", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"faceqa app did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def test_upload_ask_and_see_the_highlighted_answer(page_url, browser, examples, group_report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(page_url)
    upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
    upload.send_keys(str(examples / "group.jpg"))
    wait.until(lambda b: "4 faces" in b.find_element(By.TAG_NAME, "body").text)
    box = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "textarea")))
    box.send_keys("How old is the person on the left?", Keys.ENTER)
    expected = group_report.faces[0].age.group
    wait.until(lambda b: f"Person 1 (far left) appears {expected}" in b.find_element(By.TAG_NAME, "body").text)
    photos = browser.find_elements(By.CSS_SELECTOR, "img")
    assert any(p.size["width"] > 300 for p in photos), "the annotated photo is not on the page"
    assert "Photo 1: group.jpg" in browser.find_element(By.TAG_NAME, "body").text
    ARTIFACTS.mkdir(exist_ok=True)
    time.sleep(1)  # let the highlighted photo finish painting
    assert browser.save_screenshot(str(ARTIFACTS / "chat_page.png"))
    assert os.path.getsize(ARTIFACTS / "chat_page.png") > 20_000
