"""Keep the server's filesystem layout out of what clients read.

Error messages are built from exceptions, and an ``OSError`` or a library's message names the file it
failed on (``[Errno 2] No such file or directory: '/srv/fairaudit/cohorts/…'``). Where such text reaches
a client (problem documents, a job's or cohort's error), every path under one of the server's folders
(data and model folders, the temporary folder, the Python installation, the working directory) is
replaced by its last component, which is what the client itself named or can recognise.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from app.settings import Settings

# characters that end a path inside a message: whitespace, quotes and punctuation around it
_PATH_REST = r"""(?:/[^\s'"`,;:()\[\]{}<>]*)*"""
_BOUNDARY = r"""(?=[/.\s'"`,;:()\[\]{}<>]|$)"""


def hide_server_paths(text: str, settings: Settings) -> str:
    """``text`` with each server path replaced by its last component."""
    pattern = _pattern(str(settings.data_dir), str(settings.model_dir), os.getcwd())
    return pattern.sub(lambda m: Path(m.group()).name or "<server folder>", text) if pattern else text


@lru_cache(maxsize=16)
def _pattern(data_dir: str, model_dir: str, cwd: str) -> re.Pattern[str] | None:
    roots = set()
    for root in (data_dir, model_dir, cwd, tempfile.gettempdir(), sys.prefix, sys.base_prefix):
        path = Path(root)
        roots.add(str(path))
        roots.add(str((Path(cwd) / path).resolve()))
    roots = {r for r in roots if len(Path(r).parts) > 1 or not Path(r).is_absolute()}
    roots.discard(".")
    if not roots:
        return None
    alternatives = "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True))
    return re.compile(rf"(?<![\w./-])(?:{alternatives}){_BOUNDARY}{_PATH_REST}")
