"""The console in a real headless browser, and ``bot console`` as a running server.

Chromium drives the real pages served by ``bot console`` on a free port: log in, select an answer in a
bundled document with the mouse's selection API, type the question, save, see it listed, export, and
``finetune check`` the export. The server-level checks (401, 201, 422, escaping, export) run against
the same process over plain HTTP.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.store import Store
from finetune.cli import app as finetune_app
from retrieval.ingest import read_document
from tests.bot_fakes import make_settings
from tests.console_browser import ROOT, SELECT_JS, make_driver, require_browser, running_console, submit
from tests.console_fixtures import log_feedback

TOKEN = "browser-test-token-9f8e7d"
DOCS = ROOT / "data" / "docs"
DOC_ID = "gard-0000849-brittle-diabetes.md"
ANSWER = "severe instability of blood glucose levels"
SCRIPT_QUESTION = "<script>alert(1)</script> is brittle diabetes rare?"

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    var = tmp_path_factory.mktemp("console")
    # Members' questions in the database first, logged as the bot logs them (fake reader and index).
    store = Store.from_settings(make_settings(var.parent, db_path=var / "helpline.db"))
    log_feedback(store, var)
    store.close()
    with running_console(var, TOKEN, DOCS) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server: str):
    chromium, chromedriver = require_browser()
    driver = make_driver(chromium, chromedriver)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def call(url: str, method: str = "GET", body: object = None, token: str | None = TOKEN) -> tuple[int, object]:
    """An HTTP call; (status, parsed JSON body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def check_export(document: dict, tmp_path: Path) -> dict:
    """``finetune check --json`` of an export."""
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = runner.invoke(finetune_app, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def questions_of(document: dict) -> list[dict]:
    return [qa for a in document["data"] for p in a["paragraphs"] for qa in p["qas"]]


def test_the_running_server_checks_tokens_offsets_and_exports(server: str, tmp_path: Path) -> None:
    text = read_document(DOCS / DOC_ID, DOC_ID).text
    start = text.index(ANSWER)
    assert call(f"{server}/api/documents", token=None)[0] == 401
    assert call(f"{server}/api/documents", token="wrong")[0] == 401
    status, document = call(f"{server}/api/documents/{DOC_ID}")
    assert status == 200 and document["text"] == text
    good = {
        "doc_id": DOC_ID,
        "question": "what is brittle diabetes?",
        "answer_start": start,
        "answer_text": ANSWER,
    }
    status, record = call(f"{server}/api/annotations", "POST", good)
    assert status == 201 and record["answer_start"] == start
    status, error = call(f"{server}/api/annotations", "POST", {**good, "answer_start": start + 3})
    assert status == 422 and error["field"] == "answer_start"
    status, _ = call(f"{server}/api/annotations", "POST", {**good, "question": SCRIPT_QUESTION})
    assert status == 201
    status, export = call(f"{server}/api/export")
    assert status == 200
    report = check_export(export, tmp_path)
    assert report["rejected"] == [] and report["repaired"] == 0
    assert any(qa["question"] == "what is brittle diabetes?" and qa["answers"][0]["answer_start"] == start
               for qa in questions_of(export))  # fmt: skip
    assert any(qa["question"] == SCRIPT_QUESTION for qa in questions_of(export))  # stored as typed
    # Logged in with a cookie jar, the annotate page shows that question escaped.
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = urllib.parse.urlencode({"token": TOKEN, "next": f"/annotate?doc={DOC_ID}"}).encode()
    with opener.open(f"{server}/login", data=form, timeout=30) as response:
        page = response.read().decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; is brittle diabetes rare?" in page
    assert "<script>alert(1)" not in page
    for path in ("/api/annotations", "/api/export"):
        assert call(f"{server}{path}", token=None)[0] == 401


def test_annotate_in_the_browser_then_export_and_check(server: str, browser, tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    started = time.perf_counter()
    browser.get(f"{server}/annotate?doc={DOC_ID}")
    assert "/login" in browser.current_url  # no session yet: the login form
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    submit(browser, browser.find_element(By.ID, "login"))
    assert browser.find_element(By.ID, "doc-title").text == "Brittle diabetes"

    text = read_document(DOCS / DOC_ID, DOC_ID).text
    start = text.index(ANSWER)
    selected = browser.execute_script(SELECT_JS, "#doc", start, start + len(ANSWER))
    assert selected == ANSWER
    # The page's selection handler fills the form from the stored text.
    assert browser.find_element(By.ID, "answer-preview").text == ANSWER
    assert browser.find_element(By.ID, "answer_start").get_attribute("value") == str(start)
    browser.find_element(By.ID, "question").send_keys("what is brittle diabetes exactly?")
    submit(browser, browser.find_element(By.ID, "save"))

    rows = browser.find_elements(By.CSS_SELECTOR, "#annotations tbody tr")
    listed = [
        row.find_element(By.CSS_SELECTOR, "td.question").text for row in rows if row.get_attribute("id")
    ]
    assert "what is brittle diabetes exactly?" in listed

    # A question with markup shows as text and runs nothing.
    browser.find_element(By.ID, "unanswerable").click()
    browser.find_element(By.ID, "question").send_keys(SCRIPT_QUESTION)
    submit(browser, browser.find_element(By.ID, "save"))
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#annotations td.question")]
    assert SCRIPT_QUESTION in cells
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()

    # Export: the download link's URL, with the browser's session cookie.
    href = browser.find_element(By.ID, "export-link").get_attribute("href")
    browser.get(href.replace("?download=1", ""))
    export = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    report = check_export(export, tmp_path)
    assert report["rejected"] == [] and report["repaired"] == 0
    mine = [qa for qa in questions_of(export) if qa["question"] == "what is brittle diabetes exactly?"]
    assert mine and mine[0]["answers"] == [{"text": ANSWER, "answer_start": start}]
    assert any(qa["question"] == SCRIPT_QUESTION and qa["is_impossible"] for qa in questions_of(export))
    print(f"browser annotate-and-export: {time.perf_counter() - started:.1f}s")


def test_a_selection_across_paragraphs_maps_to_stored_offsets(server: str, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/annotate?doc={DOC_ID}")
    if "/login" in browser.current_url:
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        submit(browser, browser.find_element(By.ID, "login"))
    text = read_document(DOCS / DOC_ID, DOC_ID).text
    second = text.index("\n\n") + 2  # the second paragraph: offsets there include the blank line
    end = second + len(text[second:].split(" ", 3)[0]) + 1 + len(text[second:].split(" ", 3)[1])
    browser.execute_script(SELECT_JS, "#doc", second, end)
    assert browser.find_element(By.ID, "answer_start").get_attribute("value") == str(second)
    assert browser.find_element(By.ID, "answer_text").get_attribute("value") == text[second:end]


def test_bot_console_prints_a_generated_token_once(tmp_path: Path) -> None:
    """Without HELPLINE_CONSOLE_TOKEN the first start generates and prints one; the next start does not."""
    with running_console(tmp_path, "", DOCS) as url:
        log = (tmp_path / "console.log").read_text()
    token = log.split("admin token (shown once, keep it safe): ", 1)[1].split()[0]
    with running_console(tmp_path, "", DOCS) as url:
        assert call(f"{url}/api/documents", token=token)[0] == 200
        assert call(f"{url}/api/documents", token=None)[0] == 401
        log = (tmp_path / "console.log").read_text()
    assert token not in log and "generated earlier" in log


def test_review_feedback_in_the_browser(server: str, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/feedback")
    if "/login" in browser.current_url:
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        submit(browser, browser.find_element(By.ID, "login"))
    article = browser.find_elements(By.CSS_SELECTOR, "article.review")[0]
    question = article.find_element(By.CSS_SELECTOR, "h2.question").text
    box = article.find_element(By.CSS_SELECTOR, ".passage.selectable")
    text_id = box.get_attribute("data-text")
    passage = browser.execute_script(f"return JSON.parse(document.getElementById('{text_id}').textContent)")
    answer = " ".join(passage.split()[:4])
    browser.execute_script(SELECT_JS, f"[data-text='{text_id}']", 0, len(answer))
    assert article.find_element(By.CSS_SELECTOR, ".answer-preview").text == answer
    submit(browser, article.find_element(By.CSS_SELECTOR, "button[value='answer']"))
    reviewed = browser.find_element(By.ID, "reviewed").text
    assert question in reviewed and answer in reviewed
    browser.get(f"{server}/api/export")
    export = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    report = check_export(export, tmp_path)
    assert report["rejected"] == [] and report["repaired"] == 0
    mine = [qa for qa in questions_of(export) if qa["question"] == question and qa["answers"]]
    assert mine and mine[0]["answers"] == [{"text": answer, "answer_start": 0}]
