"""The studio in a real browser (Debian's chromium driven by Selenium over chromedriver) against a real
server on 127.0.0.1: marks made with the hotkeys survive a cut network and a reload (the export holds
each exactly once), and a level played with the keyboard becomes a demonstration BC trains on.

`PROTEGE_STUDIO_SCREENSHOT=docs/studio-viewer.png` also writes the viewer's screenshot there (the
README's picture); it is always written into the test's tmp_path.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import protege_cmd, protege_env
from tests.systems.feedback.conftest import PASSWORD, import_demos, serve_in_thread

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"),
    pytest.mark.timeout(180),
]
WAIT = 10  # seconds any one thing in the page may take
LEVEL = "BabyAI-GoToRedBall-v0"


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,860", f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, what: str, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id).text


def press(driver, *keys) -> None:
    """Keys typed at the page (the document's keydown handler), one at a time."""
    from selenium.webdriver.common.action_chains import ActionChains
    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def sign_in(driver, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver.get(base + "/")  # anonymous: redirected to the sign-in page
    assert driver.current_url == base + "/login"
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD, Keys.ENTER)
    wait_for(driver, lambda d: d.current_url.rstrip("/") == base and text(d, "who").startswith(name), "sign-in")


def page_errors(driver) -> list[str]:
    """Console errors of the page (CSP violations, exceptions), ignoring refused network requests
    the test itself caused."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
            and "ERR_INTERNET_DISCONNECTED" not in e["message"] and "ERR_BLOCKED" not in e["message"]]


def studio_cli(*args) -> str:
    """`protege studio ...` in-process (the real command, without a second interpreter start)."""
    import protege.systems.feedback.cli  # noqa: F401  registers `protege studio`
    from protege.core.cli import app
    result = CliRunner().invoke(app, ["studio", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def network(driver, *, offline: bool = False, blocked: tuple[str, ...] = ()) -> None:
    """Cut or restore the page's network (Chrome DevTools), or refuse only some URLs."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": list(blocked)})


def marks_on_screen(driver) -> list[str]:
    from selenium.webdriver.common.by import By
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#mark-list li")]


def test_hotkey_marks_survive_a_cut_network_and_a_reload(studio, bot_demos, browser, tmp_path):
    """Mark with the hotkeys, cut the network, keep marking (and undoing), reload while offline,
    come back with the mark requests still refused, mark once more, let the queue drain: the export
    holds every live mark exactly once and none of the undone ones."""
    from selenium.webdriver.common.keys import Keys
    import_demos(studio, bot_demos, limit=2)
    expected = []  # (step, kind, comment) of every mark that should be live at the end

    def mark(key: str, kind: str) -> None:
        step = int(text(browser, "step"))
        press(browser, key)
        expected.append((step, kind, ""))

    with serve_in_thread(studio.db, studio.media) as base:
        sign_in(browser, base, "ann")

        # 1. online: open the next episode, play it for a moment, mark progress and regress
        started = time.perf_counter()
        press(browser, "n")
        wait_for(browser, lambda d: text(d, "mission").startswith("go to the red ball"), "episode opens")
        length = int(text(browser, "length"))
        press(browser, Keys.SPACE)  # play at 1x (2 steps/s)
        wait_for(browser, lambda d: int(text(d, "step")) >= 2, "playback advances")
        press(browser, Keys.SPACE)
        mark("p", "progress")
        press(browser, Keys.ARROW_RIGHT)
        mark("r", "regress")
        wait_for(browser, lambda d: text(d, "queue-count") == "0", "marks acknowledged")
        seconds_online = time.perf_counter() - started

        # 2. offline: undo the acknowledged regress mark, mark progress, success (undone), regress
        network(browser, offline=True)
        press(browser, "z")
        expected.pop()
        press(browser, Keys.ARROW_RIGHT)
        mark("p", "progress")
        press(browser, "s", "z")  # a success mark, undone before it was ever sent
        press(browser, Keys.ARROW_RIGHT)
        mark("r", "regress")
        assert text(browser, "queue-count") == "4"  # undo(r), p, s (deleted), r: one entry per uuid
        assert len(marks_on_screen(browser)) == 3

        # 3. reload with the network cut: the page cannot even load, the queue stays in the browser
        browser.refresh()
        network(browser, blocked=("*/api/marks/*",))  # the pages load again; mark requests still fail
        browser.refresh()
        wait_for(browser, lambda d: text(d, "mission").startswith("go to the red ball"), "episode reopens")
        assert text(browser, "queue-count") == "4"
        on_screen = marks_on_screen(browser)  # the server's marks overlaid with the unsent ones
        assert len(on_screen) == 3 and sum("unsent" in item for item in on_screen) == 2
        press(browser, Keys.END)
        mark("f", "failure")
        comment = '<img src=x onerror=alert(1)> "ok" & done'  # shown as text, stored as typed
        browser.find_element("id", "comment").send_keys(comment, Keys.ENTER)
        expected[-1] = (length, "failure", comment)
        assert text(browser, "queue-count") == "5"

        # 4. the network is back: the queue drains within one retry period
        network(browser)
        wait_for(browser, lambda d: text(d, "queue-count") == "0", "the queue drains", timeout=6)
        assert any(comment in item for item in marks_on_screen(browser))
        browser.save_screenshot(str(tmp_path / "studio-viewer.png"))
        if os.environ.get("PROTEGE_STUDIO_SCREENSHOT"):
            shutil.copyfile(tmp_path / "studio-viewer.png", os.environ["PROTEGE_STUDIO_SCREENSHOT"])
        assert page_errors(browser) == []

    studio_cli("export", "--db", studio.db, "--out", tmp_path / "export")
    lines = (tmp_path / "export" / "marks.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "protege.feedback.marks", "version": 1}
    rows = [json.loads(line) for line in lines[1:]]
    assert len({r["uuid"] for r in rows}) == len(rows)  # every mark exactly once
    assert sorted((r["step"], r["kind"], r["comment"]) for r in rows) == sorted(expected)
    assert {r["user"] for r in rows} == {"ann"}
    print(f"\nmarking one {length}-step episode online (open, play, 2 hotkey marks, acknowledged): "
          f"{seconds_online:.2f} s")
