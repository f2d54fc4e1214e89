"""People behind the bot, end to end over real HTTP against the fake Bot API: handing questions to the
group's volunteers, the group's own FAQ, and admins adding documents from Telegram.

The reader is a FakeReader and the FAQ's encoder a bag of words (fast, deterministic); the index is a
real BM25 index over the three-document corpus, so an uploaded document really is indexed and read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram.ext import Application

from bot import formatting
from bot.config import Settings
from bot.engine import AnswerEngine
from bot.store import Store
from bot.testing.fake_telegram import FakeTelegram
from retrieval import build_index
from tests.bot_fakes import (
    CORPUS,
    BagOfWordsEncoder,
    FakeReader,
    make_settings,
    running_bot,
    write_corpus_docs,
    write_fake_model,
)

ADMIN = 1
MEMBER = 11
VOLUNTEER = 21
VOLUNTEERS = -2002
DECLINED = "Is brittle diabetes rare?"  # the FakeReader finds no answer; the passage is brittle diabetes
INSULINOMA = "What is an insulinoma?"
STEVIA_ANSWER = "a sweetener made from the leaves of a plant"
STEVIA_DOC = f"# Stevia\n\nStevia is {STEVIA_ANSWER}. It has almost no calories.\n".encode()


@pytest.fixture
def settings(tmp_path: Path, telegram: FakeTelegram) -> Settings:
    settings = make_settings(
        tmp_path,
        telegram_bot_token=telegram.token,
        telegram_base_url=telegram.base_url,
        admin_ids=frozenset({ADMIN}),
        volunteer_chat_id=VOLUNTEERS,
        polling_timeout=2,
        max_upload_bytes=10_000,
    )
    write_fake_model(settings.model_dir)
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    return settings


@pytest.fixture
def engine(settings: Settings) -> AnswerEngine:
    answers = {c[4]: c[3] for c in CORPUS} | {"stevia": STEVIA_ANSWER}
    return AnswerEngine.from_settings(settings, reader=FakeReader(answers))


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store.from_settings(settings)


@pytest.fixture(params=["polling", "webhook"])
async def bot(request, settings: Settings, engine: AnswerEngine, store: Store) -> AsyncIterator[Application]:
    webhook = request.param == "webhook"
    async with running_bot(settings, engine, store, webhook=webhook, faq_encoder=BagOfWordsEncoder()) as app:
        yield app


def callback_data(message: dict) -> list[str]:
    return [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


def volunteer_button(message: dict) -> str:
    [data] = [d for d in callback_data(message) if d.startswith("tk:")]
    return data


async def hand_over(telegram: FakeTelegram, member: int = MEMBER, question: str = DECLINED) -> dict:
    """Ask a declined question, press "Ask a volunteer"; returns the ticket in the volunteers' chat."""
    before = len(telegram.calls_of("sendMessage", chat_id=VOLUNTEERS))
    replies = len(telegram.calls_of("sendMessage", chat_id=member))
    telegram.send_text(member, question)
    reply = (await telegram.sent_messages(member, replies + 1))[-1]
    telegram.press_button(member, reply, volunteer_button(reply))
    return (await telegram.sent_messages(VOLUNTEERS, before + 1))[-1]


# --- volunteers -------------------------------------------------------------------------------


async def test_volunteer_round_trip_without_member_identity(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    telegram.send_text(MEMBER, DECLINED)
    [declined] = await telegram.sent_messages(MEMBER)
    assert "could not find a clear answer" in declined["text"]
    assert declined["reply_markup"]["inline_keyboard"][1][0]["text"] == formatting.ASK_VOLUNTEER
    telegram.press_button(MEMBER, declined, volunteer_button(declined))
    [ticket] = await telegram.sent_messages(VOLUNTEERS)
    assert ticket["text"].startswith(f"🙋 #1: {DECLINED}")
    assert "Brittle diabetes is rare." in ticket["text"]  # the passage the bot found
    for identity in (str(MEMBER), f"Member {MEMBER}", "first_name", "username"):
        assert identity not in ticket["text"]
    assert "reply_markup" not in ticket
    opened = (await telegram.sent_messages(MEMBER, 2))[1]
    assert opened["text"] == formatting.TICKET_OPENED.format(id=1)

    telegram.send_text(
        VOLUNTEER, "Yes, it is rare.", chat_id=VOLUNTEERS, chat_type="supergroup", reply_to=ticket
    )
    relayed = (await telegram.sent_messages(MEMBER, 3))[2]
    assert relayed["text"] == f"💬 A volunteer answered your question “{DECLINED}”:\n\nYes, it is rare."
    assert relayed["reply_to_message"]["message_id"] == declined["message_id"]
    confirmed = (await telegram.sent_messages(VOLUNTEERS, 2))[1]
    assert confirmed["text"] == formatting.TICKET_SENT.format(id=1)

    telegram.send_text(
        VOLUNTEER + 1, "Very rare!", chat_id=VOLUNTEERS, chat_type="supergroup", reply_to=ticket
    )
    noted = (await telegram.sent_messages(VOLUNTEERS, 3))[2]
    assert noted["text"] == formatting.TICKET_ALREADY_ANSWERED.format(id=1)
    await asyncio.sleep(0.2)
    assert len(telegram.calls_of("sendMessage", chat_id=MEMBER)) == 3  # the second reply went nowhere
    [answered] = store.answered_tickets()
    assert (answered.question, answered.answer) == (DECLINED, "Yes, it is rare.")  # for the console
    row = store._conn.execute("SELECT member_chat_id, status FROM tickets").fetchone()
    assert row == (None, "answered")  # the member's chat id is forgotten once delivered
    assert store.stats().all_time.tickets == 1


async def test_a_ticket_survives_a_restart(
    telegram: FakeTelegram, settings: Settings, engine: AnswerEngine
) -> None:
    first_store = Store.from_settings(settings)
    async with running_bot(settings, engine, first_store):
        ticket = await hand_over(telegram)
        await telegram.sent_messages(MEMBER, 2)
    first_store.close()
    async with running_bot(settings, engine, Store.from_settings(settings)):
        telegram.send_text(VOLUNTEER, "After the restart", chat_id=VOLUNTEERS, chat_type="supergroup",
                           reply_to=ticket)  # fmt: skip
        relayed = (await telegram.sent_messages(MEMBER, 3))[2]
    assert relayed["text"].endswith("After the restart")


async def test_not_helpful_offers_a_volunteer(bot: Application, telegram: FakeTelegram) -> None:
    telegram.send_text(MEMBER, INSULINOMA)
    [answer] = await telegram.sent_messages(MEMBER)
    assert not any(d.startswith("tk:") for d in callback_data(answer))  # answered: no offer yet
    telegram.press_button(MEMBER, answer, callback_data(answer)[1])  # not helpful
    [edit] = await telegram.wait_for("editMessageReplyMarkup")
    rows = edit.params["reply_markup"]["inline_keyboard"]
    assert rows[0][1]["text"].startswith("✅") and rows[1][0]["text"] == formatting.ASK_VOLUNTEER


async def test_no_volunteer_button_without_a_volunteers_chat(
    telegram: FakeTelegram, settings: Settings, engine: AnswerEngine, store: Store
) -> None:
    plain = settings.model_copy(update={"volunteer_chat_id": None})
    async with running_bot(plain, engine, store):
        telegram.send_text(MEMBER, DECLINED)
        [declined] = await telegram.sent_messages(MEMBER)
        telegram.press_button(MEMBER, declined, callback_data(declined)[1])
        [edit] = await telegram.wait_for("editMessageReplyMarkup")
    assert len(declined["reply_markup"]["inline_keyboard"]) == 1
    assert len(edit.params["reply_markup"]["inline_keyboard"]) == 1


async def test_only_the_asker_opens_a_ticket_and_a_few_at_most(
    telegram: FakeTelegram, settings: Settings, engine: AnswerEngine, store: Store
) -> None:
    limited = settings.model_copy(update={"max_open_tickets": 1})
    async with running_bot(limited, engine, store):
        telegram.send_text(MEMBER, DECLINED)
        [declined] = await telegram.sent_messages(MEMBER)
        button = volunteer_button(declined)
        telegram.press_button(MEMBER + 1, declined, button)  # someone else in a group
        telegram.press_button(MEMBER, declined, "tk:1:forged-signature")
        unknown = await telegram.wait_for("answerCallbackQuery", 2)
        assert [a.params.get("text") for a in unknown] == [formatting.TICKET_UNKNOWN] * 2
        telegram.press_button(MEMBER, declined, button)
        await telegram.sent_messages(VOLUNTEERS)
        await telegram.sent_messages(MEMBER, 2)  # "passed to the volunteers"
        telegram.press_button(MEMBER, declined, button)  # pressed again
        telegram.send_text(MEMBER, "Does brittle diabetes hurt?")
        second = (await telegram.sent_messages(MEMBER, 3))[2]
        telegram.press_button(MEMBER, second, volunteer_button(second))
        answers = await telegram.wait_for("answerCallbackQuery", 5)
    assert answers[3].params.get("text") == formatting.TICKET_EXISTS.format(id=1)
    assert answers[4].params.get("text") == formatting.TICKET_LIMIT.format(limit=1)
    assert answers[4].params.get("show_alert") is True
    assert len(telegram.calls_of("sendMessage", chat_id=VOLUNTEERS)) == 1


async def test_replies_to_other_messages_in_the_volunteers_chat_are_ignored(
    bot: Application, telegram: FakeTelegram
) -> None:
    ticket = await hand_over(telegram)
    await telegram.sent_messages(MEMBER, 2)
    telegram.send_media(VOLUNTEER, "sticker", chat_id=VOLUNTEERS, chat_type="supergroup", reply_to=ticket)
    text_only = (await telegram.sent_messages(VOLUNTEERS, 2))[1]
    assert text_only["text"] == formatting.TICKET_TEXT_ONLY.format(id=1)
    telegram.send_text(VOLUNTEER, "Answer", chat_id=VOLUNTEERS, chat_type="supergroup", reply_to=ticket)
    confirmation = (await telegram.sent_messages(VOLUNTEERS, 3))[2]
    volunteers_post = telegram.send_text(VOLUNTEER, "Hi all", chat_id=VOLUNTEERS, chat_type="supergroup")
    telegram.send_text(VOLUNTEER, "Thanks", chat_id=VOLUNTEERS, chat_type="supergroup", reply_to=confirmation)
    telegram.send_text(
        VOLUNTEER + 1,
        "me too",
        chat_id=VOLUNTEERS,
        chat_type="supergroup",
        reply_to=volunteers_post["message"],
    )
    await asyncio.sleep(0.4)
    assert len(telegram.calls_of("sendMessage", chat_id=VOLUNTEERS)) == 3
    assert len(telegram.calls_of("sendMessage", chat_id=MEMBER)) == 3


async def test_tickets_closes_old_tickets_and_tells_the_member(
    telegram: FakeTelegram, settings: Settings, engine: AnswerEngine, store: Store
) -> None:
    quick = settings.model_copy(update={"ticket_max_age_hours": 0.5 / 3600})  # half a second
    async with running_bot(quick, engine, store):
        ticket = await hand_over(telegram)
        await telegram.sent_messages(MEMBER, 2)
        telegram.send_text(MEMBER, "/tickets")
        refused = (await telegram.sent_messages(MEMBER, 3))[2]
        assert refused["text"] == formatting.TICKETS_REFUSED
        await asyncio.sleep(0.6)
        telegram.send_text(VOLUNTEER, "/tickets", chat_id=VOLUNTEERS, chat_type="supergroup")
        listing = (await telegram.sent_messages(VOLUNTEERS, 2))[1]
        closed = (await telegram.sent_messages(MEMBER, 4))[3]
        telegram.send_text(
            VOLUNTEER, "Late answer", chat_id=VOLUNTEERS, chat_type="supergroup", reply_to=ticket
        )
        late = (await telegram.sent_messages(VOLUNTEERS, 3))[2]
    assert listing["text"].startswith("Closed 1 tickets older than") and "No open tickets." in listing["text"]
    assert closed["text"] == formatting.TICKET_CLOSED_FOR_MEMBER.format(question=DECLINED, id=1)
    assert late["text"] == formatting.TICKET_WAS_CLOSED.format(id=1)


# --- the group's FAQ --------------------------------------------------------------------------


async def test_faq_add_list_remove_and_a_paraphrase_answered(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    telegram.send_text(ADMIN, "/faq add When do we meet? | Every second Tuesday at 7 pm.")
    [added] = await telegram.sent_messages(ADMIN)
    assert added["text"].startswith("Added FAQ entry 1: When do we meet?")
    telegram.send_text(ADMIN, "/faq add Who runs the Thursday walk? | Maria.")
    await telegram.sent_messages(ADMIN, 2)
    telegram.send_text(ADMIN, "/faq list")
    listing = (await telegram.sent_messages(ADMIN, 3))[2]
    assert "1. When do we meet?\n   → Every second Tuesday at 7 pm." in listing["text"]
    assert "2. Who runs the Thursday walk?" in listing["text"]

    telegram.send_text(MEMBER, "what time do we meet")
    [faq_answer] = await telegram.sent_messages(MEMBER)
    assert faq_answer["text"].startswith(f"{formatting.FAQ_LABEL}\n(When do we meet?)")
    assert "Every second Tuesday at 7 pm." in faq_answer["text"]
    telegram.send_text(MEMBER, INSULINOMA)  # the documents still answer what the FAQ does not
    insulinoma = (await telegram.sent_messages(MEMBER, 2))[1]
    assert CORPUS[1][3] in insulinoma["text"]
    stats = store.stats()
    assert (stats.faq_entries, stats.all_time.from_faq, stats.all_time.answered) == (2, 1, 2)

    telegram.send_text(ADMIN, "/faq remove 1")
    removed = (await telegram.sent_messages(ADMIN, 4))[3]
    assert removed["text"] == "Removed FAQ entry 1: When do we meet?"
    telegram.send_text(MEMBER, "what time do we meet")
    after = (await telegram.sent_messages(MEMBER, 3))[2]
    assert formatting.FAQ_LABEL not in after["text"]


async def test_faq_bad_input_and_members_refused(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    for text in ("/faq add no bar here", "/faq remove x", "/faq remove 9", "/faq"):
        telegram.send_text(ADMIN, text)
        await asyncio.sleep(0.05)  # one at a time, so the replies come in order
    replies = [r["text"] for r in await telegram.sent_messages(ADMIN, 4)]
    assert replies[0] == "Could not add to the FAQ: write it as: /faq add QUESTION | ANSWER."
    assert replies[1] == "Could not remove: 'x' is not an entry number; see /faq list."
    assert replies[2] == "There is no FAQ entry 9; see /faq list."
    assert replies[3] == formatting.FAQ_USAGE
    telegram.send_text(MEMBER, "/faq add Q | A")
    [refused] = await telegram.sent_messages(MEMBER)
    assert refused["text"] == formatting.NOT_ADMIN.format(command="faq")
    assert store.faq_entries() == []


# --- documents from Telegram -------------------------------------------------------------------


async def test_an_admins_upload_becomes_answerable(
    bot: Application, telegram: FakeTelegram, settings: Settings
) -> None:
    telegram.send_document(ADMIN, "stevia.md", STEVIA_DOC, mime_type="text/markdown")
    [report] = await telegram.sent_messages(ADMIN)
    assert report["text"].startswith("Added stevia.md (“Stevia”).\nReindexed: 4 documents,")
    assert telegram.downloads  # fetched from the fake's file server: the file URL follows the base URL
    assert (settings.docs_dir / "stevia.md").read_bytes() == STEVIA_DOC
    assert not [p for p in settings.docs_dir.iterdir() if p.name.startswith(".")]  # no temp file left
    telegram.send_text(MEMBER, "What is stevia?")
    [answer] = await telegram.sent_messages(MEMBER)
    assert f"<b>{STEVIA_ANSWER}</b>" in answer["text"]

    telegram.send_document(ADMIN, "stevia.md", b"# Stevia\n\nNew text.\n")
    refused = (await telegram.sent_messages(ADMIN, 2))[1]
    assert "already exists" in refused["text"] and "/replace" in refused["text"]
    assert (settings.docs_dir / "stevia.md").read_bytes() == STEVIA_DOC
    telegram.send_document(ADMIN, "stevia.md", b"# Stevia\n\nNew text.\n", caption="/replace")
    replaced = (await telegram.sent_messages(ADMIN, 3))[2]
    assert replaced["text"].startswith("Replaced stevia.md")
    assert (settings.docs_dir / "stevia.md").read_bytes() == b"# Stevia\n\nNew text.\n"


async def test_a_members_upload_is_refused_and_nothing_written(
    bot: Application, telegram: FakeTelegram, settings: Settings, store: Store
) -> None:
    before = sorted(p.name for p in settings.docs_dir.iterdir())
    telegram.send_document(MEMBER, "stevia.md", STEVIA_DOC)
    [reply] = await telegram.sent_messages(MEMBER)
    assert reply["text"] == formatting.UPLOAD_NOT_ADMIN
    assert sorted(p.name for p in settings.docs_dir.iterdir()) == before
    assert telegram.calls_of("getFile") == [] and telegram.downloads == []
    assert [(a.command, a.allowed) for a in store.admin_actions()] == [("upload", False)]


async def test_oversize_broken_and_unsupported_files_are_reported(
    bot: Application, telegram: FakeTelegram, settings: Settings
) -> None:
    before = sorted(p.name for p in settings.docs_dir.iterdir())
    uploads = [
        ("big.txt", b"x", {"file_size": 50_000}),  # Telegram reports the size: refused before download
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", {}),
        ("empty.md", b"   \n", {}),
        ("photo.jpg", b"\xff\xd8\xff", {}),
        ("sneaky.txt", b"y" * 20_000, {"file_size": 10}),  # a lying size is caught after download
    ]
    for name, content, extra in uploads:
        telegram.send_document(ADMIN, name, content, **extra)
        await asyncio.sleep(0.05)
    texts = [r["text"] for r in await telegram.sent_messages(ADMIN, len(uploads))]

    def about(name: str) -> str:  # updates are handled concurrently: find each file's reply by name
        [text] = [t for t in texts if f"{name} " in t or f"{name}:" in t]
        return text

    assert about("big.txt") == "big.txt is 49 KB; the limit is 10 KB."
    assert about("broken.pdf").startswith("I could not read broken.pdf:")
    assert about("broken.pdf").endswith("Nothing was added.")
    assert about("empty.md") == "I could not read empty.md: empty file. Nothing was added."
    assert about("photo.jpg").startswith("photo.jpg is not a document type I can read (.jpg); send one of:")
    assert about("sneaky.txt") == "sneaky.txt is 20 KB; the limit is 10 KB."
    assert sorted(p.name for p in settings.docs_dir.iterdir()) == before  # nothing written, no temp files
    telegram.send_text(MEMBER, INSULINOMA)  # the index is untouched
    [answer] = await telegram.sent_messages(MEMBER)
    assert CORPUS[1][3] in answer["text"]


async def test_a_path_in_the_file_name_cannot_leave_the_documents_folder(
    bot: Application, telegram: FakeTelegram, settings: Settings, tmp_path: Path
) -> None:
    telegram.send_document(ADMIN, "../../evil.md", b"# Evil\n\nNot outside.\n")
    telegram.send_document(ADMIN, "..\\..\\.hidden.txt", b"Hidden text is still a document.\n")
    replies = [r["text"] for r in await telegram.sent_messages(ADMIN, 2)]
    assert any(r.startswith("Added evil.md") for r in replies)
    assert any(r.startswith("Added hidden.txt") for r in replies)
    assert (settings.docs_dir / "evil.md").is_file() and (settings.docs_dir / "hidden.txt").is_file()
    assert not (tmp_path / "evil.md").exists() and not (settings.docs_dir.parent.parent / "evil.md").exists()


async def test_a_ticket_the_volunteers_chat_refused_is_dropped_and_the_member_told(
    bot: Application, telegram: FakeTelegram, store: Store, settings: Settings
) -> None:
    telegram.send_text(MEMBER, DECLINED)
    [declined] = await telegram.sent_messages(MEMBER)
    telegram.fail_next("sendMessage", count=1, retry_after=0)  # not retried: an error like any other
    telegram.press_button(MEMBER, declined, volunteer_button(declined))
    [answered] = await telegram.wait_for("answerCallbackQuery")
    assert answered.params.get("text") == formatting.TICKET_FAILED and answered.params.get("show_alert")
    assert store.open_tickets() == []  # the member may simply press again
    telegram.press_button(MEMBER, declined, volunteer_button(declined))
    [ticket] = await telegram.sent_messages(VOLUNTEERS)
    assert ticket["text"].startswith("🙋 #")
