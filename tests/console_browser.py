"""A headless Chromium for the console's browser tests: Debian's ``chromium`` and ``chromedriver``.

Selenium is pointed at ``/usr/bin/chromedriver`` and ``/usr/bin/chromium`` explicitly (or at
``CHROMEDRIVER`` / ``CHROMIUM``), so selenium-manager never runs and nothing is downloaded. Without
them the tests skip with how to install them; under ``CI=true`` (``.ci/run``, which installs them
through ``make browser``) a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = "install them with `make browser` (sudo apt-get install -y chromium chromium-driver)"


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver), or None when either is missing."""
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if browser and driver and Path(browser).exists() and Path(driver).exists():
        return browser, driver
    return None


def require_browser() -> tuple[str, str]:
    """The browser paths; skip (fail under CI=true) when they are missing."""
    paths = browser_paths()
    if paths is None:
        message = f"the console's browser tests need Debian's chromium and chromedriver: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return paths


def make_driver(browser: str, driver: str, width: int = 1280, height: int = 900):
    """A headless Chrome session on Debian's chromium, never touching selenium-manager."""
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: selenium-manager must not download
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    arguments = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
    arguments += [f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"]
    for argument in arguments:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def submit(browser, button, timeout_s: float = 10.0) -> None:
    """Click a button that submits a form, then wait until the next page has loaded in its place.

    ``click()`` returns once the click is dispatched, before the POST and its redirect load: elements
    looked up right away can belong to the old page and go stale under the caller (a CI failure). The
    old page is marked with a script property; the next page does not have it. Checking an element
    handle of the old page instead (selenium's ``staleness_of``) races too: mid-navigation Chromium
    answers "Node with given id does not belong to the document", an error of another class.
    """
    from selenium.common.exceptions import WebDriverException  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    browser.execute_script("window.helplineOldPage = true;")
    button.click()
    WebDriverWait(browser, timeout_s, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script(
            "return window.helplineOldPage !== true && document.readyState === 'complete';"
        )
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_console(var: Path, token: str, docs_dir: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """``bot console`` in a child process on a free port; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPLINE_", "TELEGRAM_"))}
    env.update(
        HELPLINE_CONSOLE_TOKEN=token, HELPLINE_DOCS_DIR=str(docs_dir), HELPLINE_DB=str(var / "helpline.db"),
        HELPLINE_INDEX_DIR=str(var / "index"), HELPLINE_MODEL_DIR=str(var / "model"),
        HELPLINE_RETRIEVAL_MODE="bm25",
    )  # fmt: skip
    command = [
        sys.executable,
        "-c",
        "from bot.cli import app; app(prog_name='bot')",
        "console",
        "--port",
        str(port),
    ]
    log = open(var / "console.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{url}/login", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"bot console did not start: {(var / 'console.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# Selects characters [start, end) of the stored text inside a selectable box the way a mouse does:
# finds the paragraph elements holding those offsets and sets the document's selection to that range.
SELECT_JS = """
const [boxSelector, start, end] = arguments;
const box = document.querySelector(boxSelector);
function locate(offset) {
  for (const para of box.querySelectorAll('.para')) {
    const from = Number(para.dataset.start);
    const node = para.firstChild;
    if (offset >= from && offset <= from + node.data.length) return [node, offset - from];
  }
  throw new Error('offset ' + offset + ' is in no paragraph');
}
const range = document.createRange();
range.setStart(...locate(start));
range.setEnd(...locate(end));
const selection = window.getSelection();
selection.removeAllRanges();
selection.addRange(range);
return selection.toString();
"""
