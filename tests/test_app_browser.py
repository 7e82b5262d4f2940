"""The chat page in a real browser: Debian's Chromium, driven by Selenium, against `faceqa app` on loopback.

Every wait is on a page condition (text, the script's run state that Streamlit puts on its root
element, an image loaded, a file downloaded), never on time.
"""

from __future__ import annotations

import json
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
CRASHERS = Path(__file__).resolve().parent / "data" / "crashers"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                  "--window-size=1500,1100"]
MESSAGES = '[data-testid="stChatMessage"]'
HIGHLIGHT = (255, 190, 0)  # faceqa.vlm.marks.HIGHLIGHT, the drawing the page shows
PLAIN = (64, 160, 255)
TRACEBACK_SIGNS = ("Traceback", 'File "', ".py", "/work/", "site-packages", "Error:")

# Inside the viewport, give or take the one pixel of sub-pixel layout that scrolling leaves (seen: 957.23 of 957).
IN_VIEW = """
const r = arguments[0].getBoundingClientRect();
return r.height > 0 && r.top >= -1 && r.left >= -1 && r.bottom <= innerHeight + 1 && r.right <= innerWidth + 1;
"""
RECT = """
const r = arguments[0].getBoundingClientRect();
return [r.top, r.bottom, r.left, r.right, innerHeight, innerWidth].map(Math.round);
"""
# The colour the page shows at image pixel (x, y), read back from the <img> the browser painted.
PIXEL = """
const [img, x, y] = arguments;
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const context = canvas.getContext('2d');
context.drawImage(img, 0, 0);
return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
"""


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
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


class Page:
    """One browser session of the chat page, with waits on what the page shows."""

    def __init__(self, browser, url: str):
        from selenium.webdriver.support.ui import WebDriverWait

        self.browser = browser
        self.wait = WebDriverWait(browser, 120)
        browser.get(url)
        self.idle()

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.browser.find_element(By.TAG_NAME, "body").text

    def idle(self) -> None:
        """The script has finished its run (Streamlit marks its root element) and the page is connected."""
        self.wait.until(lambda b: self.find('[data-testid="stApp"][data-test-script-state="notRunning"]'))

    def last_answer(self) -> str:
        """The text of the latest message (its first paragraph block: the reply, without avatar or details)."""
        messages = self.find(MESSAGES)
        blocks = messages[-1].find_elements("css selector", '[data-testid="stMarkdownContainer"]') if messages else []
        return blocks[0].text if blocks else ""

    def until_answer(self, before: int, expected: str) -> str:
        self.wait.until(lambda b: len(self.find(MESSAGES)) >= before + 2 and expected in self.last_answer())
        self.idle()
        return self.last_answer()

    def ask(self, question: str, expected: str) -> str:
        from selenium.webdriver.common.keys import Keys

        before = len(self.find(MESSAGES))
        box = self.wait.until(lambda b: self.find("textarea"))[0]
        box.send_keys(question, Keys.ENTER)
        return self.until_answer(before, expected)

    def click(self, label: str) -> None:
        from selenium.webdriver.common.by import By

        self.wait.until(lambda b: b.find_elements(By.XPATH, f"//button[normalize-space()={label!r}]"))[0].click()

    def photo(self, highlighted: str):
        """The annotated photo once the page shows it with `highlighted` in its caption and it has loaded."""
        from selenium.webdriver.common.by import By

        def loaded(browser):
            for figure in self.find('.st-key-photo_panel [data-testid="stImage"]'):
                if highlighted in figure.text:
                    img = figure.find_element(By.TAG_NAME, "img")
                    if browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img):
                        return img
            return False

        return self.wait.until(loaded)

    def read_latest(self):
        """Scroll to the latest answer as a reader does, and return it.

        Streamlit scrolls to new chat messages itself, but not reliably while the machine is loaded (a layout
        shift after the scroll can leave the answer below the fold), and that scrolling is not ours to test: the
        page's promise is that the photo stays in view while the latest answer is read.
        """
        latest = self.find(MESSAGES)[-1]
        self.browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", latest)
        return latest

    def in_view(self, element, what: str) -> None:
        """`element` comes to rest inside the viewport."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            WebDriverWait(self.browser, 20).until(lambda b: b.execute_script(IN_VIEW, element))
        except TimeoutException:
            edges = self.browser.execute_script(RECT, element)
            pytest.fail(f"{what} is not in view (top, bottom, left, right; viewport height, width: {edges})")

    def upload(self, *paths: Path) -> None:
        self.wait.until(lambda b: self.find("input[type=file]"))[0].send_keys("\n".join(map(str, paths)))


def _close(colour, expected, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def _top_edge(face) -> tuple[int, int]:
    x, y, w, _ = face.box
    return x + w // 2, y + 1


def test_the_highlighted_photo_stays_in_view_through_a_conversation(page_url, browser, group_report, downloads):
    page = Page(browser, page_url)
    before = len(page.find(MESSAGES))
    page.click("Who is the oldest? (group photo)")  # an example question on the empty conversation
    oldest = max(group_report.faces, key=lambda f: f.age.years)
    assert "looks the oldest" in page.until_answer(before, f"Person {oldest.id}")

    page.ask("How old is the person on the left?", f"Person 1 (far left) appears {group_report.faces[0].age.group}")
    page.ask("and the person next to him?", "Person 2")
    page.ask("Explain her expression step by step", "Person 2")
    page.ask("Who is smiling?", "look happy")
    before = len(page.find(MESSAGES))
    page.click("Person 3")  # the face's own button
    assert page.until_answer(before, "Person 3").startswith("Person 3")
    assert page.find(MESSAGES)[-2].text.endswith("Tell me about person 3")
    reply = page.ask("Explain his expression step by step", "Person 3")
    assert "Key observations" not in reply  # the detail is in the expander, not the reply

    photo = page.photo(highlighted="highlighted: person 3")
    page.in_view(page.read_latest(), "the latest answer")
    page.in_view(photo, "the photo with the highlighted face")
    third, first = group_report.faces[2], group_report.faces[0]
    assert _close(browser.execute_script(PIXEL, photo, *_top_edge(third)), HIGHLIGHT)
    assert _close(browser.execute_script(PIXEL, photo, *_top_edge(first)), PLAIN)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "chat_page.png"))  # the README's screenshot (docs/chat_page.png)

    page.find(MESSAGES)[-1].find_element("css selector", "details summary").click()
    page.wait.until(lambda b: "Key observations" in page.find(MESSAGES)[-1].text)  # the detail, once opened
    for part in ("stDataFrame", "stVegaLiteChart"):  # the AU bars and the emotion distribution, drawn in it
        page.wait.until(lambda b, part=part: page.find(MESSAGES)[-1].find_elements("css selector",
                                                                                   f'[data-testid="{part}"]'))
    page.idle()
    page.in_view(page.photo(highlighted="highlighted: person 3"), "the photo, with the details open,")

    page.click("Download the face reports (JSON)")
    saved = downloads / "group.faces.json"
    page.wait.until(lambda b: saved.exists() and saved.stat().st_size > 0)
    report = json.loads(saved.read_text())
    assert [face["box"] for face in report["faces"]] == [list(face.box) for face in group_report.faces]
    assert not any("embedding" in face for face in report["faces"])  # biometric templates never leave the page

    assert not any(sign in page.text() for sign in TRACEBACK_SIGNS)
    assert browser.save_screenshot(str(ARTIFACTS / "chat_page_details.png"))


def test_two_photos_switch_with_tabs_that_follow_the_answer(page_url, browser, examples, group_report):
    page = Page(browser, page_url)
    page.upload(examples / "group.jpg", examples / "astronaut.png")
    page.wait.until(lambda b: "(photo 2)" in page.text())
    page.idle()
    selected = '[role="tab"][aria-selected="true"]'
    assert [tab.text for tab in page.find(selected)] == ["Photo 2"]  # the photo just added
    page.ask("Explain the expression of person 3 in photo 1", "Person 3 in photo 1")
    assert [tab.text for tab in page.find(selected)] == ["Photo 1"]
    photo = page.photo(highlighted="highlighted: person 3")
    page.in_view(photo, "the photo the answer is about")
    assert _close(browser.execute_script(PIXEL, photo, *_top_edge(group_report.faces[2])), HIGHLIGHT)
    page.ask("How old is the person in photo 2?", "photo 2")
    assert [tab.text for tab in page.find(selected)] == ["Photo 2"]
    assert "astronaut.png" in page.photo(highlighted="highlighted: person 1").find_element(
        "xpath", "./ancestor::*[@data-testid='stImage']").text


def test_a_broken_upload_gets_a_friendly_message_and_no_traceback(page_url, browser, examples, tmp_path):
    page = Page(browser, page_url)
    truncated = tmp_path / "holiday.jpg"
    truncated.write_bytes((examples / "group.jpg").read_bytes()[:2000])
    text_file = tmp_path / "notes.png"
    text_file.write_bytes(b"not a picture at all\n" * 50)
    crafted = CRASHERS / "avif-runtimeerror-color-planes.avif"  # once crashed the decoder (tests/test_fuzz.py)
    page.upload(truncated, text_file, crafted)
    page.wait.until(lambda b: page.find('[data-testid="stException"]') or all(
        f"can't use {name}" in page.text() for name in ("holiday.jpg", "notes.png", crafted.name)))
    page.idle()
    assert not page.find('[data-testid="stException"]')
    assert len(page.find(MESSAGES)) == 3  # one note per file (the welcome gives way to them)
    assert not any(sign in page.text() for sign in TRACEBACK_SIGNS), page.text()
    assert "Add a photo first" in page.ask("How many people are there?", "Add a photo first")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "chat_page_broken_upload.png"))


def test_phone_width_puts_the_photo_first_and_keeps_it_in_view(page_url, browser, examples, group_report):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        page = Page(browser, page_url)
        page.upload(examples / "group.jpg")
        page.wait.until(lambda b: "4 faces" in page.text())
        page.idle()
        before = len(page.find(MESSAGES))
        page.click("Who is the oldest?")  # an example question offered for this photo
        assert "looks the oldest" in page.until_answer(before, "looks the oldest")
        page.ask("How old is the person on the left?", "Person 1")
        page.ask("Explain his expression step by step", "Person 1")
        photo = page.photo(highlighted="highlighted: person 1")
        page.in_view(page.read_latest(), "the latest answer")
        page.in_view(photo, "the photo with the highlighted face")
        top_of = "return arguments[0].getBoundingClientRect().top"
        assert browser.execute_script(top_of, photo) < browser.execute_script(top_of, page.find(MESSAGES)[-1])
        assert browser.execute_script("return document.documentElement.scrollWidth <= innerWidth")
        assert _close(browser.execute_script(PIXEL, photo, *_top_edge(group_report.faces[0])), HIGHLIGHT)
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "chat_page_phone.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
