"""The fine-tuned question side of dense retrieval: training, its card, and refusing a mismatch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from retrieval import EncoderError, HybridIndex, QueryTunedEncoder, build_index, load_index
from retrieval.cli import app as retrieval_app
from retrieval.encoder import QUERY_CARD
from retrieval.errors import TrainingDataError
from retrieval.ingest import read_folder
from retrieval.query_training import QueryEncoderConfig, locate_questions, multi_positive_loss
from tests.retrieval_fixtures import write_corpus


def test_multi_positive_loss_is_minus_log_of_the_positives_total_probability() -> None:
    import torch  # noqa: PLC0415

    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    loss = multi_positive_loss(logits, [(0, 1), (2,)])
    first = -math.log((math.exp(2) + math.exp(1)) / (math.exp(2) + math.exp(1) + 1))
    second = -math.log(math.exp(3) / (2 + math.exp(3)))
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-5)


def _squad(docs: Path) -> dict:
    """Questions over the corpus' pumps and DKA documents, answers located in their normalised text."""
    texts = {d.doc_id: d.text for d in read_folder(docs)[0]}
    articles = []
    for doc_id, question, answer in [
        ("pumps.md", "what does a pump give me all day", "insulin"),
        ("sub/dka.txt", "is dka serious", "an emergency"),
        ("sub/dka.txt", "ketones high what now", "call your doctor"),
    ]:
        paragraph = next(p for p in texts[doc_id].split("\n\n") if answer in p)
        qa = {"id": f"q{len(articles)}", "question": question}
        qa["answers"] = [{"text": answer, "answer_start": paragraph.index(answer)}]
        articles.append({"title": doc_id, "doc": doc_id, "paragraphs": [{"context": paragraph, "qas": [qa]}]})
    return {"version": "v2.0", "data": articles}


def test_questions_are_located_in_their_documents_and_bad_articles_named(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    texts = {d.doc_id: d.text for d in read_folder(docs)[0]}
    squad = _squad(docs)
    located = locate_questions(squad, "train.json", texts)
    assert [texts[q.doc_id][q.start : q.end] for q in located] == [
        "insulin",
        "an emergency",
        "call your doctor",
    ]
    squad["data"][0]["doc"] = "gone.md"
    with pytest.raises(TrainingDataError, match=r"train.json: .*'gone.md'.*not in the documents folder"):
        locate_questions(squad, "train.json", texts)
    squad["data"][0]["doc"] = "pumps.md"
    squad["data"][0]["paragraphs"][0]["context"] = "text that no document holds"
    with pytest.raises(TrainingDataError, match=r"a paragraph of pumps.md is not in the document"):
        locate_questions(squad, "train.json", texts)


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    base = {
        "data": (tmp_path / "q.json",),
        "index_dir": tmp_path,
        "docs_dir": tmp_path,
        "output": tmp_path / "o",
    }
    with pytest.raises(TrainingDataError, match="epochs must be at least 1, got 0"):
        QueryEncoderConfig(**base, epochs=0)
    with pytest.raises(TrainingDataError, match="at least one --data"):
        QueryEncoderConfig(**{**base, "data": ()})


def test_settings_turn_the_query_encoder_off_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import SHIPPED_QUERY_ENCODER_DIR, Settings  # noqa: PLC0415

    monkeypatch.delenv("HELPLINE_QUERY_ENCODER_DIR", raising=False)
    assert Settings(_env_file=None).query_encoder_dir == SHIPPED_QUERY_ENCODER_DIR
    monkeypatch.setenv("HELPLINE_QUERY_ENCODER_DIR", "None")
    assert Settings(_env_file=None).query_encoder_dir is None
    monkeypatch.setenv("HELPLINE_QUERY_ENCODER_DIR", " ")
    with pytest.raises(ValueError, match="HELPLINE_QUERY_ENCODER_DIR is empty"):
        Settings(_env_file=None)


def test_the_shipped_query_encoder_matches_the_packaged_passage_encoder() -> None:
    """Its card names the packaged model's weights: a stale copy would be refused at start-up."""
    from bot.config import SHIPPED_QUERY_ENCODER_DIR  # noqa: PLC0415
    from retrieval.encoder import default_model_dir, read_query_card, weights_fingerprint  # noqa: PLC0415

    card = read_query_card(SHIPPED_QUERY_ENCODER_DIR)
    assert card.passage_encoder.endswith("@" + weights_fingerprint(default_model_dir()))
    assert card.questions > 1000


@pytest.mark.integration
def test_train_query_encoder_then_search_with_it_and_refuse_a_mismatch(tmp_path: Path) -> None:
    from retrieval import SentenceEncoder  # noqa: PLC0415

    docs = write_corpus(tmp_path / "docs")
    passages = SentenceEncoder(num_threads=1)
    build_index(docs, tmp_path / "index", encoder=passages)
    data = tmp_path / "train.json"
    data.write_text(json.dumps(_squad(docs)), encoding="utf-8")
    out = tmp_path / "query-encoder"
    args = ["train-query-encoder", "--data", str(data), "--index", str(tmp_path / "index")]
    args += ["--docs", str(docs), "--output", str(out), "--epochs", "1", "--json"]
    result = CliRunner().invoke(retrieval_app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["questions"] == 3 and report["passage_encoder"] == passages.model_id
    assert json.loads((out / QUERY_CARD).read_text())["questions"] == 3
    # fp16 on disk: half the stock model's size
    assert (out / "model.safetensors").stat().st_size < 0.6 * (
        passages.model_dir / "model.safetensors"
    ).stat().st_size

    tuned = QueryTunedEncoder(passages, out, num_threads=1)
    assert tuned.model_id == passages.model_id  # the index's vectors stay the stock model's
    index = load_index(tmp_path / "index", tuned)
    assert isinstance(index, HybridIndex)
    assert index.search("is dka an emergency", top_k=1)[0].passage.doc_id == "sub/dka.txt"
    vectors = tuned.encode_queries(["is dka serious"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)

    again = CliRunner().invoke(retrieval_app, args)
    assert again.exit_code == 1 and "exists; pass --overwrite" in again.output

    card = json.loads((out / QUERY_CARD).read_text())
    (out / QUERY_CARD).write_text(json.dumps({**card, "passage_encoder": "other/model@0123"}))
    with pytest.raises(EncoderError, match=r"trained against passage encoder other/model@0123"):
        QueryTunedEncoder(passages, out)
    (out / QUERY_CARD).write_text("{not json")
    with pytest.raises(EncoderError, match=rf"{QUERY_CARD}: unreadable query encoder card"):
        QueryTunedEncoder(passages, out)
    (out / QUERY_CARD).unlink()
    with pytest.raises(EncoderError, match=r"is not a query encoder"):
        QueryTunedEncoder(passages, out)
