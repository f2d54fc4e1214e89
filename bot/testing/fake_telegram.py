"""A fake Telegram Bot API server for end-to-end tests and benchmarks (aiohttp, 127.0.0.1, random port).

It speaks the HTTP API the real bot uses (``POST /bot<token>/<method>``, form-encoded parameters with
JSON-encoded values, ``{"ok": true, "result": ...}`` replies), records every call, and lets a test act
as Telegram's users: queue messages, commands, stickers and button presses, then wait for the bot's
replies. Polling mode serves ``getUpdates`` with offsets and long polling; once the bot calls
``setWebhook``, queued updates are POSTed to its URL with the ``X-Telegram-Bot-Api-Secret-Token``
header instead. ``fail_next`` answers the next calls of a method with 429 and ``retry_after``.
Documents a user sends are kept in memory: ``getFile`` returns their ``file_path`` and
``GET /file/bot<token>/<file_path>`` serves their bytes, as Telegram's file server does (files over
20 MB are refused by ``getFile`` with "file is too big", like the cloud Bot API).

Usage::

    async with FakeTelegram() as telegram:
        settings = ...(telegram_base_url=telegram.base_url, telegram_bot_token=telegram.token)
        telegram.send_text(user_id=1, text="What is brittle diabetes?")
        [reply] = await telegram.wait_for("sendMessage", chat_id=1)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKEN = "123456789:TEST-fake-token_for-the-helpline"
BOT_ID = 123456789
BOT_USERNAME = "helpline_test_bot"
GROUP_CHAT_ID = -1001
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Parameters that the Bot API takes as plain strings (everything else arrives JSON-encoded).
STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "callback_query_id",
        "url",
        "secret_token",
        "action",
        "caption",
        "inline_message_id",
        "file_id",
    }
)
# The cloud Bot API's getFile limit (https://core.telegram.org/bots/api#getfile).
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
NOT_MODIFIED = "Bad Request: message is not modified: new content and reply markup are exactly the same"
WEBHOOK_RETRY_DELAY_S = 0.05
WEBHOOK_MAX_ATTEMPTS = 50
SHUTDOWN_TIMEOUT_S = 1.0


@dataclass
class ApiCall:
    """One request the bot made: method, decoded parameters, the HTTP status and result the fake answered."""

    method: str
    params: dict[str, Any]
    status: int = 200
    result: Any = None
    at: float = field(default_factory=time.monotonic)


class FakeTelegram:
    """The fake Bot API server. Start with ``await start()`` or ``async with``.

    Args:
        token: the token the bot must use (others get 401, like Telegram).
        bot_username: the bot's @username (without @).
    """

    def __init__(self, token: str = TOKEN, bot_username: str = BOT_USERNAME):
        self.token = token
        self.bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "Helpline", "username": bot_username,
                         "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False}  # fmt: skip
        self.calls: list[ApiCall] = []
        # Successful calls by (method, chat_id) and (method, None): waiting on many chats stays cheap.
        self._answered: defaultdict[tuple[str, Any], list[ApiCall]] = defaultdict(list)
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self._pending: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._callback_ids = itertools.count(1)
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._failures: defaultdict[str, deque[int]] = defaultdict(deque)
        self._files: dict[str, tuple[bytes, int]] = {}  # file_id -> (content, file_size claimed)
        self._file_paths: dict[str, str] = {}  # file_path -> file_id
        self.downloads: list[str] = []  # file paths fetched from /file/bot<token>/
        self._changed: asyncio.Condition | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._delivery_tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # --- server lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeTelegram:
        """Listen on 127.0.0.1 at a free port."""
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._download)
        self._runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._client = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        """End long polls and webhook deliveries, then close the server."""
        self._closing = True
        await self._notify()
        for task in list(self._delivery_tasks):
            task.cancel()
        await asyncio.gather(*self._delivery_tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What ``TELEGRAM_BASE_URL`` must be (the token is appended by the client)."""
        return f"http://127.0.0.1:{self.port}/bot"

    # --- acting as Telegram's users -----------------------------------------------------------

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a text message from a member; commands and @mentions get their entities.

        Args:
            user_id: the sender.
            text: the message text.
            chat_id: the chat; default the private chat with ``user_id``.
            chat_type: ``private``, ``group`` or ``supergroup``.
            reply_to: a message (e.g. one the bot sent) this message replies to.

        Returns:
            The queued update.
        """
        message = self._message(user_id, chat_id, chat_type)
        message["text"] = text
        entities = _entities(text)
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return self._queue({"message": message})

    def send_media(
        self,
        user_id: int,
        kind: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: dict[str, Any] | None = None,
    ) -> dict:
        """Queue a sticker, photo, voice note, audio, video or document from a member.

        Args:
            user_id: the sender.
            kind: ``sticker``, ``photo``, ``voice``, ``audio``, ``video`` or ``document``.
            chat_id: the chat; default the private chat with ``user_id``.
            chat_type: the chat's type.
            reply_to: a message this one replies to.

        Returns:
            The queued update.
        """
        file = {"file_id": f"file-{kind}", "file_unique_id": f"u-{kind}"}
        payloads = {
            "sticker": {**file, "width": 512, "height": 512, "is_animated": False, "is_video": False,
                        "type": "regular"},
            "photo": [{**file, "width": 90, "height": 90}],
            "voice": {**file, "duration": 3},
            "audio": {**file, "duration": 3},
            "video": {**file, "width": 640, "height": 360, "duration": 3},
            "document": {**file, "file_name": "labs.pdf"},
        }  # fmt: skip
        message = self._message(user_id, chat_id, chat_type)
        message[kind] = payloads[kind]
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return self._queue({"message": message})

    def send_document(
        self,
        user_id: int,
        file_name: str,
        content: bytes,
        *,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
        file_size: int | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> dict[str, Any]:
        """Queue a document message; its bytes become downloadable through getFile.

        Args:
            user_id: the sender.
            file_name: the name the client reports (anything: ``../x.md`` included).
            content: the file's bytes.
            caption: the document's caption (e.g. ``/replace``).
            mime_type: the MIME type the client reports.
            file_size: the size Telegram reports (default the real one; larger to test limits).
            chat_id: the chat; default the private chat with ``user_id``.
            chat_type: the chat's type.

        Returns:
            The queued update.
        """
        number = len(self._files) + 1
        file_id = f"BQACAgIAAxkBAAI{number:04d}document"
        size = len(content) if file_size is None else file_size
        self._files[file_id] = (content, size)
        message = self._message(user_id, chat_id, chat_type)
        message["document"] = {
            "file_id": file_id, "file_unique_id": f"AgAD{number:04d}", "file_name": file_name,
            "mime_type": mime_type, "file_size": size,
        }  # fmt: skip
        if caption is not None:
            message["caption"] = caption
            if caption.startswith("/"):
                command = caption.split(maxsplit=1)[0]
                message["caption_entities"] = [
                    {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
                ]
        return self._queue({"message": message})

    def press_button(self, user_id: int, message: dict[str, Any], data: str) -> dict[str, Any]:
        """Queue a press on an inline button of ``message`` (a message the bot sent).

        Args:
            user_id: who pressed.
            message: the bot's message carrying the keyboard.
            data: the button's callback data (or anything a client might send).

        Returns:
            The queued update.
        """
        query = {"id": str(next(self._callback_ids)), "from": _user(user_id), "message": message,
                 "chat_instance": "fake-chat-instance", "data": data}  # fmt: skip
        return self._queue({"callback_query": query})

    def fail_next(self, method: str, count: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``count`` calls of ``method`` with 429 Too Many Requests and ``retry_after``."""
        self._failures[method].extend([retry_after] * count)

    # --- inspecting what the bot did ----------------------------------------------------------

    def calls_of(self, method: str, *, chat_id: int | None = None, status: int | None = 200) -> list[ApiCall]:
        """Recorded calls of ``method`` (only answered ones by default), optionally for one chat."""
        if status == 200:
            return list(self._answered[(method, chat_id)])
        return [
            c for c in self.calls
            if c.method == method and (status is None or c.status == status)
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]  # fmt: skip

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message the bot sent, as it is now (after edits)."""
        return self._messages[(chat_id, message_id)]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        chat_id: int | None = None,
        where: Callable[[ApiCall], bool] | None = None,
        timeout: float = 10.0,
    ) -> list[ApiCall]:
        """Wait until the bot has made ``count`` successful calls of ``method`` (matching the filters).

        Returns:
            The matching calls, oldest first.

        Raises:
            TimeoutError: fewer matching calls within ``timeout`` seconds.
        """

        def matching() -> list[ApiCall]:
            calls = self._answered[(method, chat_id)]
            return calls if where is None else [c for c in calls if where(c)]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                raise TimeoutError(f"{len(matching())} of {count} {method} calls after {timeout} s") from None
        return list(matching())

    async def sent_messages(
        self, chat_id: int, count: int = 1, *, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The messages the bot sent to ``chat_id`` (Bot API ``Message`` objects, oldest first), once there
        are ``count`` of them.

        Raises:
            TimeoutError: fewer within ``timeout`` seconds.
        """
        calls = await self.wait_for("sendMessage", count, chat_id=chat_id, timeout=timeout)
        return [call.result for call in calls]

    # --- the HTTP API -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return await self._record(
                ApiCall(method, params, 404), _error(404, "Not Found: method not found")
            )
        if self._failures[method]:
            retry_after = self._failures[method].popleft()
            error = _error(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            return await self._record(ApiCall(method, params, 429), error)
        status, result = await handler(params)
        response = (
            web.json_response({"ok": True, "result": result}) if status == 200 else _error(status, result)
        )
        return await self._record(
            ApiCall(method, params, status, result if status == 200 else None), response
        )

    async def _record(self, call: ApiCall, response: web.Response) -> web.Response:
        self.calls.append(call)
        if call.status == 200:
            self._answered[(call.method, None)].append(call)
            if "chat_id" in call.params:
                self._answered[(call.method, call.params["chat_id"])].append(call)
        await self._notify()
        return response

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """Telegram's file server: the bytes of a file a getFile call named."""
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        file_id = self._file_paths.get(request.match_info["file_path"])
        if file_id is None:
            return _error(404, "Not Found")
        self.downloads.append(request.match_info["file_path"])
        return web.Response(body=self._files[file_id][0], content_type="application/octet-stream")

    async def _api_getFile(self, params: dict) -> tuple[int, Any]:
        file_id = str(params.get("file_id"))
        if file_id not in self._files:
            return 400, "Bad Request: invalid file_id"
        content, size = self._files[file_id]
        if size > MAX_DOWNLOAD_BYTES:
            return 400, "Bad Request: file is too big"
        file_path = f"documents/file_{list(self._files).index(file_id)}"
        self._file_paths[file_path] = file_id
        return 200, {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": size,
            "file_path": file_path,
        }

    async def _api_getMe(self, params: dict) -> tuple[int, Any]:
        return 200, self.bot_user

    async def _api_getUpdates(self, params: dict) -> tuple[int, Any]:
        if self.webhook_url:
            return (
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook first",
            )
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        self._pending = [u for u in self._pending if u["update_id"] >= offset]  # older ones are confirmed
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._pending or self._closing), timeout
                )
        return 200, self._pending[:limit]

    async def _api_setWebhook(self, params: dict) -> tuple[int, Any]:
        self.webhook_url, self.webhook_secret = params["url"], params.get("secret_token")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        for update in self._pending:
            self._deliver(update)
        self._pending.clear()
        return 200, True

    async def _api_deleteWebhook(self, params: dict) -> tuple[int, Any]:
        self.webhook_url = self.webhook_secret = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return 200, True

    async def _api_getWebhookInfo(self, params: dict) -> tuple[int, Any]:
        info = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        return 200, info

    async def _api_sendMessage(self, params: dict) -> tuple[int, Any]:
        chat = self._chat(params["chat_id"])
        message = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                   "from": self.bot_user, "text": params["text"]}  # fmt: skip
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        replied = (params.get("reply_parameters") or {}).get("message_id")
        if replied is not None and (chat["id"], replied) in self._messages:
            message["reply_to_message"] = self._messages[(chat["id"], replied)]
        self._messages[(chat["id"], message["message_id"])] = message
        return 200, message

    async def _api_editMessageReplyMarkup(self, params: dict) -> tuple[int, Any]:
        message = self._messages.get((params.get("chat_id"), params.get("message_id")))
        if message is None:
            return 400, "Bad Request: message to edit not found"
        if message.get("reply_markup") == params.get("reply_markup"):
            return 400, NOT_MODIFIED
        message["reply_markup"] = params.get("reply_markup")
        return 200, message

    async def _api_editMessageText(self, params: dict) -> tuple[int, Any]:
        message = self._messages.get((params.get("chat_id"), params.get("message_id")))
        if message is None:
            return 400, "Bad Request: message to edit not found"
        message["text"] = params["text"]
        message["reply_markup"] = params.get("reply_markup")
        return 200, message

    async def _api_true(self, params: dict) -> tuple[int, Any]:
        return 200, True

    _api_sendChatAction = _api_answerCallbackQuery = _api_setMyCommands = _api_deleteMyCommands = _api_true
    _api_close = _api_logOut = _api_true

    # --- helpers ------------------------------------------------------------------------------

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "Support group"}
        return {"id": chat_id, "type": "private", "first_name": f"Member {chat_id}"}

    def _message(self, user_id: int, chat_id: int | None, chat_type: str) -> dict[str, Any]:
        chat = self._chat(chat_id if chat_id is not None else user_id)
        chat["type"] = chat_type
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": _user(user_id),
        }

    def _queue(self, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **payload}
        message = payload.get("message")
        if message is not None:  # users' messages can be replied to, like the bot's
            self._messages.setdefault((message["chat"]["id"], message["message_id"]), message)
        if self.webhook_url:
            self._deliver(update)
        else:
            self._pending.append(update)
            asyncio.get_running_loop().create_task(self._notify())
        return update

    def _deliver(self, update: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._post_update(update))
        self._delivery_tasks.add(task)
        task.add_done_callback(self._delivery_tasks.discard)

    async def _post_update(self, update: dict[str, Any]) -> None:
        """POST one update to the webhook like Telegram: retry until the bot answers 200."""
        headers = {SECRET_HEADER: self.webhook_secret} if self.webhook_secret else {}
        for _ in range(WEBHOOK_MAX_ATTEMPTS):
            try:
                async with self._client.post(self.webhook_url, json=update, headers=headers) as response:
                    self.webhook_deliveries.append((update["update_id"], response.status))
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass  # the bot's server is not up yet
            await asyncio.sleep(WEBHOOK_RETRY_DELAY_S)


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"Member {user_id}", "language_code": "en"}


def _utf16_len(text: str) -> int:
    """Telegram counts entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _entities(text: str) -> list[dict[str, Any]]:
    """A leading /command and every @mention, as Telegram marks them."""
    entities = []
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        entities.append({"type": "bot_command", "offset": 0, "length": _utf16_len(command)})
    for word in text.split():
        if word.startswith("@") and len(word) > 1:
            start = text.index(word)
            entities.append(
                {"type": "mention", "offset": _utf16_len(text[:start]), "length": _utf16_len(word)}
            )
    return entities


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _params(request: web.Request) -> dict[str, Any]:
    """The call's parameters: form or query fields, JSON-decoded except the plain-string ones."""
    if request.content_type == "application/json":
        return await request.json()
    raw = {**request.query, **(await request.post())}
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in STRING_PARAMS or not isinstance(value, str):
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
