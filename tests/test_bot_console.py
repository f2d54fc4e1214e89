"""The admin console's API and pages through FastAPI's TestClient: auth, CSRF, escaping, offsets, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import cli
from bot.console import create_app, open_console
from bot.console.auth import TOKEN_HASH_META, token_digest
from bot.console.service import paragraphs
from finetune.squad import parse_squad
from tests.bot_fakes import make_settings
from tests.console_fixtures import (
    INSULIN_TEXT,
    TOKEN,
    bearer,
    csrf_of,
    log_feedback,
    logged_in,
    make_console,
    write_docs,
)

runner = CliRunner()
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def console(tmp_path: Path):
    console = make_console(tmp_path)
    yield console
    console.close()


@pytest.fixture
def api(console) -> TestClient:
    return TestClient(create_app(console))


def annotate(api: TestClient, **body) -> dict:
    response = api.post("/api/annotations", headers=bearer(), json=body)
    assert response.status_code == 201, response.text
    return response.json()


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/documents", "/api/annotations", "/api/feedback", "/api/export", "/api/train"]
)
def test_every_api_call_needs_the_token(api: TestClient, path: str) -> None:
    assert api.get(path).status_code == 401
    assert api.get(path, headers=bearer("wrong-token")).status_code == 401
    assert api.get(path, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert api.get(path, headers=bearer()).status_code == 200


def test_writes_without_the_token_are_refused_and_change_nothing(api: TestClient) -> None:
    body = {"doc_id": "insulin.md", "question": "What is insulin?", "unanswerable": True}
    assert api.post("/api/annotations", json=body).status_code == 401
    assert api.post("/api/annotations", json=body, headers=bearer("nope")).status_code == 401
    assert api.delete("/api/annotations/1").status_code == 401
    assert api.get("/api/annotations", headers=bearer()).json() == []


@pytest.mark.parametrize("path", ["/", "/annotate", "/annotate?doc=insulin.md", "/feedback", "/train"])
def test_pages_redirect_to_the_login_form_without_a_session(api: TestClient, path: str) -> None:
    response = api.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert (
        api.get(path, headers={"Cookie": "helpline_console=forged.0000"}, follow_redirects=False).status_code
        == 303
    )


def test_login_sets_an_httponly_samesite_cookie_and_a_wrong_token_is_refused(api: TestClient) -> None:
    wrong = api.post("/login", data={"token": "guess", "next": "/feedback"}, follow_redirects=False)
    assert (
        wrong.status_code == 401 and "not the admin token" in wrong.text and "set-cookie" not in wrong.headers
    )
    right = api.post("/login", data={"token": TOKEN, "next": "/feedback"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/feedback"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert api.get("/feedback").status_code == 200  # the client keeps the cookie


def test_login_never_redirects_off_site(api: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = api.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/"


def test_a_generated_token_is_printed_once_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    settings = make_settings(tmp_path)
    console, token = open_console(settings)
    assert token.generated and token.source == "generated"
    stored = console.records.get_meta(TOKEN_HASH_META)
    assert stored == token_digest(token.generated) and token.generated not in stored
    client = TestClient(create_app(console))
    assert client.get("/api/documents", headers=bearer(token.generated)).status_code == 200
    console.close()
    again, second = open_console(settings)
    assert second.generated is None and second.source == "database"
    assert (
        TestClient(create_app(again)).get("/api/documents", headers=bearer(token.generated)).status_code
        == 200
    )
    again.close()
    stored_files = [settings.db_path, Path(f"{settings.db_path}-wal")]
    assert not any(token.generated.encode() in p.read_bytes() for p in stored_files if p.exists())


# --- CSRF -----------------------------------------------------------------------------------------


def test_cookie_writes_need_the_csrf_token_bearer_writes_do_not(console) -> None:
    client = logged_in(console)
    body = {
        "doc_id": "insulin.md",
        "question": "What is insulin?",
        "answer_start": 11,
        "answer_text": "a hormone",
    }
    assert client.post("/api/annotations", json=body).status_code == 403
    assert client.post("/api/annotations", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    token = csrf_of(client.get("/annotate").text)
    assert client.post("/api/annotations", json=body, headers={"X-CSRF-Token": token}).status_code == 201
    assert client.delete("/api/annotations/1").status_code == 403
    bare = TestClient(create_app(console))
    assert bare.post("/api/annotations", json=body, headers=bearer()).status_code == 201


def test_forms_need_the_csrf_field(console) -> None:
    client = logged_in(console)
    form = {
        "doc_id": "insulin.md",
        "question": "What is insulin?",
        "answer_start": "11",
        "answer_text": "a hormone",
    }
    assert client.post("/annotate", data=form).status_code == 403
    assert client.post("/annotate", data={**form, "csrf_token": "forged"}).status_code == 403
    assert client.get("/api/annotations").json() == []
    page = client.get("/annotate?doc=insulin.md").text
    saved = client.post("/annotate", data={**form, "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert saved.status_code == 303 and "saved=1" in saved.headers["location"]
    assert client.post("/logout", data={}).status_code == 403


# --- documents and annotations --------------------------------------------------------------------


def test_documents_are_the_ingested_text(api: TestClient) -> None:
    listed = api.get("/api/documents", headers=bearer()).json()
    assert [d["doc_id"] for d in listed] == ["foot-care.md", "insulin.md"]
    assert listed[1]["title"] == "Insulin basics" and listed[1]["annotations"] == 0
    doc = api.get("/api/documents/insulin.md", headers=bearer()).json()
    assert doc["text"] == INSULIN_TEXT  # title and Source: lines out, double space collapsed
    assert api.get("/api/documents/nope.md", headers=bearer()).status_code == 404
    assert api.get("/api/documents/../secret.md", headers=bearer()).status_code == 404


def test_an_annotation_is_stored_listed_and_deleted(api: TestClient) -> None:
    start = INSULIN_TEXT.index("the pancreas")
    record = annotate(api, doc_id="insulin.md", question="What makes insulin?", answer_start=start,
                      answer_text="the pancreas")  # fmt: skip
    assert (
        record["answer_start"] == start
        and record["unanswerable"] is False
        and record["title"] == "Insulin basics"
    )
    none = annotate(api, doc_id="insulin.md", question="Is insulin sweet?", unanswerable=True)
    assert none["answer_text"] is None and none["unanswerable"] is True
    assert [a["id"] for a in api.get("/api/annotations", headers=bearer()).json()] == [
        record["id"],
        none["id"],
    ]
    assert api.get("/api/documents", headers=bearer()).json()[1]["annotations"] == 2
    assert api.delete(f"/api/annotations/{record['id']}", headers=bearer()).status_code == 204
    assert api.delete(f"/api/annotations/{record['id']}", headers=bearer()).status_code == 404
    assert [a["id"] for a in api.get("/api/annotations", headers=bearer()).json()] == [none["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"answer_start": 12, "answer_text": "a hormone"}, "answer_start"),  # one off
        ({"answer_start": 5000, "answer_text": "a hormone"}, "answer_start"),  # past the end
        ({"answer_start": -1, "answer_text": "a hormone"}, "answer_start"),
        ({"answer_start": 10, "answer_text": " a hormone"}, "answer_text"),  # whitespace selected
        ({"answer_start": 11, "answer_text": ""}, "answer_text"),
        ({}, "answer_text"),  # neither a span nor unanswerable
    ],
)
def test_a_span_that_does_not_match_the_text_is_422_naming_the_field(
    api: TestClient, body: dict, field: str
) -> None:
    response = api.post(
        "/api/annotations", headers=bearer(), json={"doc_id": "insulin.md", "question": "Q?", **body}
    )
    assert response.status_code == 422
    assert response.json()["field"] == field and field in response.json()["detail"]
    assert api.get("/api/annotations", headers=bearer()).json() == []


def test_an_unknown_document_or_empty_question_is_422(api: TestClient) -> None:
    body = {"question": "Q?", "unanswerable": True}
    response = api.post("/api/annotations", headers=bearer(), json={"doc_id": "missing.md", **body})
    assert response.status_code == 422 and response.json()["field"] == "doc_id"
    response = api.post("/api/annotations", headers=bearer(), json={"doc_id": "insulin.md", "question": " ",
                                                                     "unanswerable": True})  # fmt: skip
    assert response.status_code == 422 and response.json()["field"] == "question"
    assert api.post("/api/annotations", headers=bearer(), json={"question": "Q?"}).status_code == 422


def test_questions_and_document_text_are_html_escaped(console, tmp_path: Path) -> None:
    (tmp_path / "docs" / "evil.md").write_text(f"# Evil {SCRIPT}\n\nThe answer is {SCRIPT} here.\n")
    api = TestClient(create_app(console))
    annotate(
        api,
        doc_id="insulin.md",
        question=f"{SCRIPT} what is insulin?",
        answer_start=11,
        answer_text="a hormone",
    )
    client = logged_in(console)
    for page in (client.get("/annotate?doc=insulin.md").text, client.get("/annotate?doc=evil.md").text):
        assert SCRIPT not in page
    for path in ("/annotate?doc=insulin.md", "/annotate", "/"):  # the document's list, and the list of all
        page = client.get(path).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; what is insulin?" in page and SCRIPT not in page
    assert "default-src 'self'" in client.get("/annotate").headers["content-security-policy"]


def test_paragraph_offsets_index_into_the_stored_text() -> None:
    for start, block in paragraphs(INSULIN_TEXT):
        assert INSULIN_TEXT[start : start + len(block)] == block


def test_an_annotation_keeps_its_text_when_the_document_changes(console, tmp_path: Path) -> None:
    api = TestClient(create_app(console))
    annotate(api, doc_id="insulin.md", question="What is insulin?", answer_start=11, answer_text="a hormone")
    (tmp_path / "docs" / "insulin.md").write_text("# Insulin basics\n\nRewritten: insulin is a hormone.\n")
    document = api.get("/api/export", headers=bearer()).json()
    data = parse_squad(document, "export")
    assert data.report.rejected == () and data.examples[0].context == INSULIN_TEXT


# --- feedback -------------------------------------------------------------------------------------


def test_the_feedback_queue_shows_questions_and_passages_never_members(console, tmp_path: Path) -> None:
    ids = log_feedback(console.store, tmp_path)
    queue = TestClient(create_app(console)).get("/api/feedback", headers=bearer()).json()
    assert [item["question_id"] for item in queue] == [ids["disliked"], ids["declined"]]
    assert queue[0]["contexts"] and queue[0]["review"] is None
    page = logged_in(console).get("/feedback").text
    members = [
        console.store.member_key(987654321),
        console.store.member_key(123456789),
        "987654321",
        "123456789",
    ]
    for shown in (json.dumps(queue), page):
        assert not any(member in shown for member in members)
    assert "What is brittle diabetes characterized by?" in page


def test_reviews_go_into_the_export(console, tmp_path: Path) -> None:
    ids = log_feedback(console.store, tmp_path)
    api = TestClient(create_app(console))
    passage = api.get("/api/feedback", headers=bearer()).json()[0]["contexts"][0]
    words = passage["text"].split()[:3]
    answer = " ".join(words)
    bad = api.post(
        f"/api/feedback/{ids['disliked']}",
        headers=bearer(),
        json={"verdict": "answer", "passage_id": passage["id"], "answer_start": 1, "answer_text": answer},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "answer_start"
    ok = api.post(
        f"/api/feedback/{ids['disliked']}",
        headers=bearer(),
        json={"verdict": "answer", "passage_id": passage["id"], "answer_start": 0, "answer_text": answer},
    )
    assert ok.status_code == 200, ok.text
    assert api.post(f"/api/feedback/{ids['declined']}", headers=bearer(),
                    json={"verdict": "not_in_documents"}).status_code == 200  # fmt: skip
    assert api.post("/api/feedback/999", headers=bearer(), json={"verdict": "dismissed"}).status_code == 404
    data = parse_squad(api.get("/api/export", headers=bearer()).json(), "export")
    assert data.report.rejected == () and data.report.repaired == 0
    answered = [e for e in data.examples if e.answers]
    assert [(e.question, e.answers[0].text) for e in answered] == [
        ("What is brittle diabetes characterized by?", answer)
    ]
    assert data.report.unanswerable >= 1


def test_reviewing_through_the_page(console, tmp_path: Path) -> None:
    ids = log_feedback(console.store, tmp_path)
    client = logged_in(console)
    token = csrf_of(client.get("/feedback").text)
    response = client.post(f"/feedback/{ids['declined']}", data={"csrf_token": token, "verdict": "dismissed"},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    page = client.get("/feedback").text
    assert f'id="question-{ids["declined"]}"' not in page and "dismissed" in page


# --- export ---------------------------------------------------------------------------------------


def test_export_passes_finetune_check_and_the_cli_writes_the_same(console, tmp_path: Path) -> None:
    api = TestClient(create_app(console))
    annotate(
        api,
        doc_id="insulin.md",
        question=f"{SCRIPT} what is insulin?",
        answer_start=11,
        answer_text="a hormone",
    )
    annotate(api, doc_id="foot-care.md", question="How often?", answer_start=45, answer_text="every day")
    annotate(api, doc_id="foot-care.md", question="Is walking good?", unanswerable=True)
    document = api.get("/api/export", headers=bearer()).json()
    assert document["version"] == "v2.0"
    out = tmp_path / "export.json"
    result = runner.invoke(cli.app, ["export-annotations", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == document
    from finetune.cli import app as finetune_app

    checked = runner.invoke(finetune_app, ["check", str(out), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout.strip().splitlines()[-1])
    assert report["rejected"] == [] and report["repaired"] == 0
    assert report["questions"] == 3 and report["unanswerable"] == 1
    download = api.get("/api/export?download=1", headers=bearer())
    assert "attachment" in download.headers["content-disposition"]


def test_pages_also_take_the_bearer_token(api: TestClient) -> None:
    annotate(
        api,
        doc_id="insulin.md",
        question=f"{SCRIPT} what is insulin?",
        answer_start=11,
        answer_text="a hormone",
    )
    page = api.get("/annotate?doc=insulin.md", headers=bearer())
    assert page.status_code == 200 and "&lt;script&gt;alert(1)&lt;/script&gt; what is insulin?" in page.text
    assert SCRIPT not in page.text
    assert api.get("/annotate", headers=bearer("wrong"), follow_redirects=False).status_code == 401
    form = {"doc_id": "insulin.md", "question": "Is insulin sweet?", "unanswerable": "on"}
    assert api.post("/annotate", data=form, headers=bearer(), follow_redirects=False).status_code == 303


def test_editing_an_annotation_through_the_page(console) -> None:
    client = logged_in(console)
    api = TestClient(create_app(console))
    record = annotate(
        api, doc_id="insulin.md", question="What is insulin?", answer_start=11, answer_text="a hormone"
    )
    page = client.get(f"/annotate?doc=insulin.md&edit={record['id']}").text
    assert f'name="annotation_id" value="{record["id"]}"' in page and 'value="What is insulin?"' in page
    start = INSULIN_TEXT.index("the pancreas")
    form = {"csrf_token": csrf_of(page), "doc_id": "insulin.md", "annotation_id": str(record["id"])}
    form |= {"question": "What makes insulin?", "answer_start": str(start), "answer_text": "the pancreas"}
    assert client.post("/annotate", data=form, follow_redirects=False).status_code == 303
    (edited,) = api.get("/api/annotations", headers=bearer()).json()
    assert (edited["id"], edited["question"], edited["answer_start"]) == (
        record["id"],
        "What makes insulin?",
        start,
    )
    bad = client.post("/annotate", data={**form, "answer_start": str(start + 1)})
    assert bad.status_code == 422 and "answer_start" in bad.text
    delete = client.post(f"/annotations/{record['id']}/delete", data={"csrf_token": form["csrf_token"]},
                         follow_redirects=False)  # fmt: skip
    assert delete.status_code == 303 and api.get("/api/annotations", headers=bearer()).json() == []


def test_the_feedback_search_finds_passages_in_the_index_to_answer_from(console, tmp_path: Path) -> None:
    from retrieval import build_index

    build_index(console.settings.docs_dir, console.settings.index_dir)
    ids = log_feedback(console.store, tmp_path)
    client = logged_in(console)
    page = client.get(f"/feedback?for={ids['declined']}&q=glucose+cells").text
    assert "search result" in page and "It lets glucose enter the cells" in page
    hit = next(p for p in console.search("glucose cells")[0] if p.doc_id == "insulin.md")
    start = hit.text.index("a hormone")
    review = {"verdict": "answer", "passage_id": hit.id, "answer_start": start, "answer_text": "a hormone"}
    response = TestClient(create_app(console)).post(
        f"/api/feedback/{ids['declined']}", headers=bearer(), json=review
    )
    assert response.status_code == 200, response.text
    data = parse_squad(console.export(), "export")
    (answered,) = [e for e in data.examples if e.answers]
    assert answered.context == hit.text and answered.question == "Is brittle diabetes rare?"


def test_without_an_index_the_search_says_how_to_build_one(console, tmp_path: Path) -> None:
    ids = log_feedback(console.store, tmp_path)
    page = logged_in(console).get(f"/feedback?for={ids['declined']}&q=glucose").text
    assert "retrieval index" in page


def test_a_session_ends_after_its_max_age() -> None:
    from bot.console.auth import SESSION_MAX_AGE_S, Authenticator

    now = [1_000_000.0]
    auth = Authenticator(token_digest(TOKEN), clock=lambda: now[0])
    cookie = auth.new_session()
    nonce = auth.session_nonce(cookie)
    assert nonce is not None and auth.csrf_ok(nonce, auth.csrf_token(nonce))
    assert auth.session_nonce(cookie.replace(".", "0.", 1)) is None  # tampered
    assert Authenticator(token_digest("another token")).session_nonce(cookie) is None  # token changed
    now[0] += SESSION_MAX_AGE_S + 1
    assert auth.session_nonce(cookie) is None
