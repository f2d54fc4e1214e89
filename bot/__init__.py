"""The answer engine, the Telegram application, the SQLite store and settings.

The only package that imports telegram (and only in app.py, handlers.py and formatting.py).
"""

__version__ = "0.1.0"
