"""Obtain COCO-Stuff-27: the COCO 2017 image zips, the COCO-Stuff ``stuffthingmaps`` zip and
the two curated image lists, from their public URLs or a local folder, and extract only the
curated images and their labels.
"""

from __future__ import annotations

import http.client
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from fussbench.data.cocostuff import CURATED_LIST, SPLIT_FOLDERS, read_curated_list
from fussbench.data.cocostuff_fuss import FUSS_DIR, obtain_fuss_lists
from fussbench.data.fetch import Fetch, extract_members, file_digest, open_zip
from fussbench.errors import FussbenchError

HOMEPAGE = "https://github.com/nightrome/cocostuff"
PICIE_COMMIT = "fc4e7c193c2ba77a6dbf9f24e5e7cf99da9f528a"
"""The curated lists (IIC's, as used by PiCIE and STEGO) come from PiCIE's repository."""

LABELS_ZIP = "stuffthingmaps_trainval2017.zip"
FILES: dict[str, str] = {
    "train2017.zip": "http://images.cocodataset.org/zips/train2017.zip",
    "val2017.zip": "http://images.cocodataset.org/zips/val2017.zip",
    LABELS_ZIP: "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/" + LABELS_ZIP,
    **{
        f"curated/{folder}/{CURATED_LIST}": (
            f"https://raw.githubusercontent.com/janghyuncho/PiCIE/{PICIE_COMMIT}/"
            f"curated/{folder}/{CURATED_LIST}"
        )
        for folder in SPLIT_FOLDERS.values()
    },
}
"""Each file fussbench needs, by its path in a ``download.cocostuff_files`` folder -> URL."""

DOWNLOADS = ".downloads"
"""Where the files are downloaded to, inside the temporary dataset folder; removed after use."""

LAYOUT = (
    "curated/{train2017,val2017}/" + CURATED_LIST + ", images/{train2017,val2017}/<id>.jpg, "
    "annotations/{train2017,val2017}/<id>.png (optional: fuss/, the FUSS authors' lists)"
)


def select_cocostuff(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Keep the laid-out files: the curated lists, ``images/*/*.jpg``, ``annotations/*/*.png``
    and the FUSS authors' lists (``fuss/**/*.txt``)."""
    folders = set(SPLIT_FOLDERS.values())
    suffixes = {"curated": ".txt", "images": ".jpg", "annotations": ".png"}
    fuss = [path for path in paths if path.parts[0] == FUSS_DIR and path.suffix == ".txt"]
    return fuss + [
        path
        for path in paths
        if len(path.parts) == 3
        and path.parts[0] in suffixes
        and path.parts[1] in folders
        and path.suffix == suffixes[path.parts[0]]
        and (path.parts[0] != "curated" or path.name == CURATED_LIST)
    ]


def obtain_cocostuff(tmp: Path, files: Path | None, fetch: Fetch) -> dict[str, object]:
    """Lay COCO-Stuff-27 out in ``tmp`` from the :data:`FILES` in the folder ``files``, or, when
    ``files`` is ``None``, from their URLs; the FUSS authors' lists too, when found (see
    :mod:`fussbench.data.cocostuff_fuss`).

    Returns:
        The origin fields of ``SOURCE.json``: where the files came from and their sha256.

    Raises:
        FussbenchError: a missing file, a failed download, or a file that does not hold the
            curated images; each names the file and the fix.
    """
    if files is not None:
        paths = {name: Path(files) / name for name in FILES}
        missing = [name for name, path in paths.items() if not path.is_file()]
        if missing:
            raise FussbenchError(
                f"download.cocostuff_files={files}: {', '.join(missing)} missing there; put "
                "them there (from "
                + ", ".join(FILES[name] for name in missing)
                + ") or set download.cocostuff_files to null to download them"
            )
        origin: dict[str, object] = {"obtained_from": "local", "location": str(files)}
    else:
        paths = {name: tmp / DOWNLOADS / name for name in FILES}
        for name, path in paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            _fetch(fetch, FILES[name], path)
        origin = {"obtained_from": "download", "location": FILES}
    origin["files_sha256"] = {name: file_digest(path) for name, path in paths.items()}
    for folder in SPLIT_FOLDERS.values():
        listed = paths[f"curated/{folder}/{CURATED_LIST}"]
        ids = read_curated_list(listed)
        target = tmp / "curated" / folder / CURATED_LIST
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(listed, target)
        _extract_ids(paths[f"{folder}.zip"], folder, ids, ".jpg", tmp / "images")
        _extract_ids(paths[LABELS_ZIP], folder, ids, ".png", tmp / "annotations")
    shutil.rmtree(tmp / DOWNLOADS, ignore_errors=True)
    return {**origin, **obtain_fuss_lists(tmp, files, fetch)}


def _fetch(fetch: Fetch, url: str, target: Path) -> None:
    """``fetch(url, target)``, with a failure reported as FussbenchError with the fix."""
    try:
        fetch(url, target)
    except (OSError, http.client.HTTPException) as error:
        raise FussbenchError(
            f"download of cocostuff27 failed: {url}: {error}; retry, or put the files of "
            "COCO-Stuff-27 in a folder named by download.cocostuff_files in params.yaml "
            f"({', '.join(FILES)})"
        ) from error


def _extract_ids(archive: Path, folder: str, ids: list[str], suffix: str, dest: Path) -> None:
    """Extract ``<folder>/<id><suffix>`` for every id from ``archive`` to ``dest/<folder>/``.

    The members may sit below one more top folder.

    Raises:
        FussbenchError: naming the archive and the first missing id when it lacks some.
    """
    fix = f"download {archive.name} again from {FILES[archive.name]}"
    with open_zip(archive, fix) as bundle:
        by_name: dict[PurePosixPath, zipfile.ZipInfo] = {}
        for info in bundle.infolist():
            parts = PurePosixPath(info.filename).parts
            if not info.is_dir() and len(parts) >= 2 and parts[-2] == folder:
                by_name[PurePosixPath(*parts[-2:])] = info
        wanted = [PurePosixPath(folder, image_id + suffix) for image_id in ids]
        missing = [path for path in wanted if path not in by_name]
        if missing:
            raise FussbenchError(
                f"{archive}: lacks {len(missing)} file(s) of the curated {folder} list, first "
                f"{missing[0]}; is it COCO-Stuff's {archive.name}? {fix}"
            )
        extract_members(bundle, {path: by_name[path] for path in wanted}, dest, fix)
