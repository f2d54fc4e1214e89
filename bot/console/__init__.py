"""``bot console``: the local admin web console (annotate, review feedback, export, retrain and promote).

FastAPI with server-rendered Jinja2 templates and one vendored script (``static/console.js``); no CDN,
it works offline. It runs on the bot's own settings, SQLite database, documents and index.

    console, token = open_console(settings)     # the database records and the token set-up
    app = create_app(console)                   # the ASGI app (uvicorn, or TestClient in tests)
"""

from __future__ import annotations

import shlex

from bot.config import Settings
from bot.console.auth import Authenticator, TokenSetup, setup_token
from bot.console.jobs import TrainingJobs, TrainingPlan
from bot.console.records import ConsoleRecords
from bot.console.service import Console
from bot.store import Store

__all__ = ["Console", "TokenSetup", "create_app", "open_console", "training_plan"]


def training_plan(settings: Settings) -> TrainingPlan:
    """The retraining job's paths for ``settings`` (read again at every start: the served model may change).

    Raises:
        bot.errors.ModelDirError: the model directory holds no model and has no fallback.
    """
    work = settings.model_dir.with_name(settings.model_dir.name + ".candidate")
    return TrainingPlan(
        model_dir=settings.model_dir,
        served=settings.served_model_dir(),
        train_data=settings.console_train_data,
        dev_data=settings.console_dev_data,
        work_dir=work,
        extra_args=tuple(shlex.split(settings.console_train_args)),
    )


def open_console(settings: Settings, *, new_token: bool = False) -> tuple[Console, TokenSetup]:
    """Open the database and set the token up.

    Args:
        settings: the bot's settings.
        new_token: replace a token generated earlier with a new one.

    Returns:
        The console, and the token set-up (with the new token, to print once, when one was generated).
    """
    store = Store.from_settings(settings)  # migrates the database first
    records = ConsoleRecords(settings.db_path)
    configured = settings.console_token.get_secret_value().strip() if settings.console_token else None
    token = setup_token(records, configured or None, new=new_token)
    jobs = TrainingJobs(lambda: training_plan(settings))
    return Console(settings, records, store, Authenticator(token.digest), jobs), token


def create_app(console: Console):  # noqa: ANN201 - FastAPI imported lazily
    """The console's ASGI application (see ``bot.console.app.create_app``)."""
    from bot.console.app import create_app as build  # noqa: PLC0415

    return build(console)
