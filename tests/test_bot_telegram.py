"""End to end over real HTTP: the real application against the fake Bot API, as members and admins.

Every flow runs in polling and in webhook mode. The reader is a FakeReader (fast, deterministic); the
index is a real BM25 index over a three-document corpus, so /reindex really rebuilds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from telegram.ext import Application

from bot import formatting
from bot.config import Settings
from bot.engine import AnswerEngine
from bot.store import Store
from bot.testing.fake_telegram import GROUP_CHAT_ID, SECRET_HEADER, FakeTelegram
from retrieval import build_index
from tests.bot_fakes import (
    CORPUS,
    FakeReader,
    make_settings,
    running_bot,
    write_corpus_docs,
    write_fake_model,
)

ADMIN = 1
MEMBER = 11
INSULINOMA = "What is an insulinoma?"


@pytest.fixture
def settings(tmp_path: Path, telegram: FakeTelegram) -> Settings:
    settings = make_settings(
        tmp_path,
        telegram_bot_token=telegram.token,
        telegram_base_url=telegram.base_url,
        admin_ids=frozenset({ADMIN}),
        polling_timeout=2,
        hash_member_ids=False,
    )
    write_fake_model(settings.model_dir)  # /reload checks the model directory; the reader is a fake
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    return settings


@pytest.fixture
def reader() -> FakeReader:
    return FakeReader()


@pytest.fixture
def engine(settings: Settings, reader: FakeReader) -> AnswerEngine:
    reloaded = FakeReader(name="reloaded")
    return AnswerEngine.from_settings(settings, reader=reader, reader_factory=lambda _dir: reloaded)


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store.from_settings(settings)


@pytest.fixture(params=["polling", "webhook"])
async def bot(request, settings: Settings, engine: AnswerEngine, store: Store) -> AsyncIterator[Application]:
    async with running_bot(settings, engine, store, webhook=request.param == "webhook") as application:
        yield application


def buttons(message: dict) -> list[dict]:
    return message["reply_markup"]["inline_keyboard"][0]


async def test_question_answered_with_source_and_feedback_buttons(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    telegram.send_text(MEMBER, INSULINOMA)
    [reply] = await telegram.sent_messages(MEMBER)
    title, source, _, phrase, _ = CORPUS[1]
    assert f"<b>{phrase}</b>" in reply["text"]
    assert "An insulinoma is a tumor of the pancreas that produces too much insulin." in reply["text"]
    assert f'<a href="{source}">{title}</a>' in reply["text"]
    assert telegram.calls_of("sendMessage")[0].params["parse_mode"] == "HTML"
    typing = telegram.calls_of("sendChatAction", chat_id=MEMBER)
    assert typing and typing[0].params["action"] == "typing"
    assert typing[0].at <= telegram.calls_of("sendMessage")[0].at
    question_id = store.stats().all_time.questions
    signature = formatting.feedback_signature(question_id, store.callback_key)
    assert [b["callback_data"] for b in buttons(reply)] == [
        f"fb:{question_id}:1:{signature}",
        f"fb:{question_id}:0:{signature}",
    ]
    assert all(len(b["callback_data"].encode()) < 64 for b in buttons(reply))


async def test_html_in_documents_is_escaped(bot: Application, telegram: FakeTelegram) -> None:
    telegram.send_text(MEMBER, "What are the features of Wolfram syndrome?")
    [reply] = await telegram.sent_messages(MEMBER)
    assert "<b>high blood sugar levels &amp; progressive vision loss</b>" in reply["text"]
    assert "Wolfram syndrome &lt;&amp;&gt;</a>" in reply["text"]
    assert 'href="https://medlineplus.gov/genetics/condition/wolfram-syndrome/?a=1&amp;b=2"' in reply["text"]


async def test_unanswerable_question_points_to_the_closest_passage(
    bot: Application, telegram: FakeTelegram
) -> None:
    telegram.send_text(MEMBER, "Is brittle diabetes rare?")
    [reply] = await telegram.sent_messages(MEMBER)
    assert "could not find a clear answer" in reply["text"]
    assert f'<a href="{CORPUS[0][1]}">{CORPUS[0][0]}</a>' in reply["text"]


async def test_feedback_button_press_is_recorded_and_acknowledged(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    telegram.send_text(MEMBER, INSULINOMA)
    [reply] = await telegram.sent_messages(MEMBER)
    helpful, not_helpful = (b["callback_data"] for b in buttons(reply))
    telegram.press_button(MEMBER, reply, not_helpful)
    [edit] = await telegram.wait_for("editMessageReplyMarkup")
    assert store.stats().all_time.not_helpful == 1
    assert edit.params["reply_markup"]["inline_keyboard"][0][1]["text"].startswith("✅")
    telegram.press_button(
        MEMBER, telegram.message(MEMBER, reply["message_id"]), helpful
    )  # changes their mind
    await telegram.wait_for("editMessageReplyMarkup", 2)
    telegram.press_button(MEMBER, reply, "fb:not-a-number:1")  # a client may send anything
    answers = await telegram.wait_for("answerCallbackQuery", 3)
    assert [a.params.get("text") for a in answers] == [
        formatting.VOTE_THANKS,
        formatting.VOTE_THANKS,
        formatting.VOTE_UNKNOWN,
    ]
    stats = store.stats().all_time
    assert (stats.helpful, stats.not_helpful) == (1, 0)


async def test_a_member_cannot_forge_a_vote_on_another_members_answer(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    other = MEMBER + 1
    telegram.send_text(MEMBER, INSULINOMA)
    [victim_reply] = await telegram.sent_messages(MEMBER)
    telegram.send_text(other, INSULINOMA)
    [own_reply] = await telegram.sent_messages(other)
    victim_id = int(buttons(victim_reply)[0]["callback_data"].split(":")[1])
    own_data = buttons(own_reply)[1]["callback_data"]
    own_signature = own_data.rsplit(":", 1)[1]
    for forged in (f"fb:{victim_id}:0", f"fb:{victim_id}:0:{own_signature}"):
        telegram.press_button(other, own_reply, forged)
    telegram.press_button(other, own_reply, own_data)  # the member's own button still works
    answers = await telegram.wait_for("answerCallbackQuery", 3)
    # Updates are handled concurrently, so the three answers may come in any order.
    assert sorted(a.params.get("text") for a in answers) == sorted(
        [formatting.VOTE_UNKNOWN, formatting.VOTE_UNKNOWN, formatting.VOTE_THANKS]
    )
    assert store.stats().all_time.not_helpful == 1  # the member's own vote only


async def test_an_unwritable_database_still_answers_the_member(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    telegram.send_text(MEMBER, INSULINOMA)
    [first] = await telegram.sent_messages(MEMBER)
    store._conn.execute("PRAGMA query_only = ON")  # every write now fails: "readonly database"
    telegram.send_text(MEMBER, INSULINOMA)
    replies = await telegram.sent_messages(MEMBER, 2)
    assert replies[1]["text"] == first["text"] and "reply_markup" not in replies[1]  # nothing to vote on
    telegram.press_button(MEMBER, first, buttons(first)[0]["callback_data"])
    [answered] = await telegram.wait_for("answerCallbackQuery")
    assert answered.params.get("text") == formatting.VOTE_UNKNOWN
    await asyncio.sleep(0.2)
    assert len(await telegram.sent_messages(MEMBER)) == 2  # no apology followed


async def test_same_vote_twice_is_answered_without_an_error(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    telegram.send_text(MEMBER, INSULINOMA)
    [reply] = await telegram.sent_messages(MEMBER)
    helpful = buttons(reply)[0]["callback_data"]
    telegram.press_button(MEMBER, reply, helpful)
    await telegram.wait_for("editMessageReplyMarkup")
    telegram.press_button(MEMBER, telegram.message(MEMBER, reply["message_id"]), helpful)
    await telegram.wait_for("answerCallbackQuery", 2)
    await asyncio.sleep(0.2)
    assert telegram.calls_of("editMessageReplyMarkup", status=400)  # Telegram: "message is not modified"
    assert len(await telegram.sent_messages(MEMBER)) == 1  # no apology followed
    assert store.stats().all_time.helpful == 1


async def test_admin_commands_refused_to_members_and_logged(
    bot: Application, telegram: FakeTelegram, store: Store
) -> None:
    for command in ("stats", "reindex", "reload"):
        telegram.send_text(MEMBER, f"/{command}")
    replies = await telegram.sent_messages(MEMBER, 3)
    assert sorted(r["text"] for r in replies) == sorted(
        formatting.NOT_ADMIN.format(command=c) for c in ("stats", "reindex", "reload")
    )
    refused = store.admin_actions()
    assert sorted((a.member, a.command, a.allowed) for a in refused) == [
        (str(MEMBER), "reindex", False),
        (str(MEMBER), "reload", False),
        (str(MEMBER), "stats", False),
    ]


async def test_admin_commands_work_for_admins(
    bot: Application, telegram: FakeTelegram, store: Store, settings: Settings, engine: AnswerEngine
) -> None:
    telegram.send_text(MEMBER, INSULINOMA)
    await telegram.sent_messages(MEMBER)
    telegram.send_text(ADMIN, "/stats")
    [stats] = await telegram.sent_messages(ADMIN)
    assert "<b>All time</b>\nQuestions: 1\nAnswered: 1 (100%)" in stats["text"]
    (settings.docs_dir / "stevia.md").write_text("# Stevia\n\nStevia is a sweetener from a plant.\n")
    telegram.send_text(ADMIN, "/reindex")
    reindexed = (await telegram.sent_messages(ADMIN, 2))[1]
    assert reindexed["text"].startswith(f"Reindexed {settings.docs_dir}: 4 documents")
    assert engine.answer("What is stevia?").title == "Stevia"
    telegram.send_text(ADMIN, "/reload")
    reloaded = (await telegram.sent_messages(ADMIN, 3))[2]
    assert reloaded["text"].startswith("Reloaded: now serving the model in")
    assert [(a.command, a.allowed) for a in store.admin_actions()] == [
        ("reload", True),
        ("reindex", True),
        ("stats", True),
    ]


async def test_admin_sees_why_a_reindex_failed(
    bot: Application, telegram: FakeTelegram, settings: Settings
) -> None:
    for doc in settings.docs_dir.iterdir():
        doc.unlink()
    settings.docs_dir.rmdir()
    telegram.send_text(ADMIN, "/reindex")
    [reply] = await telegram.sent_messages(ADMIN)
    assert reply["text"].startswith("/reindex failed:")
    assert str(settings.docs_dir) in reply["text"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(kind, text) for kind, text in formatting.NOT_TEXT_REPLIES.items() if kind != "other"],
)
async def test_non_text_messages_get_a_specific_reply(
    telegram: FakeTelegram, settings: Settings, engine: AnswerEngine, store: Store, kind: str, expected: str
) -> None:
    async with running_bot(settings, engine, store):
        telegram.send_media(MEMBER, kind)
        [reply] = await telegram.sent_messages(MEMBER)
    assert reply["text"] == expected


async def test_bad_inputs_get_polite_replies(
    bot: Application, telegram: FakeTelegram, settings: Settings
) -> None:
    telegram.send_text(MEMBER, "/ask")
    telegram.send_text(MEMBER + 1, "x" * (settings.max_question_chars + 1))
    telegram.send_text(MEMBER + 2, "/frobnicate")
    telegram.send_media(MEMBER + 3, "sticker")
    empty, too_long, unknown, sticker = [(await telegram.sent_messages(MEMBER + i))[0] for i in range(4)]
    assert empty["text"] == formatting.EMPTY_QUESTION
    assert too_long["text"] == formatting.TOO_LONG.format(length=1001, limit=1000)
    assert "/help" in unknown["text"]
    assert sticker["text"] == formatting.NOT_TEXT_REPLIES["sticker"]


async def test_start_and_help(bot: Application, telegram: FakeTelegram) -> None:
    telegram.send_text(MEMBER, "/start")
    [welcome] = await telegram.sent_messages(MEMBER)
    assert "not medical advice" in welcome["text"] and "emergency" in welcome["text"]
    telegram.send_text(MEMBER, "/help")
    assert "/ask" in (await telegram.sent_messages(MEMBER, 2))[1]["text"]
    members, admin = telegram.calls_of("setMyCommands")  # menus by role: everyone, then each admin
    assert "scope" not in members.params
    assert {c["command"] for c in members.params["commands"]} == {"start", "help", "ask"}
    assert admin.params["scope"] == {"type": "chat", "chat_id": ADMIN}
    assert {c["command"] for c in admin.params["commands"]} == {
        "start", "help", "ask", "faq", "tickets", "stats", "reindex", "reload"
    }  # fmt: skip


async def test_group_chat_answers_only_when_addressed(bot: Application, telegram: FakeTelegram) -> None:
    group = {"chat_id": GROUP_CHAT_ID, "chat_type": "supergroup"}
    telegram.send_text(MEMBER, INSULINOMA, **group)  # members talking among themselves
    telegram.send_media(MEMBER, "sticker", **group)
    telegram.send_text(MEMBER, f"/ask@{bot.bot.username} {INSULINOMA}", **group)
    [first] = await telegram.sent_messages(GROUP_CHAT_ID)
    telegram.send_text(MEMBER, f"@{bot.bot.username} What is brittle diabetes characterized by?", **group)
    second = (await telegram.sent_messages(GROUP_CHAT_ID, 2))[1]
    telegram.send_text(MEMBER, "What are the features of Wolfram syndrome?", reply_to=second, **group)
    third = (await telegram.sent_messages(GROUP_CHAT_ID, 3))[2]
    await asyncio.sleep(0.3)
    assert len(telegram.calls_of("sendMessage", chat_id=GROUP_CHAT_ID)) == 3
    assert CORPUS[1][3] in first["text"]
    assert CORPUS[0][3] in second["text"]
    assert CORPUS[2][3].replace("&", "&amp;") in third["text"]


async def test_rate_limit_answers_with_a_wait_message(
    telegram: FakeTelegram, tmp_path: Path, settings: Settings, reader: FakeReader
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 2})
    engine = AnswerEngine.from_settings(limited, reader=reader)
    async with running_bot(limited, engine, Store.from_settings(limited)):
        for _ in range(3):
            telegram.send_text(MEMBER, INSULINOMA)
        replies = await telegram.sent_messages(MEMBER, 3)
    waits = [r for r in replies if "Please wait" in r["text"]]
    assert len(waits) == 1 and len(reader.calls) == 2


async def test_fifty_members_at_once_all_answered(
    bot: Application, telegram: FakeTelegram, store: Store, reader: FakeReader, settings: Settings
) -> None:
    reader.delay_s = 0.02  # long enough that two reads overlap when allowed
    members = range(100, 150)
    for member in members:
        telegram.send_text(member, INSULINOMA)
    answers = await telegram.wait_for("sendMessage", 50, timeout=30)
    assert sorted(a.params["chat_id"] for a in answers) == list(members)  # each member once, none lost
    assert all(CORPUS[1][3] in a.params["text"] for a in answers)
    assert store.stats().all_time.questions == 50
    assert 1 < reader.max_in_flight <= settings.max_concurrent_answers


async def test_429_with_retry_after_is_survived(bot: Application, telegram: FakeTelegram) -> None:
    telegram.fail_next("sendMessage", count=1, retry_after=1)
    started = time.monotonic()
    telegram.send_text(MEMBER, INSULINOMA)
    [reply] = await telegram.sent_messages(MEMBER)
    assert CORPUS[1][3] in reply["text"]
    [refused] = telegram.calls_of("sendMessage", status=429)
    [answered] = telegram.calls_of("sendMessage")
    assert answered.at - refused.at >= 1.0
    assert time.monotonic() - started >= 1.0


async def test_errors_are_logged_and_the_member_gets_an_apology(
    telegram: FakeTelegram, settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenReader(FakeReader):
        def read(self, question, contexts, top_k=1, *, exact=False):
            raise RuntimeError("the reader broke")

    engine = AnswerEngine.from_settings(settings, reader=BrokenReader())
    async with running_bot(settings, engine, store):
        telegram.send_text(MEMBER, INSULINOMA)
        [reply] = await telegram.sent_messages(MEMBER)
        telegram.send_text(MEMBER, "/start")  # still alive
        await telegram.sent_messages(MEMBER, 2)
    assert reply["text"] == formatting.APOLOGY
    [record] = [r for r in caplog.records if r.name == "bot.handlers" and r.levelno == logging.ERROR]
    assert record.exc_info is not None and "the reader broke" in str(record.exc_info[1])


async def test_webhook_rejects_requests_without_the_secret(
    telegram: FakeTelegram, settings: Settings, engine: AnswerEngine, store: Store
) -> None:
    async with running_bot(settings, engine, store, webhook=True), aiohttp.ClientSession() as client:
        chat = {"id": 5, "type": "private"}
        update = {"update_id": 999, "message": {"message_id": 1, "date": 0, "chat": chat, "text": INSULINOMA}}
        forged = await client.post(telegram.webhook_url, json=update, headers={SECRET_HEADER: "wrong"})
        assert forged.status == 403
        missing = await client.post(telegram.webhook_url, json=update)
        assert missing.status == 403
        telegram.send_text(MEMBER, INSULINOMA)  # the real Telegram, with the secret
        await telegram.sent_messages(MEMBER)
    assert telegram.webhook_secret and len(telegram.webhook_secret) >= 32
    assert telegram.calls_of("sendMessage", chat_id=5) == []


async def test_typing_is_renewed_while_a_slow_answer_is_computed(
    telegram: FakeTelegram, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.handlers.TYPING_REFRESH_S", 0.1)
    engine = AnswerEngine.from_settings(settings, reader=FakeReader(delay_s=0.35))
    async with running_bot(settings, engine, store):
        telegram.send_text(MEMBER, INSULINOMA)
        [reply] = await telegram.wait_for("sendMessage", chat_id=MEMBER)
        await asyncio.sleep(0.3)
    typing = telegram.calls_of("sendChatAction", chat_id=MEMBER)
    assert len(typing) >= 3
    assert all(t.at <= reply.at for t in typing)  # renewals stop once the answer is on its way
