"""Test doubles of the bot's surroundings, shared by the test suite and the benchmarks.

``fakes``: a keyword-spotting reader and a word-overlap index over a tiny corpus (no model, no BM25);
``fake_telegram``: a fake Bot API server; ``running``: the real application in the caller's event
loop. Benchmarks stand on these, not on ``tests``; nothing here is imported by the bot itself
(``fake_telegram`` needs aiohttp, from the ``dev`` extra).
"""
