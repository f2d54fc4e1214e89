"""BM25 scoring: small-corpus pitfalls guarded, inverted-index search identical to rank-bm25."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from retrieval import BM25Index, IndexSettings, Passage
from retrieval.index import make_bm25, passage_terms, top_k_order
from retrieval.passages import content_id
from retrieval.synonyms import SynonymTable
from retrieval.tokenize import tokenize

NO_SYNONYMS = SynonymTable()


def _passages(texts: list[str]) -> list[Passage]:
    return [Passage(content_id(t), t, f"doc{i}", f"Doc {i}", None, 0, len(t)) for i, t in enumerate(texts)]


def _index(texts: list[str], **settings: object) -> BM25Index:
    return BM25Index(_passages(texts), IndexSettings(index_title=False, **settings), synonyms=NO_SYNONYMS)


def _ranking(index: BM25Index, query: str) -> list[str]:
    return [r.passage.doc_id for r in index.search(query, top_k=10)]


def test_two_documents_plain_rank_bm25_fails_where_ours_ranks_sensibly() -> None:
    texts = ["An insulin pump gives insulin all day.", "Insulin injections are given with a pen."]
    # The pitfall: "pump" is in exactly half the documents (idf 0) and "insulin" in all (negative idf,
    # floored at epsilon * a mean idf that is itself negative), so plain BM25Okapi cannot rank.
    plain = BM25Okapi([tokenize(t) for t in texts]).get_scores(tokenize("insulin pump"))
    assert plain[0] <= 0 and plain[1] <= 0
    ours = _index(texts).search("insulin pump")
    assert [r.passage.doc_id for r in ours] == ["doc0", "doc1"]
    assert ours[0].score > ours[1].score > 0


def test_three_documents_term_in_two_of_three_still_counts() -> None:
    texts = [
        "Ketones build up in diabetic ketoacidosis.",
        "Check ketones when blood glucose is high.",
        "Exercise helps insulin work better.",
    ]
    assert _ranking(_index(texts), "ketones") == ["doc0", "doc1"]
    assert _ranking(_index(texts), "high ketones")[0] == "doc1"


def test_a_term_in_every_document_still_ranks_by_frequency_not_all_zero() -> None:
    texts = ["Diabetes care.", "Diabetes diabetes diabetes care.", "Diabetes and food care."]
    results = _index(texts).search("diabetes")
    assert len(results) == 3 and all(r.score > 0 for r in results)
    assert results[0].passage.doc_id == "doc1"


def test_no_match_returns_empty_and_bad_top_k_is_refused() -> None:
    index = _index(["Insulin lowers blood glucose."])
    assert index.search("football stadium") == []
    assert index.search("the and of") == []  # only stop words
    with pytest.raises(ValueError, match="top_k"):
        index.search("insulin", top_k=0)


def test_empty_index_searches_to_nothing() -> None:
    assert BM25Index([], IndexSettings(), synonyms=NO_SYNONYMS).search("insulin") == []


def _random_corpus(rng: random.Random, passages: int, vocabulary: int) -> list[str]:
    words = [f"w{i}" for i in range(vocabulary)]
    weights = [1 / (rank + 1) for rank in range(vocabulary)]  # Zipf-like, so many shared terms
    return [" ".join(rng.choices(words, weights, k=rng.randint(3, 40))) for _ in range(passages)]


@pytest.mark.parametrize("variant", ["okapi", "plus", "l"])
def test_inverted_index_scores_are_identical_to_get_scores(variant: str) -> None:
    rng = random.Random(7)
    texts = _random_corpus(rng, passages=400, vocabulary=300)
    settings = IndexSettings(index_title=False, variant=variant)
    index = BM25Index(_passages(texts), settings, synonyms=NO_SYNONYMS)
    baseline = make_bm25([passage_terms(p, settings) for p in index.passages], settings)
    for _ in range(40):
        query = rng.choices([f"w{i}" for i in range(320)], k=rng.randint(1, 6))  # some unknown terms
        full = baseline.get_scores(query)
        ids, scores = index._scorer.score(query)
        # Bit-identical on every candidate, and every other passage has the same (lowest) score.
        assert np.array_equal(scores, full[ids])
        others = np.setdiff1d(np.arange(len(texts)), ids)
        assert (full[others] <= (scores.min() if len(scores) else np.inf)).all()
        ours = [texts.index(r.passage.text) for r in index.search_terms(query, top_k=10)]
        expected = [int(i) for i in np.lexsort((np.arange(len(full)), -full))[: len(ours)]]
        assert ours == expected and len(ours) == min(10, len(ids))


def test_batch_scores_agree_with_rank_bm25_get_batch_scores() -> None:
    rng = random.Random(3)
    texts = _random_corpus(rng, passages=200, vocabulary=150)
    settings = IndexSettings(index_title=False)
    index = BM25Index(_passages(texts), settings, synonyms=NO_SYNONYMS)
    baseline = make_bm25([passage_terms(p, settings) for p in index.passages], settings)
    ids, scores = index._scorer.score(["w1", "w20", "w77"])
    assert np.array_equal(scores, np.array(baseline.get_batch_scores(["w1", "w20", "w77"], list(ids))))


def test_top_k_order_breaks_ties_by_passage_order() -> None:
    ids = np.array([5, 2, 9, 7, 1])
    scores = np.array([1.0, 3.0, 3.0, 0.5, 3.0])
    assert [int(ids[i]) for i in top_k_order(ids, scores, 2)] == [1, 2]
    assert [int(ids[i]) for i in top_k_order(ids, scores, 10)] == [1, 2, 9, 5, 7]


def test_synonyms_find_the_spelled_out_form_with_less_weight() -> None:
    texts = ["Glycated hemoglobin shows your average glucose.", "Shoes should fit well."]
    synonyms = SynonymTable.from_lines(["a1c, hba1c, glycated hemoglobin"])
    index = BM25Index(
        _passages(texts), IndexSettings(index_title=False, synonym_weight=0.3), synonyms=synonyms
    )
    terms, weights = index.query_terms("normal A1C?")
    assert terms == ["normal", "a1c", "hba1c", "glycat", "hemoglobin"]
    assert weights == [1.0, 1.0, 0.3, 0.3, 0.3]
    assert [r.passage.doc_id for r in index.search("normal A1C?")] == ["doc0"]


def test_title_terms_are_indexed_when_enabled() -> None:
    passages = [Passage("a", "It is inherited.", "d0", "Wolfram syndrome", None, 0, 16)]
    assert BM25Index(passages, IndexSettings(), synonyms=NO_SYNONYMS).search("wolfram")
    assert BM25Index(passages, IndexSettings(index_title=False), synonyms=NO_SYNONYMS).search("wolfram") == []
