"""Fetching files over HTTP(S) and hashing them; shared by the dataset downloads."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from fussbench.errors import FussbenchError

TIMEOUT_S = 60.0
"""Seconds a network read may stall before the download fails."""

CHUNK_BYTES = 1 << 20

Fetch = Callable[[str, Path], None]
"""``fetch(url, target)`` writes the body of ``url`` to the file ``target``."""


def copy_stream(source: BinaryIO, target: Path, total: int | None, label: str) -> None:
    """Copy the open binary stream ``source`` to the file ``target`` with a progress bar."""
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None)
    with open(target, "wb") as out, bar:
        while chunk := source.read(CHUNK_BYTES):
            out.write(chunk)
            bar.update(len(chunk))


def fetch_url(url: str, target: Path) -> None:
    """Stream ``url`` to the file ``target`` with a progress bar.

    Raises:
        OSError: (``urllib.error.URLError`` included) when the network fails or stalls for
            :data:`TIMEOUT_S` seconds.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "fussbench"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        copy_stream(response, target, total, "download")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Return the hex digest of the file ``path`` (``sha256`` or ``md5``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def open_zip(path: Path, fix: str) -> zipfile.ZipFile:
    """Open the zip archive ``path`` for reading.

    Args:
        fix: what the user should do when it is not a sound zip, e.g. "re-download it".

    Raises:
        FussbenchError: naming ``path`` and ``fix`` when the file is missing or not a zip.
    """
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError as error:
        raise FussbenchError(f"{path}: missing; {fix}") from error
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as error:
        raise FussbenchError(f"{path}: not a readable zip archive ({error}); {fix}") from error


def extract_members(
    bundle: zipfile.ZipFile,
    members: Mapping[PurePosixPath, zipfile.ZipInfo],
    dest: Path,
    fix: str,
) -> None:
    """Extract ``members`` (target path relative to ``dest`` -> archive member) into ``dest``.

    Every member's CRC is checked as it is read.

    Raises:
        FussbenchError: naming the archive, the member and ``fix`` when a member is corrupt.
    """
    name = Path(bundle.filename or "archive").name
    for relative, info in tqdm(members.items(), desc=f"extract {name}", unit="file", disable=None):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with bundle.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:
            raise FussbenchError(
                f"{bundle.filename}: member {info.filename} is corrupt ({error}); {fix}"
            ) from error
