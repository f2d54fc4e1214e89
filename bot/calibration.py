"""Calibrated confidence: the probability that the engine's answer is right, and when to decline.

A reader's softmax says how sure it is of a span *given* the passage, not whether the passage answers the
question; over a wrong passage it is as sure as over a right one (the old engine answered wrong at ~0.94).
So the answer's confidence is a separate model: logistic regression (scikit-learn, fitted by
``bench/tune_engine.py`` or ``bot calibrate``) over evidence from every stage of the pipeline (the
reader's span and no-answer scores, how the span fares against the other passages, the retrieval scores)
fitted on held-out questions that include unanswerable ones and retrieval misses
(``DEFAULT_CALIBRATION_DATA``). Its output is what members see as confidence; the threshold is chosen
on out-of-fold predictions for a target precision (default 80% of answers right: see
``DEFAULT_TARGET_PRECISION``).

The fitted model is a few numbers in ``calibration.json`` beside the reader's weights: it belongs to the
reader it was fitted for. Serving needs only numpy (the sigmoid of a dot product); scikit-learn is
imported by ``fit`` alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.atomic import write_json_atomic

CALIBRATION_FILE = "calibration.json"
CALIBRATION_VERSION = 1
# The precision asked of the answers the bot gives (share right, on dev, out of fold). Measured with
# bench/tune_engine.py on the shipped reader (held out by document, the whole procedure on the other
# half): asking 90% gives answers 85% right but only 17% of answerable questions answered right; asking
# 80% gives 81% right and 25% answered right (unanswerable declined 100%); asking 75% gives 76% and 30%
# (95% declined). 80% gives half again the help at about the same honesty; `--target-precision 0.9`
# is one flag away for a stricter group.
DEFAULT_TARGET_PRECISION = 0.8
# What the calibration is fitted on (paths from the repository root): the dev questions, about documents
# no training step saw, and the calibration questions, about the documents the bot serves, which the
# reader has read in training and is surer of than it should be (data/diabetes-qa/build.py). Fitted on
# dev alone, the shipped calibration answered the calibration questions only 75.9% right at its 80%
# target, and declined 91.0% of their unanswerable ones.
DEFAULT_CALIBRATION_DATA = (Path("data/diabetes-qa/dev.json"), Path("data/diabetes-qa/calib.json"))
# An answer is "right" when its token F1 with a gold answer reaches this (SQuAD's metric): a span that
# shares half its words with the annotated one answers the question for a member.
RIGHT_F1 = 0.5

# The evidence of one candidate answer (see ``bot.fusion.candidate_features``).
FEATURES: tuple[str, ...] = (
    "margin",  # span score minus its passage's no-answer score: the reader's "answer here" log-odds
    "span_score",
    "null_score",
    "probability",  # softmax of the span over all spans of all passages read, plus "no answer"
    "margin_gap",  # how far the best margin is ahead of the best one of the other passages
    "agreement",  # share of the passages read whose best span is this same answer text
    "positive_share",  # share of the passages read whose best span beats their no-answer score
    "retrieval",  # the passage's retrieval score (hybrid fused, in [0, 1])
    "retrieval_rank",  # 1 / (1 + rank) of the passage in the retrieved list
    "bm25",  # log(1 + BM25) of the passage
    "dense",  # cosine of the passage to the question
    "top_dense",  # best cosine of any retrieved passage: is the topic in the documents at all?
    "answer_words",  # log(1 + words of the answer)
)


class CalibrationError(ValueError):
    """A ``calibration.json`` that cannot be used (the message names the file)."""


@dataclass(frozen=True)
class Calibration:
    """A fitted confidence model and its decision threshold.

    Attributes:
        features: the feature names, in the order of the coefficients.
        mean: per-feature mean used to standardise (fitted).
        scale: per-feature standard deviation used to standardise (fitted).
        coef: logistic-regression coefficients on the standardised features.
        intercept: its intercept.
        threshold: answers with a calibrated probability below this are declined.
        target_precision: the precision the threshold was chosen for.
        top_k: passages read per question when it was fitted (the engine should read as many).
        retrieval_weight: weight of the retrieval score in choosing among candidates when fitted.
        fitted_on: a description of the data it was fitted on.
        report: out-of-fold figures on that data (answered right, precision, declined...).
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    target_precision: float
    top_k: int
    retrieval_weight: float
    fitted_on: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise CalibrationError(f"calibration has {n} features but {len(self.coef)} coefficients")
        unknown = sorted(set(self.features) - set(FEATURES))
        if unknown:
            raise CalibrationError(f"calibration uses unknown features {unknown}")

    def probability(self, features: dict[str, float]) -> float:
        """P(the answer is right) for one candidate's features."""
        x = np.array([features[name] for name in self.features], dtype=np.float64)
        z = (
            float(np.dot((x - np.array(self.mean)) / np.array(self.scale), np.array(self.coef)))
            + self.intercept
        )
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def save(self, model_dir: Path) -> Path:
        """Write ``calibration.json`` into ``model_dir`` atomically (temp file, then rename)."""
        path = Path(model_dir) / CALIBRATION_FILE
        write_json_atomic(path, {"version": CALIBRATION_VERSION, **asdict(self)})
        return path

    @classmethod
    def load(cls, model_dir: Path) -> Calibration | None:
        """The calibration of a model directory; None when it has none.

        Raises:
            CalibrationError: the file is there but unreadable, of another version or malformed.
        """
        path = Path(model_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CalibrationError(f"cannot read {path}: {error}") from error
        if not isinstance(data, dict) or data.pop("version", None) != CALIBRATION_VERSION:
            raise CalibrationError(f"{path} is not a version-{CALIBRATION_VERSION} calibration; refit it")
        try:
            for key in ("features", "mean", "scale", "coef"):
                data[key] = tuple(data[key])
            return cls(**data)
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"malformed calibration {path}: {error}") from error


@dataclass(frozen=True)
class Outcome:
    """One candidate answer to a dev question: its features and whether answering with it would be right.

    A question has one outcome per passage read that offered a span (or one featureless outcome when no
    passage did); the model learns from all of them, and the engine answers with the likeliest.
    """

    question_id: str
    group: str  # the document, so folds hold out whole documents
    answerable: bool
    right: bool  # answering with this candidate is right (False for unanswerable questions)
    features: dict[str, float]
    text: str = ""  # the candidate answer ("" when no passage offered one)
    passage_index: int | None = None  # its passage's place in the retrieved list (None: no passage)


@dataclass(frozen=True)
class Coverage:
    """The engine's figures at one threshold (NaN: decisions pooled from several, as ``coverage_of``)."""

    threshold: float
    answered: float  # share of all questions answered
    right: float  # share of answerable questions answered right
    precision: float  # share of answers that are right
    declined_unanswerable: float  # share of unanswerable questions declined


def coverage_at(probabilities: Sequence[float], outcomes: Sequence[Outcome], threshold: float) -> Coverage:
    """The figures when every candidate with probability >= threshold is given as the answer."""
    return coverage_of([p >= threshold for p in probabilities], outcomes, threshold)


def coverage_of(
    answered: Sequence[bool], outcomes: Sequence[Outcome], threshold: float = math.nan
) -> Coverage:
    """The figures when the outcomes marked ``answered`` are given as answers, however that was decided
    (one threshold, or each fold of a held-out run its own)."""
    n_answerable = sum(o.answerable for o in outcomes) or 1
    n_unanswerable = sum(not o.answerable for o in outcomes) or 1
    n_answered = sum(answered)
    right = sum(a and o.right for a, o in zip(answered, outcomes, strict=True))
    declined = sum(not a and not o.answerable for a, o in zip(answered, outcomes, strict=True))
    return Coverage(
        threshold=threshold,
        answered=n_answered / max(len(outcomes), 1),
        right=right / n_answerable,
        precision=right / n_answered if n_answered else 1.0,
        declined_unanswerable=declined / n_unanswerable,
    )


def threshold_for_precision(
    probabilities: Sequence[float], outcomes: Sequence[Outcome], target: float
) -> float:
    """The lowest threshold whose answers reach ``target`` precision (most answers at that precision).

    Thresholds are the candidates' own probabilities; when none reaches the target, the one with the
    best precision is taken (ties: the lower threshold), so the bot still answers its surest questions.
    """
    candidates = sorted(set(probabilities), reverse=True)
    if not candidates:
        return 1.0
    best_t, best_precision = candidates[0], -1.0
    chosen = None
    for t in candidates:  # descending: coverage grows
        c = coverage_at(probabilities, outcomes, t)
        if c.precision >= target:
            chosen = t
        if c.precision >= best_precision:
            best_t, best_precision = t, c.precision
    return chosen if chosen is not None else best_t


def best_per_question(
    outcomes: Sequence[Outcome], probabilities: Sequence[float]
) -> tuple[list[Outcome], list[float]]:
    """Each question's likeliest candidate and its probability, in the order questions first appear."""
    best: dict[str, tuple[Outcome, float]] = {}
    for outcome, p in zip(outcomes, probabilities, strict=True):
        if outcome.question_id not in best or p > best[outcome.question_id][1]:
            best[outcome.question_id] = (outcome, p)
    chosen = list(best.values())
    return [o for o, _ in chosen], [p for _, p in chosen]


def with_always_answered(
    chosen: Sequence[Outcome], probabilities: Sequence[float], always_answered: Sequence[Outcome]
) -> tuple[list[Outcome], list[float]]:
    """The chosen candidates and the questions answered without the threshold, those at probability 1
    (above any threshold), so that coverage and precision count them as the engine gives them."""
    return [*chosen, *always_answered], [*probabilities, *[1.0] * len(always_answered)]


def _matrix(outcomes: Sequence[Outcome], names: Sequence[str]) -> np.ndarray:
    return np.array([[o.features[n] for n in names] for o in outcomes], dtype=np.float64)


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, coef, intercept) of a standardised, L2-regularised logistic regression."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - fitting only, not serving

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    if len(set(y.tolist())) < 2:  # one class only: a constant model (no regression to fit)
        rate = float(y.mean()) if len(y) else 0.0
        intercept = math.log(max(rate, 1e-6) / max(1 - rate, 1e-6))
        return mean, scale, np.zeros(x.shape[1]), intercept
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit((x - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def out_of_fold(outcomes: Sequence[Outcome], folds: int = 5, names: Sequence[str] = FEATURES) -> list[float]:
    """Each outcome's probability from a model fitted on the other folds (whole documents held out)."""
    from sklearn.model_selection import GroupKFold  # noqa: PLC0415

    x = _matrix(outcomes, names)
    y = np.array([o.right for o in outcomes], dtype=np.int64)
    groups = [o.group for o in outcomes]
    probabilities = np.zeros(len(outcomes))
    n_splits = min(folds, len(set(groups)))
    if n_splits < 2:  # one document: nothing to hold out, so in-sample (only tiny runs get here)
        mean, scale, coef, intercept = _fit_logistic(x, y)
        return (1.0 / (1.0 + np.exp(-(((x - mean) / scale) @ coef + intercept)))).tolist()
    for train, test in GroupKFold(n_splits=n_splits).split(x, y, groups):
        mean, scale, coef, intercept = _fit_logistic(x[train], y[train])
        z = ((x[test] - mean) / scale) @ coef + intercept
        probabilities[test] = 1.0 / (1.0 + np.exp(-z))
    return probabilities.tolist()


def fit(
    outcomes: Sequence[Outcome],
    *,
    top_k: int,
    retrieval_weight: float,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    fitted_on: str = "",
    folds: int = 5,
    always_answered: Sequence[Outcome] = (),
) -> Calibration:
    """Fit the confidence model on all candidates; choose its threshold on out-of-fold probabilities.

    The threshold comes from predictions on documents the model did not see, applied as the engine
    applies them (each question answered with its likeliest candidate), so the precision it promises is
    what new documents get, not the flattering in-sample figure. ``always_answered``: questions the
    engine answers without the threshold (``AnswerEngine.direct_answer``); they count in the precision
    the threshold reaches, not in the fit.
    """
    if not outcomes:
        raise CalibrationError("no questions to calibrate on")
    chosen, probabilities = with_always_answered(
        *best_per_question(outcomes, out_of_fold(outcomes, folds)), always_answered
    )
    threshold = threshold_for_precision(probabilities, chosen, target_precision)
    x = _matrix(outcomes, FEATURES)
    y = np.array([o.right for o in outcomes], dtype=np.int64)
    mean, scale, coef, intercept = _fit_logistic(x, y)
    report = asdict(coverage_at(probabilities, chosen, threshold))
    report["questions"] = len(chosen)
    report["unanswerable"] = sum(not o.answerable for o in chosen)
    return Calibration(
        features=FEATURES,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in coef),
        intercept=intercept,
        threshold=float(threshold),
        target_precision=target_precision,
        top_k=top_k,
        retrieval_weight=retrieval_weight,
        fitted_on=fitted_on,
        report={k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()},
    )
