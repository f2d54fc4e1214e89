"""The bot's one atomic-file writer: a temp file beside the destination, fsynced, then renamed in.

A reader (the engine loading ``calibration.json``, an admin opening an export) sees the old file or
the new one, never half of one. ``finetune.atomic`` is the training side's twin; bot may import only the
reader side of finetune, so it keeps its own.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# mkstemp makes 0600; what the bot writes (exports, calibrations) are normal, shareable files.
FILE_MODE = 0o644


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` as indented UTF-8 JSON to a temp file beside ``path``, then rename it into place.

    Args:
        path: the destination (its folder is created when missing).
        document: JSON-serialisable data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
