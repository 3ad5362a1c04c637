"""Atomic file writes: write to a temporary sibling, then rename over the target.

An interrupted run therefore never leaves a half-written file that DVC or the next stage
would trust.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    On an exception the temporary file (or folder) is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_npy(target: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as a ``.npy`` file to ``target`` atomically."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
