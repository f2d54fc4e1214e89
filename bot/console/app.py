"""The admin console's FastAPI application: server-rendered pages and the JSON API under ``/api/``.

``create_app(console)`` wires the routes to a ``Console`` (settings, database records, documents,
the retraining job). Pages need the session cookie (else a redirect to ``/login``); the API takes the
cookie or ``Authorization: Bearer TOKEN`` (else 401). See ``bot.console.auth`` for tokens and CSRF.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from bot.console.auth import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, bearer_token
from bot.console.records import SpanError
from bot.console.service import Console

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The "session" of a page request authenticated by its Authorization header (scripts, checks): it needs
# no CSRF token, since a browser never adds that header to a forged cross-site request.
BEARER = "\x00bearer"
# No inline script or style runs, whatever a document or a member wrote: the second line of defence
# behind Jinja's autoescaping.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """A page was asked for without a valid session: redirect to the login page."""

    def __init__(self, next_url: str):
        self.next_url = next_url


class AnnotationIn(BaseModel):
    """``POST /api/annotations``: a span, or ``unanswerable: true``."""

    doc_id: str
    question: str
    answer_start: int | None = None
    answer_text: str | None = None
    unanswerable: bool = False


class ReviewIn(BaseModel):
    """``POST /api/feedback/{question_id}``: the verdict on a question up for review."""

    verdict: str
    passage_id: str | None = None
    answer_start: int | None = None
    answer_text: str | None = None


def span_error(error: SpanError) -> JSONResponse:
    """422 with a message naming the field."""
    return JSONResponse({"detail": str(error), "field": error.field}, status_code=422)


class Web:
    """What every route needs: the console, its authenticator, the templates, and the access checks.

    Args:
        console: the console's state.
    """

    def __init__(self, console: Console):
        self.console = console
        self.auth = console.auth
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))

    def page_session(self, request: Request) -> str:
        """The session nonce of a page request (``BEARER`` with a valid bearer token), or a redirect to
        the login page (401 for a wrong bearer token)."""
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            if not self.auth.token_ok(token):
                raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})
            return BEARER
        nonce = self.auth.session_nonce(request.cookies.get(COOKIE_NAME))
        if nonce is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target if request.method == "GET" else "/")
        return nonce

    def api_access(self, request: Request) -> None:
        """Bearer token, or the session cookie (with the CSRF header on writes); else 401/403."""
        token = bearer_token(request.headers.get("authorization"))
        if token is not None:
            if not self.auth.token_ok(token):
                raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})
            return
        nonce = self.auth.session_nonce(request.cookies.get(COOKIE_NAME))
        if nonce is None:
            message = "the admin token is required (Authorization: Bearer TOKEN)"
            raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
        if request.method not in SAFE_METHODS and not self.auth.csrf_ok(
            nonce, request.headers.get(CSRF_HEADER)
        ):
            raise HTTPException(403, "missing or wrong CSRF token (X-CSRF-Token header)")

    async def checked_form(self, request: Request, nonce: str) -> dict[str, str]:
        """The posted form, after its CSRF field is checked (403 when it is missing or wrong)."""
        form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
        if nonce != BEARER and not self.auth.csrf_ok(nonce, form.get(CSRF_FIELD)):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return form

    def render(
        self, request: Request, name: str, nonce: str | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page, with the session's CSRF token for its forms (Jinja autoescapes every value)."""
        csrf = self.auth.csrf_token(nonce) if nonce else ""
        values = {"csrf_token": csrf, "csrf_field": CSRF_FIELD, "error": None, **context}
        return self.templates.TemplateResponse(request, name, values, status_code=status)


def create_app(console: Console) -> FastAPI:
    """The console application.

    Args:
        console: the console's state (settings, records, documents, jobs).

    Returns:
        The FastAPI app (serve it with uvicorn, or drive it with ``TestClient``).
    """
    app = FastAPI(title="Helpline console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/?=&')}", status_code=303)

    web = Web(console)
    for add_routes in (add_login_routes, add_annotate_routes, add_feedback_routes, add_train_routes):
        add_routes(app, web)
    add_api_routes(app, console, web.api_access)
    return app


def add_login_routes(app: FastAPI, web: Web) -> None:
    """``/login`` (the token form, which sets the session cookie) and ``/logout``."""

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return web.render(request, "login.html", None, next=_local(next))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        token, target = str(form.get("token", "")), _local(str(form.get("next", "/")))
        if not web.auth.token_ok(token.strip()):
            error = "That is not the admin token."
            return web.render(request, "login.html", None, status=401, next=target, error=error)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE_NAME, web.auth.new_session(), httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/",
        )  # fmt: skip
        return response

    @app.post("/logout")
    async def logout(request: Request, nonce: str = Depends(web.page_session)) -> Response:
        await web.checked_form(request, nonce)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response


def add_annotate_routes(app: FastAPI, web: Web) -> None:
    """The annotate page: documents with progress, one document's text, its annotations."""
    console = web.console

    def annotate_page(request: Request, nonce: str, doc_id: str | None, status: int = 200, **extra: Any):
        context = console.annotate_context(doc_id, extra.pop("edit", None))
        return web.render(request, "annotate.html", nonce, status=status, **context, **extra)

    @app.get("/")
    def home(nonce: str = Depends(web.page_session)) -> RedirectResponse:
        return RedirectResponse("/annotate", status_code=303)

    @app.get("/annotate", response_class=HTMLResponse)
    def annotate(request: Request, doc: str | None = None, edit: int | None = None,
                 nonce: str = Depends(web.page_session)):  # fmt: skip
        return annotate_page(request, nonce, doc, edit=edit, saved=request.query_params.get("saved"))

    @app.post("/annotate")
    async def save_annotation(request: Request, nonce: str = Depends(web.page_session)) -> Response:
        form = await web.checked_form(request, nonce)
        doc_id = form.get("doc_id", "")
        try:
            saved = console.save_annotation_form(form)
        except SpanError as e:
            return annotate_page(request, nonce, doc_id, status=422, error=str(e), form=form)
        if saved is None:
            raise HTTPException(404, f"no document or annotation {doc_id!r}")
        return RedirectResponse(f"/annotate?doc={quote(saved.doc_id)}&saved={saved.id}", status_code=303)

    @app.post("/annotations/{annotation_id}/delete")
    async def delete_annotation_form(
        annotation_id: int, request: Request, nonce: str = Depends(web.page_session)
    ):
        form = await web.checked_form(request, nonce)
        console.records.delete_annotation(annotation_id)
        return RedirectResponse(f"/annotate?doc={quote(form.get('doc_id', ''))}", status_code=303)


def add_feedback_routes(app: FastAPI, web: Web) -> None:
    """The feedback queue and its verdict forms."""
    console = web.console

    @app.get("/feedback", response_class=HTMLResponse)
    def feedback(
        request: Request, q: str | None = None, nonce: str = Depends(web.page_session)
    ) -> HTMLResponse:
        search_for = _int_or_none(request.query_params.get("for")) if q else None
        return web.render(request, "feedback.html", nonce, **console.feedback_context(q, search_for))

    @app.post("/feedback/{question_id}")
    async def review_form(
        question_id: int, request: Request, nonce: str = Depends(web.page_session)
    ) -> Response:
        form = await web.checked_form(request, nonce)
        try:
            start = _int_or_none(form.get("answer_start"))
            verdict, passage_id = form.get("verdict", ""), form.get("passage_id") or None
            console.review(question_id, verdict, passage_id, start, form.get("answer_text") or None)
        except SpanError as e:
            context = console.feedback_context(None)
            return web.render(request, "feedback.html", nonce, status=422, **context, error=str(e))
        except KeyError:
            raise HTTPException(404, f"no question {question_id} up for review") from None
        return RedirectResponse("/feedback", status_code=303)


def add_train_routes(app: FastAPI, web: Web) -> None:
    """The retrain page: start a job, watch it, roll back."""
    console = web.console

    def after(request: Request, nonce: str, error: str | None) -> Response:
        if error:
            return web.render(
                request, "train.html", nonce, status=409, **console.train_context(), error=error
            )
        return RedirectResponse("/train", status_code=303)

    @app.get("/train", response_class=HTMLResponse)
    def train_page(request: Request, nonce: str = Depends(web.page_session)) -> HTMLResponse:
        return web.render(request, "train.html", nonce, **console.train_context())

    @app.post("/train")
    async def train_start(request: Request, nonce: str = Depends(web.page_session)) -> Response:
        await web.checked_form(request, nonce)
        return after(request, nonce, console.start_training())

    @app.post("/train/rollback")
    async def train_rollback(request: Request, nonce: str = Depends(web.page_session)) -> Response:
        await web.checked_form(request, nonce)
        return after(request, nonce, console.rollback())


def add_api_routes(app: FastAPI, console: Console, api_access: Any) -> None:
    """The JSON API under ``/api/`` (every route needs ``api_access``)."""
    guarded = [Depends(api_access)]

    @app.get("/api/documents", dependencies=guarded)
    def api_documents() -> list[dict[str, Any]]:
        return console.documents_json()

    @app.get("/api/documents/{doc_id:path}", dependencies=guarded)
    def api_document(doc_id: str) -> dict[str, Any]:
        document = console.document_json(doc_id)
        if document is None:
            raise HTTPException(404, f"no document {doc_id!r} in {console.settings.docs_dir}")
        return document

    @app.post("/api/annotations", dependencies=guarded, status_code=201)
    def api_add_annotation(body: AnnotationIn) -> Any:
        try:
            annotation = console.save_annotation(None, body.doc_id, body.question, body.answer_start,
                                                 body.answer_text, body.unanswerable)  # fmt: skip
        except SpanError as e:
            return span_error(e)
        if annotation is None:
            return JSONResponse(
                {"detail": f"no document {body.doc_id!r}", "field": "doc_id"}, status_code=422
            )
        return annotation.to_json()

    @app.put("/api/annotations/{annotation_id}", dependencies=guarded)
    def api_update_annotation(annotation_id: int, body: AnnotationIn) -> Any:
        try:
            annotation = console.save_annotation(annotation_id, body.doc_id, body.question, body.answer_start,
                                                 body.answer_text, body.unanswerable)  # fmt: skip
        except SpanError as e:
            return span_error(e)
        if annotation is None:
            raise HTTPException(404, f"no annotation {annotation_id} or no document {body.doc_id!r}")
        return annotation.to_json()

    @app.get("/api/annotations", dependencies=guarded)
    def api_annotations(doc_id: str | None = None) -> list[dict[str, Any]]:
        return [a.to_json() for a in console.records.annotations(doc_id)]

    @app.delete("/api/annotations/{annotation_id}", dependencies=guarded, status_code=204)
    def api_delete_annotation(annotation_id: int) -> Response:
        if not console.records.delete_annotation(annotation_id):
            raise HTTPException(404, f"no annotation {annotation_id}")
        return Response(status_code=204)

    @app.get("/api/feedback", dependencies=guarded)
    def api_feedback() -> list[dict[str, Any]]:
        return console.feedback_json()

    @app.post("/api/feedback/{question_id}", dependencies=guarded)
    def api_review(question_id: int, body: ReviewIn) -> Any:
        try:
            review = console.review(
                question_id, body.verdict, body.passage_id, body.answer_start, body.answer_text
            )
        except SpanError as e:
            return span_error(e)
        except KeyError:
            raise HTTPException(404, f"no question {question_id} up for review") from None
        return review

    @app.get("/api/export", dependencies=guarded)
    def api_export(download: bool = False) -> JSONResponse:
        headers = (
            {"Content-Disposition": 'attachment; filename="helpline-annotations.json"'} if download else {}
        )
        return JSONResponse(console.export(), headers=headers)

    @app.get("/api/train", dependencies=guarded)
    def api_train_status() -> dict[str, Any]:
        return console.jobs.status()

    @app.post("/api/train", dependencies=guarded, status_code=202)
    def api_train_start() -> Any:
        error = console.start_training()
        if error:
            return JSONResponse({"detail": error}, status_code=409)
        return console.jobs.status()

    @app.post("/api/train/rollback", dependencies=guarded)
    def api_rollback() -> Any:
        error = console.rollback()
        if error:
            return JSONResponse({"detail": error}, status_code=409)
        return console.jobs.status()


def _local(target: str) -> str:
    """A redirect target on this site only (an open redirect would help phishing for the token)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise SpanError("answer_start", f"answer_start must be an integer, got {value!r}") from None
