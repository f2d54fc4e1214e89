"""Types the reader hands across the finetune boundary (no torch here, so importers stay light)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """One candidate answer span.

    Attributes:
        text: the answer text, ``context[start:end]``.
        start: character offset of the span in its context.
        end: character offset just past the span.
        score: start logit + end logit (comparable across contexts of one question).
        probability: softmax of ``score`` over the n-best candidate spans of the question.
    """

    text: str
    start: int
    end: int
    score: float
    probability: float


@dataclass(frozen=True)
class Reading:
    """What the reader found in one context.

    Attributes:
        spans: the best spans in this context, best first (may be empty).
        no_answer_score: the CLS start+end logit, lowest over the context's windows (SQuAD v2
            convention); a span whose score does not beat it is, to a v2-trained model, no answer.
    """

    spans: tuple[Span, ...]
    no_answer_score: float

    @property
    def best(self) -> Span | None:
        return self.spans[0] if self.spans else None
