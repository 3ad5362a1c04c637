"""The FUSS authors' COCO-Stuff files: their curated training list and their 18 client lists.

The FUSS repository (``evanchar/FUSS``, folder ``fuss_data/cocostuff/``) publishes
``curated/train2017/Coco164kFull_Stuff_Coarse.txt`` (12 408 image ids: every fourth id of
IIC's curated list that fussbench downloads, 49 629 / 4 rounded up; its first ids 25, 61, 77,
109 are IIC's 1st, 5th, 9th and 13th) and ``partitioned_splits/train_MA18__client{k}.txt``
for k = 0..17 (the images of each of their 18 clients; client 0 has 374, client 17 751).
Each file holds one 12-digit COCO image id per line.

:func:`obtain_fuss_lists` lays them out under ``fuss/`` of the dataset folder, from
``<download.cocostuff_files>/fuss/`` when that folder is given, else from GitHub. They are
optional: without them COCO-Stuff-27 still works with IIC's list and fussbench's own
partitions, and only ``cocostuff27.train_list: fuss`` and the ``paper_cocostuff27`` preset
need them.
"""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path

from fussbench.data.fetch import Fetch, file_digest
from fussbench.errors import FussbenchError

FUSS_COMMIT = "0251508f1e1531d533b6e020b76ff2c70bc26d09"
"""The commit of ``evanchar/FUSS`` the lists are fetched from (read 2026-12-02)."""
FUSS_DIR = "fuss"
"""Where the lists lie in the dataset folder and in a ``download.cocostuff_files`` folder."""
CURATED = "curated/train2017/Coco164kFull_Stuff_Coarse.txt"
N_CLIENTS = 18
CLIENT_LIST = "partitioned_splits/train_MA18__client{client}.txt"
FILES: dict[str, str] = {
    f"{FUSS_DIR}/{path}": (
        f"https://raw.githubusercontent.com/evanchar/FUSS/{FUSS_COMMIT}/fuss_data/cocostuff/{path}"
    )
    for path in [CURATED, *(CLIENT_LIST.format(client=k) for k in range(N_CLIENTS))]
}
"""Each file by its path in the dataset folder -> its URL."""
HOW = (
    f"put them in <download.cocostuff_files>/{FUSS_DIR}/ (from "
    f"https://github.com/evanchar/FUSS/tree/{FUSS_COMMIT}/fuss_data/cocostuff) or run "
    "`fussbench download` where GitHub is reachable"
)
"""How to obtain the lists when they are missing."""


def obtain_fuss_lists(tmp: Path, files: Path | None, fetch: Fetch) -> dict[str, object]:
    """Copy (``files`` given) or fetch the FUSS lists into ``tmp/fuss/``.

    A missing folder or a failed download leaves them out with a printed notice.

    Returns:
        ``{"fuss_lists": where they came from or why they are missing, "fuss_lists_sha256":
        {path: sha256}}``.
    """
    if files is not None:
        source = Path(files)
        found = {name: source / name for name in FILES if (source / name).is_file()}
        if len(found) < len(FILES):
            print(f"{source / FUSS_DIR}: the FUSS authors' lists are not (all) there; {HOW}")
            return {"fuss_lists": "missing"}
        for name, path in found.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(path.read_bytes())
        where = str(source / FUSS_DIR)
    else:
        try:
            for name, url in FILES.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                fetch(url, tmp / name)
        except (OSError, http.client.HTTPException) as error:
            print(f"could not fetch the FUSS authors' lists ({error}); {HOW}")
            shutil.rmtree(tmp / FUSS_DIR, ignore_errors=True)
            return {"fuss_lists": "missing"}
        where = f"github.com/evanchar/FUSS@{FUSS_COMMIT}"
    return {
        "fuss_lists": where,
        "fuss_lists_sha256": {name: file_digest(tmp / name) for name in FILES},
    }


def fuss_file(root: Path, path: str) -> Path:
    """``root/fuss/<path>`` when it exists.

    Raises:
        FussbenchError: naming the file and how to obtain it.
    """
    target = Path(root) / FUSS_DIR / path
    if not target.is_file():
        raise FussbenchError(f"{target}: missing (the FUSS authors' list); {HOW}")
    return target
