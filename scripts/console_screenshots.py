"""Take the README's screenshots of the admin console with Debian's headless chromium (selenium).

    .venv/bin/python scripts/console_screenshots.py            # writes docs/console-*.png

Everything is real and local: a throw-away database and BM25 index of the bundled documents
(``data/docs``), three members' questions answered by the shipped reader (one voted "not helpful",
two declined), two annotations, then the annotate page with an answer selected and the feedback queue
with a corrected span selected. Needs ``chromium`` and ``chromium-driver`` (``make browser``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "screenshot-token"
DOC_ID = "gard-0000849-brittle-diabetes.md"
QUESTIONS = [  # (member id, question, voted not helpful)
    (1001, "what is brittle diabetes?", True),
    (1002, "can my cat get diabetes insipidus?", True),
    (1003, "what time does the pharmacy open on sunday?", False),
]
# The corrected span selected in the feedback screenshot (in a passage the bot read).
CORRECTED = "severe instability of blood glucose levels with frequent and unpredictable episodes"
# Selects characters [start, end) of the stored text in a selectable box (as tests/console_browser.py).
SELECT_JS = """
const [box, start, end] = [document.querySelector(arguments[0]), arguments[1], arguments[2]];
function locate(offset) {
  for (const para of box.querySelectorAll('.para')) {
    const from = Number(para.dataset.start);
    const node = para.firstChild;
    if (offset >= from && offset <= from + node.data.length) return [node, offset - from];
  }
}
const range = document.createRange();
range.setStart(...locate(start));
range.setEnd(...locate(end));
getSelection().removeAllRanges();
getSelection().addRange(range);
"""


def fill(settings) -> None:
    """The questions, logged as the bot logs them, and two annotations."""
    from bot.console.records import ConsoleRecords
    from bot.engine import AnswerEngine
    from bot.store import Store
    from retrieval import build_index
    from retrieval.ingest import read_document

    build_index(settings.docs_dir, settings.index_dir)
    engine = AnswerEngine.from_settings(settings)
    engine.warm_up()
    store = Store.from_settings(settings)
    for member, question, disliked in QUESTIONS:
        question_id = store.log_question(member, question, engine.answer(question), "private")
        if disliked:
            store.record_feedback(question_id, member, helpful=False)
    store.close()
    records = ConsoleRecords(settings.db_path)
    doc = read_document(settings.docs_dir / DOC_ID, DOC_ID)
    answer = "women in their twenties or thirties"
    records.add_annotation(doc, "who usually gets brittle diabetes?", doc.text.index(answer), answer)
    records.add_annotation(doc, "is brittle diabetes contagious?", None, None)
    records.close()


def serve(settings, port: int) -> None:
    import uvicorn

    from bot.console import create_app, open_console

    console, _ = open_console(settings)
    config = uvicorn.Config(create_app(console), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)


def shoot(url: str, out_dir: Path, text: str) -> None:
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,960"):
        options.add_argument(argument)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(f"{url}/login?next=/annotate?doc={DOC_ID}")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        answer = "severe instability of blood glucose levels"
        start = text.index(answer)
        driver.execute_script(SELECT_JS, "#doc", start, start + len(answer))
        driver.find_element(By.ID, "question").send_keys("what is brittle diabetes exactly?")
        driver.save_screenshot(str(out_dir / "console-annotate.png"))
        driver.get(f"{url}/feedback")
        box = driver.find_element(By.CSS_SELECTOR, ".passage.selectable")
        text_id = box.get_attribute("data-text")
        read_text = f"return JSON.parse(document.getElementById('{text_id}').textContent)"
        passage = driver.execute_script(read_text)
        span = CORRECTED if CORRECTED in passage else passage.split(". ")[0]
        begin = passage.index(span)
        driver.execute_script(SELECT_JS, f"[data-text='{text_id}']", begin, begin + len(span))
        driver.save_screenshot(str(out_dir / "console-feedback.png"))
    finally:
        driver.quit()


def main() -> None:
    os.chdir(ROOT)
    from bot.config import Settings
    from retrieval.ingest import read_document

    out_dir = ROOT / "docs"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        settings = Settings(
            _env_file=None, docs_dir=ROOT / "data" / "docs", db_path=var / "helpline.db",
            index_dir=var / "index", model_dir=ROOT / "models" / "reader", retrieval_mode="bm25",
            console_token=TOKEN,
        )  # fmt: skip
        fill(settings)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        serve(settings, port)
        shoot(f"http://127.0.0.1:{port}", out_dir, read_document(settings.docs_dir / DOC_ID, DOC_ID).text)
    print(f"wrote {out_dir / 'console-annotate.png'} and {out_dir / 'console-feedback.png'}")


if __name__ == "__main__":
    main()
