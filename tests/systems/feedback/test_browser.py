"""The studio in a real browser (Debian's chromium driven by Selenium over chromedriver) against a real
server on 127.0.0.1: marks made with the hotkeys survive a cut network and a reload (the export holds
each exactly once), and a level played with the keyboard becomes a demonstration BC trains on.

`PROTEGE_STUDIO_SCREENSHOT=docs/studio-viewer.png` also writes the viewer's screenshot there (the
README's picture); it is always written into the test's tmp_path.
"""

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

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


def protege(*args) -> str:
    """The `protege` command in-process (every command registered, no second interpreter start)."""
    from protege.cli.main import load_commands
    from protege.core.cli import app
    load_commands()
    result = CliRunner().invoke(app, list(map(str, args)), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def network(driver, *, offline: bool = False, blocked: tuple[str, ...] = ()) -> None:
    """Cut or restore the page's network (Chrome DevTools), or refuse only some URLs."""
    driver.execute_cdp_cmd("Network.enable", {})
    # the block first: coming back online fires the page's `online` event, and its queue retries at
    # once, before a block set afterwards would be in place
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": list(blocked)})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def marks_on_screen(driver) -> list[str]:
    from selenium.webdriver.common.by import By
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#mark-list li")]


def admin_row(driver, user: str) -> dict:
    """The admin page's table row of `user`, as {column: text}."""
    from selenium.webdriver.common.by import By
    for table in driver.find_elements(By.CSS_SELECTOR, "#progress table"):
        columns = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
            row = dict(zip(columns, (td.text for td in tr.find_elements(By.TAG_NAME, "td"))))
            if row.get("user") == user:
                return row
    return {}


def test_hotkey_marks_survive_a_cut_network_and_a_reload(studio, bot_demos, browser, tmp_path):
    """Mark with the hotkeys, cut the network, keep marking (and undoing), reload while offline,
    come back with the mark requests still refused, mark once more, let the queue drain: the export
    holds every live mark exactly once and none of the undone ones."""
    from selenium.webdriver.common.by import By
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
        wait_for(browser, lambda d: text(d, "mission").startswith("go to"), "episode opens")
        mission = text(browser, "mission")
        length = int(text(browser, "length"))
        press(browser, Keys.SPACE)  # play at 1x (2 steps/s)
        wait_for(browser, lambda d: int(text(d, "step")) >= 2, "playback advances")
        press(browser, Keys.SPACE)
        mark("p", "progress")
        press(browser, Keys.ARROW_RIGHT)
        mark("r", "regress")
        wait_for(browser, lambda d: text(d, "queue-count") == "0", "marks acknowledged")
        seconds_online = time.perf_counter() - started

        # 2. offline: undo the acknowledged regress mark, mark progress, failure (undone), regress
        network(browser, offline=True)
        press(browser, "z")
        expected.pop()
        press(browser, Keys.ARROW_RIGHT)
        mark("p", "progress")
        press(browser, "f", "z")  # a failure mark, undone before it was ever sent
        press(browser, Keys.ARROW_RIGHT)
        mark("r", "regress")
        assert text(browser, "queue-count") == "4"  # undo(r), p, f (deleted), r: one entry per uuid
        assert len(marks_on_screen(browser)) == 3

        # 3. reload while the mark requests are still cut (the pages themselves load): the queue
        # lives in the browser, not the page. (An offline reload lands on Chrome's error page in
        # another renderer, whose requests a DevTools URL block set afterwards does not reliably
        # cover, so the cut for the reload is a URL block on this tab, set before it.)
        network(browser, blocked=("*/api/marks/*",))
        browser.refresh()
        wait_for(browser, lambda d: text(d, "mission") == mission, "episode reopens")
        assert text(browser, "queue-count") == "4"
        on_screen = marks_on_screen(browser)  # the server's marks overlaid with the unsent ones
        assert len(on_screen) == 3 and sum("unsent" in item for item in on_screen) == 2
        press(browser, Keys.END)
        mark("s", "success")  # with a comment typed into the page
        comment = 'stops facing the <red ball> & "done"'  # markup characters: shown as text, stored as typed
        browser.find_element(By.ID, "comment").send_keys(comment, Keys.ENTER)
        expected[-1] = (length, "success", comment)
        assert text(browser, "queue-count") == "5"

        # 4. the network is back: the queue drains within one retry period
        network(browser)
        wait_for(browser, lambda d: text(d, "queue-count") == "0", "the queue drains", timeout=6)
        assert any(comment in item for item in marks_on_screen(browser))
        browser.save_screenshot(str(tmp_path / "studio-viewer.png"))
        if os.environ.get("PROTEGE_STUDIO_SCREENSHOT"):
            shutil.copyfile(tmp_path / "studio-viewer.png", os.environ["PROTEGE_STUDIO_SCREENSHOT"])
        assert page_errors(browser) == []

        # 5. the admin page counts ann's live marks
        browser.find_element(By.ID, "logout").click()
        wait_for(browser, lambda d: d.current_url == base + "/login", "signed out")
        sign_in(browser, base, "admin")
        browser.get(base + "/admin")
        wait_for(browser, lambda d: admin_row(d, "ann").get("marks") == str(len(expected)),
                 "the admin page counts ann's marks")
        assert page_errors(browser) == []

    protege("studio", "export", "--db", studio.db, "--out", tmp_path / "export")
    lines = (tmp_path / "export" / "marks.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "protege.feedback.marks", "version": 1}
    rows = [json.loads(line) for line in lines[1:]]
    assert len({r["uuid"] for r in rows}) == len(rows)  # every mark exactly once
    assert sorted((r["step"], r["kind"], r["comment"]) for r in rows) == sorted(expected)
    assert {r["user"] for r in rows} == {"ann"}
    print(f"\nmarking one {length}-step episode online (open, play, 2 hotkey marks, acknowledged): "
          f"{seconds_online:.2f} s")


def play_keys(actions: list[int]) -> list[str]:
    """MiniGrid's action numbers -> the keys of the play page."""
    from selenium.webdriver.common.keys import Keys
    keys = {0: Keys.ARROW_LEFT, 1: Keys.ARROW_RIGHT, 2: Keys.ARROW_UP, 3: "k", 4: "d", 5: "t", 6: Keys.ENTER}
    return [keys[a] for a in actions]


def bot_actions(level: str, seed: int) -> tuple[str, list[int]]:
    """The mission and the BabyAI bot's solution of `level` from `seed` (the keys the test's player
    presses)."""
    from minigrid.utils.baby_ai_bot import BabyAIBot

    from protege.worlds.babyai.levels import make_env
    env = make_env(level)
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints the layouts it rejects
        obs, _ = env.reset(seed=seed)
    bot, actions, done = BabyAIBot(env.unwrapped), [], False
    while not done:
        actions.append(int(bot.replan()))
        _, reward, terminated, truncated, _ = env.step(actions[-1])
        done = terminated or truncated
    assert terminated and reward > 0, "the bot should solve this seed"
    return obs["mission"], actions


def test_play_a_level_to_success_then_train_bc_on_it(studio, browser, tmp_path, monkeypatch):
    """A person plays GoToRedBall with the keyboard (the keys the BabyAI bot would press), losing the
    network for a few key presses (they wait and are retried in order); the play is exported as a
    demonstrations dataset, and `protege run babyai_bc` trains on it."""
    from selenium.webdriver.common.by import By

    from protege.worlds.babyai.demos import read_episodes
    seed = 14  # a 13-step solution: turns and forward moves
    mission, actions = bot_actions(LEVEL, seed)
    keys = play_keys(actions)
    with serve_in_thread(studio.db, studio.media) as base:
        sign_in(browser, base, "bob")
        browser.get(base + "/play")
        browser.find_element(By.ID, "seed").send_keys(str(seed))
        browser.find_element(By.ID, "start").click()
        wait_for(browser, lambda d: text(d, "mission") == mission, "the level starts")
        started = time.perf_counter()
        press(browser, *keys[:5])
        wait_for(browser, lambda d: text(d, "step") == "5", "five steps played")
        network(browser, offline=True)
        press(browser, *keys[5:9])
        wait_for(browser, lambda d: text(d, "status").startswith("Connection problem"), "the step waits")
        assert text(browser, "step") == "5" and text(browser, "pending") == "4"
        network(browser)
        press(browser, *keys[9:])
        wait_for(browser, lambda d: text(d, "outcome").startswith("success"), "the play succeeds")
        seconds = time.perf_counter() - started
        assert text(browser, "step") == str(len(actions)) and text(browser, "pending") == "0"
        assert page_errors(browser) == []

    protege("studio", "export", "--db", studio.db, "--demos", tmp_path / "demos")
    [episode] = read_episodes(tmp_path / "demos")
    assert episode.actions.tolist() == actions
    monkeypatch.chdir(tmp_path)
    protege("run", "babyai_bc", f"demos={tmp_path / 'demos'}", "n_demos=1", "name=bc-people", "trainer.steps=5",
            "trainer.batch_size=4", "trainer.warmup_steps=0", "trainer.log_every=1", "trainer.checkpoint_every=5",
            "policy.dim=16", "policy.n_film=1", "eval_episodes=0")
    summary = json.loads((tmp_path / "runs" / "bc-people" / "summary.json").read_text())
    assert summary["demos"] == 1 and summary["train/loss"] > 0
    print(f"\nplaying {LEVEL} seed {seed} to success with {len(actions)} key presses: {seconds:.2f} s")
