"""Dense and hybrid retrieval: fusion maths, vectors in the index generation, model identity, boilerplate."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval import HybridIndex, HybridSettings, IndexLoadError, build_index, load_index
from retrieval.boilerplate import content_segments, drop_reason
from retrieval.hybrid import fuse_scores, min_max
from retrieval.manifest import MANIFEST, VECTORS
from retrieval.passages import split_sentences
from retrieval.tokenize import words
from tests.retrieval_fixtures import write_corpus

DIM = 64


class HashingEncoder:
    """A deterministic bag-of-words encoder: shared words make vectors close (no model needed)."""

    def __init__(self, name: str = "hashing-test") -> None:
        self.model_id = name
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str], progress=None) -> np.ndarray:  # noqa: ANN001
        self.calls.append(len(texts))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in words(text):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)


def test_min_max_and_score_fusion_weights() -> None:
    assert min_max(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert min_max(np.array([5.0])).tolist() == [1.0]
    bm25, dense = np.array([10.0, 0.0]), np.array([0.1, 0.9])
    ranks = np.array([0.0, 1.0])
    lexical = fuse_scores(bm25, dense, HybridSettings(dense_weight=0.0), ranks, ranks[::-1])
    semantic = fuse_scores(bm25, dense, HybridSettings(dense_weight=1.0), ranks, ranks[::-1])
    assert lexical.argmax() == 0 and semantic.argmax() == 1


def test_rrf_rewards_agreement() -> None:
    settings = HybridSettings(fusion="rrf", dense_weight=0.5)
    fused = fuse_scores(
        np.zeros(3), np.zeros(3), settings, np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 1.0])
    )
    assert fused.argmax() == 0  # first on both lists


def test_hybrid_index_is_built_reused_and_searched(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    encoder = HashingEncoder()
    report = build_index(docs, tmp_path / "index", encoder=encoder)
    assert report.embedding_model == "hashing-test" and report.embedded_passages == report.passages
    assert (tmp_path / "index" / VECTORS).is_file()
    again = build_index(docs, tmp_path / "index", encoder=encoder)
    assert again.embedded_passages == 0  # unchanged documents keep their vectors

    index = load_index(tmp_path / "index", encoder, HybridSettings(dense_weight=0.5))
    assert isinstance(index, HybridIndex)
    for mode in ("bm25", "dense", "hybrid"):
        hits = index.search("insulin pump", top_k=2, mode=mode)
        assert hits and hits[0].passage.title == "Insulin pumps", mode
    hybrid = index.search("insulin pump", top_k=3)
    assert all(0.0 <= h.score <= 1.0 for h in hybrid) and hybrid[0].bm25 > 0 and hybrid[0].dense > 0


def test_changed_document_is_re_embedded_alone(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    encoder = HashingEncoder()
    build_index(docs, tmp_path / "index", encoder=encoder)
    changed = docs / "pumps.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nA new closing sentence about insulin.\n")
    report = build_index(docs, tmp_path / "index", encoder=encoder)
    assert 0 < report.embedded_passages < report.passages


def test_another_encoder_is_refused_with_the_fix(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    build_index(docs, tmp_path / "index", encoder=HashingEncoder("model-a"))
    with pytest.raises(IndexLoadError, match="embedded with model-a, but the encoder is model-b; rebuild"):
        load_index(tmp_path / "index", HashingEncoder("model-b"))
    # A new model re-embeds everything instead of mixing vectors of two models.
    report = build_index(docs, tmp_path / "index", encoder=HashingEncoder("model-b"))
    assert report.embedded_passages == report.passages


def test_bm25_only_index_cannot_be_searched_densely(tmp_path: Path) -> None:
    build_index(write_corpus(tmp_path / "docs"), tmp_path / "index")
    assert not (tmp_path / "index" / VECTORS).exists()
    with pytest.raises(IndexLoadError, match="no passage vectors"):
        load_index(tmp_path / "index", HashingEncoder())


def test_corrupt_vectors_are_refused(tmp_path: Path) -> None:
    build_index(write_corpus(tmp_path / "docs"), tmp_path / "index", encoder=HashingEncoder())
    vectors = (tmp_path / "index").resolve() / VECTORS
    vectors.write_bytes(vectors.read_bytes()[:-8])
    with pytest.raises(IndexLoadError, match=f"{VECTORS} does not match its manifest"):
        load_index(tmp_path / "index", HashingEncoder())


def test_boilerplate_blocks_are_dropped_with_reasons(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leaflet.md").write_text(
        "# Type 1 diabetes\n\nType 1 diabetes is an autoimmune disease. The body attacks its beta cells.\n\n"
        "This information is not copyrighted. The NIDDK encourages people to share this content freely.\n\n"
        "These resources address the diagnosis or management of type 1 diabetes: - Genetic Testing Registry: "
        "Diabetes mellitus type 1 - MedlinePlus Encyclopedia: Diabetes\n\n"
        "For more information about diabetes, go to the Introduction to Diabetes page.\n\n"
        "Insulin is taken every day.\n",
        encoding="utf-8",
    )
    report = build_index(docs, tmp_path / "index")
    reasons = sorted(d.reason for d in report.dropped)
    assert reasons == ["publication notice", "referral only", "resource link list"]
    manifest = json.loads(((tmp_path / "index") / MANIFEST).read_text(encoding="utf-8"))
    assert len(manifest["dropped"]) == 3
    texts = " ".join(p.text for p in load_index(tmp_path / "index").passages)
    assert "autoimmune" in texts and "every day" in texts
    assert "copyrighted" not in texts and "Genetic Testing Registry" not in texts


def test_contact_details_and_mixed_blocks_are_kept() -> None:
    assert drop_reason("More information is available by calling 1-800-860-8747.") is None
    assert drop_reason("Insulin lowers blood glucose. For more information, see the insulin page.") is None
    kept, dropped = content_segments("Alpha text here.\n\nBack to top\n\nBeta text here.")
    assert [r for _, _, r in dropped] == ["navigation"] and len(kept) == 2


def test_sentences_keep_abbreviations_and_split_lists() -> None:
    text = "Some forms of diabetes are e.g. autoimmune. Others are not. It costs approx. 30 dollars."
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Some forms of diabetes are e.g. autoimmune.",
        "Others are not.",
        "It costs approx. 30 dollars.",
    ]
    listed = "Risk factors include: - High blood pressure. - Low HDL cholesterol."
    assert [listed[s:e] for s, e in split_sentences(listed)][-1] == "- Low HDL cholesterol."


def test_import_retrieval_hybrid_loads_no_torch() -> None:
    code = "import sys, retrieval.hybrid, retrieval.encoder, retrieval.store; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.integration
def test_minilm_encoder_gives_unit_vectors_that_match_meaning() -> None:
    from retrieval import SentenceEncoder  # noqa: PLC0415

    encoder = SentenceEncoder(num_threads=1)
    vectors = encoder.encode(["my kid has type 1 diabetes", "type 1 diabetes in children", "tax forms"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.model_id.endswith(encoder.model_id.split("@")[1]) and "@" in encoder.model_id


def test_abbreviations_are_spelled_out_for_the_encoder() -> None:
    from retrieval.settings import DEFAULT_SYNONYMS  # noqa: PLC0415
    from retrieval.synonyms import SynonymTable  # noqa: PLC0415

    table = SynonymTable.load(DEFAULT_SYNONYMS)
    assert table.spell_out("my son has T1D") == "my son has T1D (type 1 diabetes)"
    assert table.spell_out("what is type 1 diabetes") == "what is type 1 diabetes"  # already spelled out
    assert table.spell_out("zebra") == "zebra"


def test_the_dense_query_is_the_spelled_out_question(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    encoder = HashingEncoder()
    build_index(docs, tmp_path / "index", encoder=encoder)
    index = load_index(tmp_path / "index", encoder)
    seen: list[str] = []
    original = encoder.encode
    encoder.encode = lambda texts, progress=None: seen.extend(texts) or original(texts, progress)
    index.search("is a t1d pump safe", mode="dense")
    assert seen == ["is a t1d pump safe (type 1 diabetes)"]


@pytest.mark.parametrize("backend", ["onnx", "auto", "openvino"])
def test_the_exported_query_encoder_gives_the_torch_encoders_vectors(tmp_path: Path, backend: str) -> None:
    from retrieval import SentenceEncoder  # noqa: PLC0415
    from tests.finetune_fixtures import make_model_dir  # noqa: PLC0415 - a tiny BERT, no download

    model = make_model_dir(tmp_path / "tiny")
    texts = ["what is insulin", "the a1c test measures average blood sugar over three months", "feet"]
    reference = SentenceEncoder(model, num_threads=1, backend="torch")
    fast = SentenceEncoder(model, num_threads=1, backend=backend)
    assert fast.backend == ("openvino" if backend == "openvino" else "onnx")
    assert fast.model_id == reference.model_id  # the same index vectors
    got = fast.encode(texts)
    assert got.shape == (3, 32) and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(got, reference.encode(texts), atol=1e-5)


def test_the_encoder_makes_its_first_pass_at_warm_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval import SentenceEncoder  # noqa: PLC0415
    from tests.finetune_fixtures import make_model_dir  # noqa: PLC0415

    encoder = SentenceEncoder(make_model_dir(tmp_path / "tiny"), num_threads=1, backend="onnx")
    embedded: list[list[str]] = []
    real = encoder._embed
    monkeypatch.setattr(encoder, "_embed", lambda texts: embedded.append(texts) or real(texts))
    encoder.warm_up()
    assert embedded == [["warm up"]]  # before any member's question
    encoder.encode(["what is insulin"])
    assert embedded[1:] == [["what is insulin"]]


def test_a_bad_encoder_backend_is_named(tmp_path: Path) -> None:
    from retrieval import EncoderError, SentenceEncoder  # noqa: PLC0415

    with pytest.raises(EncoderError, match="got 'int4'"):
        SentenceEncoder(tmp_path, backend="int4")
