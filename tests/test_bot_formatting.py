"""Replies as Telegram HTML: escaping, the 4,096-character limit, the feedback keyboard's callback data."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from bot import formatting
from bot.answer import Answer, Timings
from bot.engine import AnswerEngine
from bot.faq import FaqEntry, FaqMatch
from bot.store import PeriodStats, Stats, Ticket
from retrieval import Passage
from retrieval.passages import content_id
from tests.bot_fakes import CORPUS, FakeIndex, FakeReader, make_settings

LONG_URL = "https://example.org/" + "a" * 300 + "?x=1&y=2"


KEY = b"test callback key"


def make_answer(
    text: str | None, sentence: str | None, title: str = "T", source: str | None = LONG_URL
) -> Answer:
    passage_text = sentence or "Some passage text."
    passage = Passage(content_id(passage_text), passage_text, "d.md", title, source, 0, len(passage_text))
    return Answer(text, 0.9, passage, None, sentence, title, source, Timings(1.0, 2.0, 3.0))


@pytest.mark.parametrize("question_id", [1, 42, 2**63 - 1])
@pytest.mark.parametrize("helpful", [True, False])
def test_feedback_data_round_trips_under_64_bytes(question_id: int, helpful: bool) -> None:
    data = formatting.encode_feedback(question_id, helpful, key=KEY)
    assert len(data.encode("utf-8")) < 64
    assert formatting.decode_feedback(data, key=KEY) == formatting.FeedbackVote(question_id, helpful)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "fb",
        "fb:1",
        "fb:1:2",
        "fb:x:1",
        "fb:-1:1",
        "fb:1:1:1",
        "xx:1:1",
        "fb:١:1",
        "fb:" + "9" * 70 + ":1",
    ],
)
def test_malformed_feedback_data_decodes_to_none(data: str | None) -> None:
    assert formatting.decode_feedback(data, key=KEY) is None


def test_forged_feedback_data_decodes_to_none() -> None:
    mine = formatting.encode_feedback(7, True, key=KEY)
    assert formatting.decode_feedback(mine, key=KEY) is not None
    signature = mine.rsplit(":", 1)[1]
    assert formatting.decode_feedback(f"fb:8:0:{signature}", key=KEY) is None  # another member's answer
    assert formatting.decode_feedback("fb:8:0", key=KEY) is None  # unsigned, as buttons once were
    assert formatting.decode_feedback(formatting.encode_feedback(8, False, key=b"guess"), key=KEY) is None


def test_keyboard_ticks_the_chosen_vote() -> None:
    before = formatting.feedback_keyboard(7, key=KEY).inline_keyboard[0]
    after = formatting.feedback_keyboard(7, chosen=False, key=KEY).inline_keyboard[0]
    signature = formatting.feedback_signature(7, KEY)
    assert [b.callback_data for b in before] == [f"fb:7:1:{signature}", f"fb:7:0:{signature}"]
    assert not before[1].text.startswith("✅") and after[1].text.startswith("✅")
    assert not after[0].text.startswith("✅")


def test_answer_html_is_escaped_and_links_the_source(tmp_path: Path) -> None:
    engine = AnswerEngine.from_settings(make_settings(tmp_path), reader=FakeReader(), index=FakeIndex())
    text = formatting.format_answer(engine.answer("What is Wolfram syndrome?"))
    title, source, _, phrase, _ = CORPUS[2]
    assert f"<b>{html.escape(phrase)}</b>" in text
    assert f'<a href="{html.escape(source)}">{html.escape(title)}</a>' in text
    assert "<&>" not in text


def test_long_sentence_is_cut_but_never_the_link() -> None:
    sentence = "<b>&" * 3000  # escapes to 5x its length
    text = formatting.format_answer(make_answer("an answer", sentence))
    assert len(text) <= formatting.MAX_MESSAGE_CHARS
    assert text.endswith(f'<a href="{html.escape(LONG_URL)}">T</a>')
    assert "…" in text and "<b>&" not in text.split("\n\n")[1]


def test_an_answer_that_is_its_whole_sentence_is_not_quoted_twice() -> None:
    intro = "The Human Phenotype Ontology provides the following list of signs and symptoms for X."
    assert formatting.format_answer(make_answer(intro, intro)).count("Human Phenotype Ontology") == 1
    assert "<i>“A sentence.”</i>" in formatting.format_answer(make_answer("an answer", "A sentence."))


def test_overlong_answer_and_title_are_shortened() -> None:
    text = formatting.format_answer(make_answer("x" * 5000, "A sentence.", title="t" * 5000))
    assert len(text) <= formatting.MAX_MESSAGE_CHARS
    assert f"<b>{'x' * 100}" in text and "x" * (formatting.MAX_ANSWER_CHARS + 1) not in text


@pytest.mark.parametrize("budget", range(0, 40))
def test_escape_within_never_exceeds_its_budget(budget: int) -> None:
    escaped = formatting.escape_within("a<b>&c " * 5, budget)
    assert len(escaped) <= budget
    assert "<" not in escaped and "&c" not in escaped.replace("&amp;", "").replace("&lt;", "").replace(
        "&gt;", ""
    )


def test_no_answer_points_to_the_best_passage() -> None:
    answer = make_answer(None, None, title="Brittle <diabetes>", source="https://x.org/a")
    text = formatting.format_answer(answer)
    assert "could not find a clear answer" in text
    assert '<a href="https://x.org/a">Brittle &lt;diabetes&gt;</a>' in text
    assert "Some passage text." in text


def test_no_answer_without_any_passage() -> None:
    answer = Answer(None, 0.0, None, None, None, None, None, Timings(0, 0, 0))
    text = formatting.format_answer(answer)
    assert "could not find" in text and "href" not in text


def test_source_without_url_shows_the_title() -> None:
    assert formatting.source_line("Notes & tips", None) == "📄 Source: Notes &amp; tips"


def test_stats_text() -> None:
    stats = Stats(
        today=PeriodStats(0, 0, 0, 0, None), all_time=PeriodStats(4, 3, 2, 1, 12.4, 1, 2), faq_entries=5,
        open_tickets=1, answered_tickets=1,
    )  # fmt: skip
    text = formatting.format_stats(stats)
    assert "Median latency: 12 ms\nFrom the FAQ: 1 · Handed to volunteers: 2" in text
    assert "FAQ entries: 5\nVolunteer tickets: 1 open, 1 answered" in text
    assert "<b>Today (UTC)</b>\nQuestions: 0\nAnswered: 0 (0%)" in text
    assert "Answered: 3 (75%)\nHelpful: 2 · Not helpful: 1\nMedian latency: 12 ms" in text
    assert "Median latency: n/a" in text


def test_a_ticket_shows_the_question_and_passage_and_nothing_of_the_member() -> None:
    ticket = Ticket(
        12, "2026-11-26T10:00:00+00:00", "Is <b>this</b> rare & sad?", "open", 555001, 9, None, None,
        "Brittle <diabetes>", "Brittle diabetes is rare. " * 40,
    )  # fmt: skip
    text = formatting.format_ticket(ticket)
    assert text.startswith("🙋 #12: Is <b>this</b> rare & sad?\n\n")  # plain text: the words exactly
    assert "(Brittle <diabetes>)" in text and "…”" in text
    assert "555001" not in text and len(text) <= formatting.MAX_MESSAGE_CHARS
    bare = formatting.format_ticket(Ticket(3, "t", "When do we meet?", "open", 1, None, None, None))
    assert "The documents had nothing on this." in bare


def test_volunteer_callback_data_is_signed() -> None:
    key = b"k" * 32
    data = formatting.encode_volunteer(42, key=key)
    assert data.startswith("tk:42:") and len(data.encode()) < 64
    assert formatting.decode_volunteer(data, key=key) == 42
    assert formatting.decode_volunteer(data, key=b"other" * 8) is None
    assert formatting.decode_volunteer(data.replace("tk:42", "tk:43"), key=key) is None
    assert formatting.decode_feedback(data, key=key) is None  # not a vote
    keyboard = formatting.feedback_keyboard(42, key=key, volunteer=True)
    assert keyboard.inline_keyboard[1][0].callback_data == data


def test_an_faq_answer_is_the_admins_words_labelled() -> None:
    match = FaqMatch(FaqEntry(1, "When do we meet?", "Tuesdays, 7 pm & <online>"), 0.8)
    assert formatting.format_faq_answer(match) == (
        f"{formatting.FAQ_LABEL}\n(When do we meet?)\n\nTuesdays, 7 pm & <online>"
    )
    long = FaqMatch(FaqEntry(1, "Q?", "a" * 5000), 0.8)
    assert len(formatting.format_faq_answer(long)) == formatting.MAX_MESSAGE_CHARS
