"""The demo's panels: what a member reads, and under it the confidence an answer needs."""

from __future__ import annotations

from bot.answer import Answer, Timings
from bot.demo import render


def declined(confidence: float) -> Answer:
    return Answer(None, confidence, None, None, None, None, None, Timings(5.0, 100.0, 110.0))


def test_a_declined_answer_shows_the_confidence_it_would_have_needed() -> None:
    footer = render("my son has T1D, what causes it?", declined(0.82), threshold=0.93).subtitle
    assert "confidence 0.82 < 0.93 needed" in footer
    panel = render("which team won the 1998 world cup?", declined(0.01), threshold=0.66)
    assert panel.renderable.plain == "I could not find an answer to that in our documents."  # no page
    assert panel.width >= len(panel.subtitle)  # the footer is never cut short
