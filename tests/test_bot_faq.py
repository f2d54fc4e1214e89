"""The FAQ matcher on its own: parsing ``/faq add``, exact and close matches, the threshold, and (once,
with the real all-MiniLM-L6-v2) a paraphrase matched at the measured threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.faq import TUNED_FAQ_THRESHOLD, FaqEntry, FaqMatcher, normalise_question, parse_faq_add
from tests.bot_fakes import BagOfWordsEncoder

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = [
    FaqEntry(1, "When do we meet?", "Every second Tuesday at 7 pm."),
    FaqEntry(2, "Who runs the Thursday walk?", "Maria."),
]


def test_parse_faq_add() -> None:
    assert parse_faq_add(" When do we meet? |  Tuesdays | at 7 ") == ("When do we meet?", "Tuesdays | at 7")
    for bad in ("no bar", "| only an answer", "only a question |", ""):
        with pytest.raises(ValueError, match="/faq add QUESTION | ANSWER"):
            parse_faq_add(bad)
    with pytest.raises(ValueError, match="the answer is 3001 characters"):
        parse_faq_add("Q? | " + "a" * 3001)


def test_normalise_question() -> None:
    assert normalise_question("  When  do WE meet?! ") == normalise_question("when do we meet")


def test_exact_words_match_without_the_model() -> None:
    def no_model() -> None:
        raise AssertionError("the encoder must not load for an exact match")

    assert FaqMatcher(lambda: ENTRIES, no_model).match("when do we MEET").entry.id == 1


def test_no_entries_loads_nothing_and_matches_nothing() -> None:
    def no_model() -> None:
        raise AssertionError("the encoder must not load without FAQ entries")

    assert FaqMatcher(list, no_model).match("When do we meet?") is None


def test_close_questions_match_and_others_do_not() -> None:
    encoder = BagOfWordsEncoder()
    matcher = FaqMatcher(lambda: ENTRIES, lambda: encoder, threshold=0.6)
    match = matcher.match("what time do we meet")
    assert match is not None and match.entry.id == 1 and 0.6 <= match.similarity < 1.0
    assert matcher.match("What is brittle diabetes?") is None
    calls = encoder.calls
    matcher.match("who runs the walk on thursday")
    assert encoder.calls == calls + 1  # the entries' vectors are cached: only the question is embedded


def test_the_threshold_is_checked() -> None:
    with pytest.raises(ValueError, match="cosine similarity in"):
        FaqMatcher(list, BagOfWordsEncoder, threshold=1.5)


@pytest.mark.integration
def test_minilm_matches_written_paraphrases_at_the_measured_threshold() -> None:
    from retrieval import SentenceEncoder

    data = json.loads((ROOT / "data" / "faq-paraphrases.json").read_text(encoding="utf-8"))
    entries = [FaqEntry(i + 1, e["question"], e["answer"]) for i, e in enumerate(data["entries"][:4])]
    encoder = SentenceEncoder(num_threads=1)
    matcher = FaqMatcher(lambda: entries, lambda: encoder, TUNED_FAQ_THRESHOLD)
    assert matcher.match("who leads the walk on thursdays?").entry.question == "Who runs the Thursday walk?"
    assert matcher.match("is there a membership fee?").entry.question == "How much does membership cost?"
    for off_topic in ("What is brittle diabetes?", "How often should I check my blood sugar?"):
        assert matcher.match(off_topic) is None
