"""The official SQuAD metric: exact match and token F1, best over the gold answers.

Written here rather than taken from the ``evaluate`` library because that library downloads its metric
scripts from the Hugging Face hub, which our machines cannot reach. It follows the official scripts:
SQuAD v1.1 ``evaluate-v1.1.py`` (normalisation, EM, F1, unanswered questions score 0) and, for
unanswerable questions, SQuAD v2.0 ``evaluate-v2.0.py`` (gold "" for no answer; HasAns/NoAns splits).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_PUNCTUATION = frozenset(string.punctuation)  # ASCII punctuation only, as in the official script
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised texts (an empty side scores 1 only against another empty)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _best(metric, prediction: str, golds: Sequence[str]) -> float:
    """The metric against the closest gold answer; an unanswerable question's gold is ""."""
    return max(metric(prediction, gold) for gold in (golds or [""]))


def squad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """EM and F1 (percent) over the gold questions; a question without a prediction scores 0.

    Args:
        predictions: question id -> predicted text ("" for no answer).
        golds: question id -> gold answer texts (empty for an unanswerable question).

    Returns:
        ``{"exact_match", "f1", "n"}``, plus ``HasAns_exact``, ``HasAns_f1``, ``HasAns_total``,
        ``NoAns_exact``, ``NoAns_f1``, ``NoAns_total`` when some questions are unanswerable.
    """
    em_by_id: dict[str, float] = {}
    f1_by_id: dict[str, float] = {}
    for qid, gold in golds.items():
        if qid not in predictions:
            em_by_id[qid] = f1_by_id[qid] = 0.0
            continue
        em_by_id[qid] = _best(exact_match, predictions[qid], gold)
        f1_by_id[qid] = _best(f1, predictions[qid], gold)
    scores = _totals(em_by_id, f1_by_id, list(golds))
    result: dict[str, float] = {"exact_match": scores[0], "f1": scores[1], "n": len(golds)}
    no_answer = [qid for qid, gold in golds.items() if not gold]
    if no_answer:
        has_answer = [qid for qid, gold in golds.items() if gold]
        for name, ids in (("HasAns", has_answer), ("NoAns", no_answer)):
            em, f = _totals(em_by_id, f1_by_id, ids)
            result.update({f"{name}_exact": em, f"{name}_f1": f, f"{name}_total": len(ids)})
    return result


def _totals(
    em_by_id: Mapping[str, float], f1_by_id: Mapping[str, float], ids: Sequence[str]
) -> tuple[float, float]:
    """Mean EM and F1 over ``ids``, in percent (0 for no ids)."""
    if not ids:
        return 0.0, 0.0
    return 100.0 * sum(em_by_id[i] for i in ids) / len(ids), 100.0 * sum(f1_by_id[i] for i in ids) / len(ids)
