"""One client's data folder: all that its SuperNode can read (``--node-config data-dir=...``).

Layout of a site folder for client k:

- ``client_XX.json``: the client's manifest, as in the partition folder
  (``{"client": k, "n_images": n, "samples": [...]}``);
- ``train/``: a feature cache in the layout of :mod:`fussbench.features.cache`
  (``features.npy`` (n * views, C, h, w) float16, ``labels.npy`` (n * views, H, W) uint8,
  ``pooled.npy`` (n * views, C) float32, ``index.json``) holding only the client's rows,
  in manifest order.

The rows are copied, so a SuperNode given this folder cannot read another client's images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fussbench.atomic import atomic_path, write_json
from fussbench.data.partition import client_file
from fussbench.errors import FussbenchError
from fussbench.features.cache import FeatureSplit, open_split

CACHE = "train"
"""Sub-folder of the client's feature cache."""


@dataclass(frozen=True)
class Site:
    """A client's opened data folder.

    Attributes:
        client: the client number (the SuperNode's ``partition-id``).
        cache: the client's rows of the training cache, in manifest order.
    """

    client: int
    cache: FeatureSplit

    def local_rows(self, limit: int | None) -> np.ndarray:
        """At most ``limit`` row indices (K,) of the cache, evenly spaced, in order: the
        rows the client scores itself on each round (``evaluation.local_max_images``), as
        the in-process engine picks them from the client's rows."""
        rows = np.arange(self.cache.features.shape[0], dtype=np.int64)
        if limit is None or len(rows) <= limit:
            return rows
        return rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


def write_site(directory: Path, client: int, train: FeatureSplit, rows: np.ndarray) -> Path:
    """Write client ``client``'s folder, atomically, from its rows of the training cache:
    (n * views,) as :meth:`FeatureSplit.rows` gives them, each sample's views together."""
    names = [train.names[row // train.views] for row in rows[:: train.views]]
    if not np.array_equal(train.rows(names), rows):
        raise FussbenchError(f"client {client}: rows are not whole samples of {train.directory}")
    with atomic_path(directory) as tmp:
        cache = tmp / CACHE
        cache.mkdir(parents=True)
        features = np.ascontiguousarray(train.features[rows])
        np.save(cache / "features.npy", features)
        np.save(cache / "labels.npy", np.ascontiguousarray(train.labels[rows]))
        np.save(cache / "pooled.npy", np.ascontiguousarray(train.pooled[rows]))
        index = {
            "names": names,
            "fingerprint": train.fingerprint,
            "views_per_image": train.views,
            "feature_shape": list(features.shape),
            "backbone_nbytes": train.backbone_nbytes,
        }
        (cache / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        write_json(
            tmp / client_file(client),
            {"client": client, "n_images": len(names), "samples": names},
        )
    return directory


def open_site(directory: Path, client: int, expected: dict[str, object]) -> Site:
    """Open client ``client``'s folder and check it against the run.

    Args:
        directory: the SuperNode's ``data-dir``.
        client: the SuperNode's ``partition-id``.
        expected: the training cache's fingerprint for the run's params
            (:func:`fussbench.features.cache.cache_fingerprint`).

    Raises:
        FussbenchError: naming the folder, the node config key and the fix.
    """
    manifest = directory / client_file(client)
    if not manifest.is_file():
        raise FussbenchError(
            f"{manifest}: no manifest of client {client} (node config data-dir / partition-id); "
            "write the folder with `python -m fussbench.engines.flower.export`"
        )
    payload = json.loads(manifest.read_text(encoding="utf-8"))
    cache = open_split(directory / CACHE, expected)
    if payload.get("client") != client or payload.get("samples") != cache.names:
        raise FussbenchError(
            f"{manifest}: manifest does not match partition-id {client} or the rows of "
            f"{directory / CACHE}; export the client's folder again"
        )
    return Site(client, cache)
