"""Drive the real `bot run` (real engine, this checkout's code) through the fake Bot API: a declined
question handed to a volunteer and answered, an FAQ entry answering a paraphrase, an admin's Markdown
upload answering a question about it, a member's upload refused. Prints what each step got back.

Usage (the index should be of the documents folder, built with vectors; the folder gets the upload):
    cp -r data/docs /tmp/e2e-docs && .venv/bin/retrieval index /tmp/e2e-docs --index /tmp/e2e-index
    .venv/bin/python scripts/drive_people.py --docs /tmp/e2e-docs --index /tmp/e2e-index --work /tmp/e2e
"""

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bot.testing.fake_telegram import FakeTelegram  # noqa: E402

ADMIN, MEMBER, VOL, VOLS = 1, 11, 21, -2002
DOC = (
    b"# The Thursday walking group\n\n"
    b"The Thursday walking group is led by Maria Lopez. The group meets every Thursday at 10 am at the main "
    b"gate of Riverside Park. Each walk lasts about one hour and covers three kilometres at an easy pace.\n\n"
    b"Please bring water, a snack with fast-acting sugar and your glucose meter. Walks are cancelled when "
    b"it rains heavily; Maria posts cancellations in the group chat by 8 am.\n"
)


async def last(t, chat, n, timeout=120):
    return (await t.sent_messages(chat, n, timeout=timeout))[-1]


async def main(args: argparse.Namespace) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    async with FakeTelegram() as t, asyncio.timeout(600):
        log = (args.work / "stderr.log").open("w")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPLINE_", "TELEGRAM_"))}
        env |= {
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": t.token,
            "TELEGRAM_BASE_URL": t.base_url,
            "HELPLINE_ADMIN_IDS": str(ADMIN),
            "HELPLINE_VOLUNTEER_CHAT_ID": str(VOLS),
            "HELPLINE_INDEX_DIR": str(args.index),
            "HELPLINE_DOCS_DIR": str(args.docs),
            "HELPLINE_DB": str(args.work / "helpline.db"),
            "HELPLINE_POLLING_TIMEOUT": "1",
        }
        p = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from bot.cli import app; app()",
            "run",
            cwd=args.work,
            env=env,
            stderr=log,
        )
        try:
            await t.wait_for("getUpdates", timeout=180)
            t0 = time.time()
            t.send_text(MEMBER, "When is the next meeting of our support group?")
            declined = await last(t, MEMBER, 1)
            print(
                "1 declined:",
                declined["text"][:90].replace("\n", " "),
                "| rows:",
                [[b["text"] for b in r] for r in declined["reply_markup"]["inline_keyboard"]],
            )
            tk = [
                b["callback_data"]
                for r in declined["reply_markup"]["inline_keyboard"]
                for b in r
                if b["callback_data"].startswith("tk:")
            ][0]
            t.press_button(MEMBER, declined, tk)
            ticket = await last(t, VOLS, 1)
            print(
                "2 ticket:",
                ticket["text"][:200].replace("\n", " "),
                "| has id/name:",
                str(MEMBER) in ticket["text"],
                "Member 11" in ticket["text"],
            )
            t.send_text(
                VOL,
                "Next Tuesday at 7 pm in the community centre.",
                chat_id=VOLS,
                chat_type="supergroup",
                reply_to=ticket,
            )
            relayed = await last(t, MEMBER, 3)
            print("3 relayed:", relayed["text"].replace("\n", " "))
            print("  volunteers:", (await last(t, VOLS, 2))["text"])
            t.send_text(ADMIN, "/faq add When do we meet? | Every second Tuesday of the month at 7 pm.")
            print("4 faq add:", (await last(t, ADMIN, 1))["text"].replace("\n", " "))
            t.send_text(MEMBER, "when does the group meet?")
            print("5 paraphrase:", (await last(t, MEMBER, 4))["text"].replace("\n", " "))
            t.send_document(ADMIN, "walking-group.md", DOC, mime_type="text/markdown")
            print("6 upload:", (await last(t, ADMIN, 2, 300))["text"].replace("\n", " | "))
            t.send_text(MEMBER, "Who leads the Thursday walking group?")
            print("7 doc question:", (await last(t, MEMBER, 5))["text"].replace("\n", " "))
            t.send_document(MEMBER, "mine.md", b"# Mine\n\nText.\n")
            print("8 member upload:", (await last(t, MEMBER, 6))["text"])
            print("  docs has mine.md:", (args.docs / "mine.md").exists(), "downloads:", t.downloads)
            print(
                "  menus:",
                [(c.params.get("scope"), len(c.params["commands"])) for c in t.calls_of("setMyCommands")],
            )
            print("  seconds:", round(time.time() - t0, 1))
        finally:
            p.send_signal(signal.SIGTERM)
            await asyncio.wait_for(p.wait(), 60)
            log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="HELPLINE_DOCS_DIR (receives the upload)")
    parser.add_argument("--index", type=Path, required=True, help="HELPLINE_INDEX_DIR, built from --docs")
    parser.add_argument("--work", type=Path, required=True, help="where the database and the log go")
    asyncio.run(main(parser.parse_args()))
