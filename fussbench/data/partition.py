"""Split a training split's samples into federated clients, and measure their label skew.

Methods (``partition.method``):

* ``domain``: one client per distinct :attr:`Sample.group` (e.g. CamVid video sequence).
* ``groups``: one client per listed set of groups (``partition.groups``, e.g. the Cityscapes
  cities of each client); every group of the split must be listed exactly once.
* ``iid``: a seeded random permutation cut into near-equal parts.
* ``dirichlet``: label skew. Images are bucketed by dominant class and each bucket is
  divided among clients with proportions drawn from ``Dirichlet(alpha · 1_K)``.
* ``embedding_dirichlet``: the same Dirichlet split over k-means clusters of the images'
  pooled backbone features instead of dominant classes (no labels needed; see
  :mod:`fussbench.data.embedding_partition`).
* ``quantity``: size skew. A seeded permutation cut by ``partition.shares``.
* ``lists``: client k holds the samples named in the k-th text file of
  ``partition.client_lists`` (one name per line, e.g. the FUSS authors' COCO-Stuff lists).
  Every listed name must be a sample of the split; samples no list names are left out.

A partition folder holds ``client_XX.json`` (sample names per client), ``summary.csv``
(pixel counts per class and client) and ``partition.json`` (settings, label skew and, for
the methods of :data:`FEATURE_METHODS`, feature skew).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fussbench.atomic import atomic_path, write_json, write_text
from fussbench.data.samples import IGNORE_INDEX, DatasetSpec, Sample
from fussbench.errors import FussbenchError

METHODS = ("domain", "iid", "dirichlet", "quantity", "groups", "lists", "embedding_dirichlet")
FEATURE_METHODS = ("embedding_dirichlet",)
"""The methods that read the training images' pooled features from the feature cache."""
CLIENT_PLACEHOLDER = "{client}"
"""In a single ``partition.client_lists`` entry: replaced by 0 .. n_clients - 1."""
SHOWN = 5
"""How many missing or repeated names an error lists."""
SHARES_TOLERANCE = 1e-6
RERUN = "rerun `fussbench partition`"


# --------------------------------------------------------------------------- histograms


def class_histograms(labels: Iterable[np.ndarray], n_classes: int) -> np.ndarray:
    """Pixel count per class of each label map, skipping :data:`IGNORE_INDEX`.

    Args:
        labels: label maps of any shape holding class indices in ``[0, n_classes)`` or 255.
        n_classes: number of classes C.

    Returns:
        (N, C) int64 counts, one row per label map.
    """
    rows = [np.zeros((0, n_classes), dtype=np.int64)]
    for number, label in enumerate(labels):
        values = np.asarray(label).ravel()
        values = values[values != IGNORE_INDEX].astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            bad = values[(values < 0) | (values >= n_classes)][0]
            raise FussbenchError(
                f"label map {number} holds value {bad}, outside [0, {n_classes}) "
                f"and not {IGNORE_INDEX}; check the dataset's decode_label"
            )
        rows.append(np.bincount(values, minlength=n_classes)[None, :])
    return np.concatenate(rows).astype(np.int64)


def label_histograms(spec: DatasetSpec, samples: Sequence[Sample]) -> np.ndarray:
    """Read every sample's label with ``spec.read_sample_label`` and count its pixels per
    class (an unlabelled sample counts none).

    Returns:
        (N, C) int64 counts, N = ``len(samples)``, C = ``spec.n_classes``.
    """
    labels = (
        spec.read_sample_label(sample)
        for sample in tqdm(samples, desc=f"label histograms {spec.name}", unit="image")
    )
    return class_histograms(labels, spec.n_classes)


# --------------------------------------------------------------------------- partitioning


def check_method(method: str) -> None:
    """Raise FussbenchError unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise FussbenchError(
            f"partition.method '{method}' is unknown; use one of {', '.join(METHODS)}"
        )


def partition_indices(
    method: str,
    *,
    groups: Sequence[str],
    histograms: np.ndarray,
    n_clients: int | None,
    alpha: float,
    shares: Sequence[float] | None,
    seed: int,
    client_groups: Sequence[Sequence[str]] = (),
    embeddings: np.ndarray | None = None,
    n_embedding_clusters: int = 10,
) -> list[np.ndarray]:
    """Divide N samples among clients.

    Args:
        method: one of :data:`METHODS`.
        groups: (N,) group name of each sample, used by ``domain``.
        histograms: (N, C) pixel counts per class, used by ``dirichlet``.
        n_clients: number of clients K. ``0``/``None`` means one client per group for
            ``domain`` and one client per share for ``quantity``; the other methods need
            ``1 <= K <= N``.
        alpha: Dirichlet concentration (``dirichlet`` and ``embedding_dirichlet``, > 0).
        shares: (K,) fraction of the samples per client (``quantity`` only).
        seed: seed of the numpy generator (and of k-means for ``embedding_dirichlet``);
            the same seed gives the same partition.
        client_groups: (K,) lists of group names, one per client (``groups`` only).
        embeddings: (N, D) the samples' L2-normalised pooled features (``embedding_dirichlet``
            only; :func:`fussbench.features.embeddings.image_embeddings`).
        n_embedding_clusters: k-means clusters of ``embeddings``
            (``partition.embedding_clusters``, ``embedding_dirichlet`` only).

    Returns:
        K sorted int64 index arrays that together use every index in ``[0, N)`` once.

    Raises:
        FussbenchError: naming the ``partition.*`` parameter at fault and the fix.
    """
    histograms = np.asarray(histograms)
    n_samples = len(groups)
    if histograms.ndim != 2 or histograms.shape[0] != n_samples:
        raise ValueError(f"histograms shape {histograms.shape} does not match {n_samples} groups")
    if n_samples == 0:
        raise FussbenchError("the training split has no samples to partition; check the dataset")
    check_method(method)
    if method == "domain":
        parts = _split_domain(groups, n_clients)
    elif method == "groups":
        parts = _split_groups(groups, client_groups, n_clients)
    elif method == "quantity":
        parts = _split_quantity(n_samples, n_clients, shares, seed)
    elif method == "iid":
        parts = _split_iid(n_samples, _require_n_clients(method, n_clients, n_samples), seed)
    elif method == "dirichlet":
        k = _require_n_clients(method, n_clients, n_samples)
        parts = _split_dirichlet(histograms, k, alpha, seed)
    elif method == "embedding_dirichlet":
        k = _require_n_clients(method, n_clients, n_samples)
        if embeddings is None or len(embeddings) != n_samples:
            raise ValueError(f"method '{method}' needs one embedding per sample ({n_samples})")
        # imports scikit-learn: only here
        from fussbench.data.embedding_partition import embedding_clusters

        clusters = embedding_clusters(embeddings, n_embedding_clusters, seed)
        parts = _split_buckets(clusters, k, alpha, seed, "k-means clusters of the features")
    else:
        raise ValueError("method 'lists' selects its samples first: use select_listed")
    clients = [np.sort(np.asarray(part, dtype=np.int64)) for part in parts]
    _check_cover(clients, n_samples)
    return clients


def _require_n_clients(method: str, n_clients: int | None, n_samples: int) -> int:
    """Return ``n_clients`` when it is a client count in ``[1, n_samples]``."""
    if n_clients is None or not 1 <= n_clients <= n_samples:
        raise FussbenchError(
            f"partition.n_clients={n_clients} is invalid for method '{method}': it must be "
            f"between 1 and the number of samples ({n_samples})"
        )
    return int(n_clients)


def _split_domain(groups: Sequence[str], n_clients: int | None) -> list[np.ndarray]:
    """One client per distinct group, clients in sorted group-name order."""
    names = sorted(set(groups))
    if n_clients not in (None, 0, len(names)):
        shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
        raise FussbenchError(
            f"partition.n_clients={n_clients} but method 'domain' makes one client per group "
            f"and the split has {len(names)} groups ({shown}); set partition.n_clients to "
            f"{len(names)} or 0"
        )
    group_array = np.asarray(groups, dtype=object)
    return [np.flatnonzero(group_array == name) for name in names]


def _split_groups(
    groups: Sequence[str], client_groups: Sequence[Sequence[str]], n_clients: int | None
) -> list[np.ndarray]:
    """Client k holds the samples whose group is in ``client_groups[k]``.

    Raises:
        FussbenchError: naming the groups that are missing, listed twice or unknown, an empty
            client, or a ``partition.n_clients`` other than 0 or K.
    """
    if not client_groups or any(not names for names in client_groups):
        raise FussbenchError(
            "partition.groups must list, for each client, a non-empty list of groups "
            "(method 'groups')"
        )
    if n_clients not in (None, 0, len(client_groups)):
        raise FussbenchError(
            f"partition.n_clients={n_clients} but partition.groups lists "
            f"{len(client_groups)} clients; set partition.n_clients to {len(client_groups)} or 0"
        )
    present = set(groups)
    listed = [name for names in client_groups for name in names]
    problems = []
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if twice:
        problems.append(f"listed more than once: {', '.join(twice)}")
    missing = sorted(present - set(listed))
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    unknown = sorted(set(listed) - present)
    if unknown:
        problems.append(f"not in the split: {', '.join(unknown)}")
    if problems:
        raise FussbenchError(
            f"partition.groups must list every group of the split exactly once; "
            f"{'; '.join(problems)} (the split's groups: {', '.join(sorted(present))})"
        )
    client_of = {name: client for client, names in enumerate(client_groups) for name in names}
    owners = np.array([client_of[group] for group in groups])
    return [np.flatnonzero(owners == client) for client in range(len(client_groups))]


def _split_iid(n_samples: int, n_clients: int, seed: int) -> list[np.ndarray]:
    """A seeded permutation cut into ``n_clients`` parts whose sizes differ by at most one."""
    permutation = np.random.default_rng(seed).permutation(n_samples)
    return np.array_split(permutation, n_clients)


def _split_dirichlet(
    histograms: np.ndarray, n_clients: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Label skew: each dominant-class bucket is split by proportions ~ Dirichlet(alpha · 1_K).

    Images without a labelled pixel form one extra bucket.
    """
    n_classes = histograms.shape[1]
    dominant = np.where(histograms.sum(axis=1) > 0, histograms.argmax(axis=1), n_classes)
    return _split_buckets(dominant, n_clients, alpha, seed, "dominant-class buckets")


def _split_buckets(
    buckets: np.ndarray, n_clients: int, alpha: float, seed: int, kind: str
) -> list[np.ndarray]:
    """Split every bucket among the clients by proportions ~ Dirichlet(alpha · 1_K).

    Buckets are taken in increasing order; each one's members are permuted, then cut at
    the cumulative proportions (floored). Empty clients are an error, never resampled.

    Args:
        buckets: (N,) int bucket of each sample (a dominant class, a k-means cluster).
        kind: what the buckets are, for the error message.
    """
    if not math.isfinite(alpha) or alpha <= 0:
        raise FussbenchError(f"partition.alpha={alpha} must be a positive number")
    rng = np.random.default_rng(seed)
    clients: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
    for bucket in np.unique(buckets):
        members = rng.permutation(np.flatnonzero(buckets == bucket))
        proportions = rng.dirichlet(np.full(n_clients, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(np.int64)
        for client, part in enumerate(np.split(members, cuts)):
            clients[client].append(part)
    parts = [np.concatenate(pieces) for pieces in clients]
    empty = [client for client, part in enumerate(parts) if part.size == 0]
    if empty:
        raise FussbenchError(
            f"partition.alpha={alpha} with partition.n_clients={n_clients} and "
            f"partition.seed={seed} leaves client(s) {', '.join(map(str, empty))} without "
            f"images ({len(buckets)} images in {np.unique(buckets).size} {kind}); raise "
            "partition.alpha, lower partition.n_clients, or change partition.seed"
        )
    return parts


def _split_quantity(
    n_samples: int, n_clients: int | None, shares: Sequence[float] | None, seed: int
) -> list[np.ndarray]:
    """A seeded permutation cut by ``shares`` (largest-remainder rounding to N in all)."""
    fractions = _check_shares(shares, n_clients)
    exact = fractions * n_samples
    sizes = np.floor(exact).astype(np.int64)
    leftover = n_samples - int(sizes.sum())
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[:leftover]] += 1
    if sizes.min() < 1:
        raise FussbenchError(
            f"partition.shares={list(fractions)} gives client(s) "
            f"{', '.join(map(str, np.flatnonzero(sizes < 1)))} no image out of {n_samples}; "
            "raise the smallest shares or use fewer clients"
        )
    permutation = np.random.default_rng(seed).permutation(n_samples)
    return np.split(permutation, np.cumsum(sizes)[:-1])


def _check_shares(shares: Sequence[float] | None, n_clients: int | None) -> np.ndarray:
    """Return ``shares`` as a (K,) float array when valid for ``n_clients`` (0/None = any K)."""
    if not shares:
        raise FussbenchError("partition.shares is empty; method 'quantity' needs one per client")
    fractions = np.asarray(shares, dtype=np.float64)
    if n_clients not in (None, 0) and len(fractions) != n_clients:
        raise FussbenchError(
            f"partition.shares has {len(fractions)} entries but partition.n_clients="
            f"{n_clients}; give one share per client or set partition.n_clients to 0"
        )
    if not np.all(np.isfinite(fractions)) or fractions.min() <= 0:
        raise FussbenchError(f"partition.shares={list(shares)} must all be positive")
    if abs(fractions.sum() - 1.0) > SHARES_TOLERANCE:
        raise FussbenchError(
            f"partition.shares={list(shares)} sum to {fractions.sum():.6g}; they must sum to 1"
        )
    return fractions


def _check_cover(clients: Sequence[np.ndarray], n_samples: int) -> None:
    """Raise AssertionError unless the clients use every index in ``[0, n_samples)`` once."""
    used = np.concatenate(clients) if clients else np.zeros(0, dtype=np.int64)
    if used.size != n_samples or not np.array_equal(np.sort(used), np.arange(n_samples)):
        raise AssertionError("partition does not use every sample exactly once")


# --------------------------------------------------------------------------- client lists


def client_list_paths(client_lists: Sequence[str], n_clients: int | None) -> list[Path]:
    """The list file of each client (method ``lists``).

    Args:
        client_lists: ``partition.client_lists``: one path per client, or one path holding
            ``{client}``, expanded for clients 0 .. ``n_clients`` - 1.
        n_clients: ``partition.n_clients`` (0/None: one client per listed path).

    Raises:
        FussbenchError: naming the params at fault.
    """
    if not client_lists:
        raise FussbenchError(
            "partition.client_lists is empty; method 'lists' needs one text file of image "
            "names per client (or one path with {client} in it and partition.n_clients)"
        )
    if len(client_lists) == 1 and CLIENT_PLACEHOLDER in client_lists[0]:
        if not n_clients:
            raise FussbenchError(
                f"partition.client_lists={list(client_lists)} has {CLIENT_PLACEHOLDER}: set "
                "partition.n_clients to the number of clients"
            )
        pattern = client_lists[0]
        return [Path(pattern.replace(CLIENT_PLACEHOLDER, str(k))) for k in range(n_clients)]
    if n_clients not in (None, 0, len(client_lists)):
        raise FussbenchError(
            f"partition.n_clients={n_clients} but partition.client_lists names "
            f"{len(client_lists)} files; set partition.n_clients to {len(client_lists)} or 0"
        )
    return [Path(path) for path in client_lists]


def read_client_lists(paths: Sequence[Path]) -> list[list[str]]:
    """The names in each list file: one per line, blank lines skipped.

    Raises:
        FussbenchError: a missing or empty file, or a name listed twice (in one file or in
            two), naming the files and the first names.
    """
    lists = []
    owner: dict[str, Path] = {}
    for path in paths:
        try:
            names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
        except OSError as error:
            raise FussbenchError(
                f"{path}: client list not readable ({error}); check partition.client_lists"
            ) from error
        names = [name for name in names if name]
        if not names:
            raise FussbenchError(f"{path}: client list holds no image name")
        repeated = [name for name in names if name in owner]
        if len(set(names)) != len(names) or repeated:
            twice = repeated or [name for name in names if names.count(name) > 1]
            where = owner.get(twice[0], path)
            raise FussbenchError(
                f"{path}: '{twice[0]}' is listed twice (also in {where}); each image belongs "
                "to one client"
            )
        owner.update(dict.fromkeys(names, path))
        lists.append(names)
    return lists


def select_listed(
    samples: Sequence[Sample], lists: Sequence[Sequence[str]], paths: Sequence[Path]
) -> tuple[list[Sample], list[np.ndarray]]:
    """The samples the lists name, and each client's indices into them.

    Args:
        samples: the split's samples (the curated set the lists must come from).
        lists: K lists of sample names (:func:`read_client_lists`).
        paths: the K list files, for error messages.

    Returns:
        (the listed samples, in split order; K sorted int64 index arrays into them).

    Raises:
        FussbenchError: naming the list file and its first names that are not in ``samples``.
    """
    position = {sample.name: row for row, sample in enumerate(samples)}
    for path, names in zip(paths, lists, strict=True):
        missing = [name for name in names if name not in position]
        if missing:
            raise FussbenchError(
                f"{path}: {len(missing)} of its {len(names)} images are not in the training "
                f"split ({len(samples)} images), first {', '.join(missing[:SHOWN])}; the "
                "lists must name images of the curated set (cocostuff27.train_list)"
            )
    rows = sorted(position[name] for names in lists for name in names)
    listed = [samples[row] for row in rows]
    new_index = {samples[row].name: index for index, row in enumerate(rows)}
    clients = [np.sort(np.array([new_index[name] for name in names], np.int64)) for names in lists]
    return listed, clients


# --------------------------------------------------------------------------- label skew


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between two (C,) count vectors.

    Both vectors are normalised first; returns NaN when either has no mass.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))


def label_skew(histograms: np.ndarray, client_indices: Sequence[np.ndarray]) -> dict[str, Any]:
    """JS divergence between each client's class distribution and the global one.

    Args:
        histograms: (N, C) pixel counts per image.
        client_indices: K index arrays into the rows of ``histograms``.

    Returns:
        ``{"js_mean": float, "js_weighted_mean": float, "js_per_client": [K floats]}``;
        the weighted mean weights clients by image count. A client without labelled pixels
        gets ``None`` and is left out of both means (``None`` when no client remains).
    """
    histograms = np.asarray(histograms)
    overall = histograms.sum(axis=0)
    per_client = [js_divergence(histograms[rows].sum(axis=0), overall) for rows in client_indices]
    sizes = np.array([len(rows) for rows in client_indices], dtype=np.float64)
    valid = np.isfinite(per_client)
    values = np.asarray(per_client)[valid]
    return {
        "js_mean": float(values.mean()) if values.size else None,
        "js_weighted_mean": float(np.average(values, weights=sizes[valid]))
        if values.size
        else None,
        "js_per_client": [value if math.isfinite(value) else None for value in per_client],
    }


# --------------------------------------------------------------------------- files


def client_file(client: int) -> str:
    """File name of client ``client``'s manifest, e.g. ``client_03.json``."""
    return f"client_{client:02d}.json"


def write_partition(
    out_dir: Path,
    samples: Sequence[Sample],
    client_indices: Sequence[np.ndarray],
    histograms: np.ndarray,
    class_names: Sequence[str],
    meta: Mapping[str, Any],
    *,
    method: str,
    params: Mapping[str, Any],
    seed: int,
    feature_skew: Mapping[str, Any] | None = None,
) -> None:
    """Replace ``out_dir`` with a complete partition folder, atomically.

    The folder is built next to ``out_dir`` and renamed into place, so an interrupted
    run leaves the previous partition intact and no client files of an earlier run remain.

    Args:
        out_dir: the partition folder.
        samples: the N partitioned samples.
        client_indices: K index arrays into ``samples``.
        histograms: (N, C) pixel counts per image.
        class_names: (C,) column names of ``summary.csv``.
        meta: free-form provenance stored in ``partition.json`` (dataset, split, ...).
        method: the partition method.
        params: the method's settings as given (n_clients, alpha, shares, ...).
        seed: the partition seed.
        feature_skew: the partition's :func:`fussbench.features.skew.feature_skew`, for
            the methods that read the features (:data:`FEATURE_METHODS`); ``None``
            otherwise (``fussbench federate`` records every run's).
    """
    histograms = np.asarray(histograms)
    if histograms.shape != (len(samples), len(class_names)):
        raise ValueError(
            f"histograms shape {histograms.shape} does not match "
            f"{len(samples)} samples × {len(class_names)} classes"
        )
    _check_cover(client_indices, len(samples))
    skew = label_skew(histograms, client_indices)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for client, rows in enumerate(client_indices):
            names = [samples[row].name for row in rows]
            write_json(
                tmp / client_file(client),
                {"client": client, "n_images": len(names), "samples": names},
            )
        write_text(
            tmp / "summary.csv",
            _summary_csv(histograms, client_indices, class_names, skew["js_per_client"]),
        )
        write_json(
            tmp / "partition.json",
            {
                "method": method,
                "params": dict(params),
                "seed": seed,
                "n_clients": len(client_indices),
                "n_images": len(samples),
                "client_sizes": [len(rows) for rows in client_indices],
                "label_skew": skew,
                "feature_skew": None if feature_skew is None else dict(feature_skew),
                "notes": _skew_notes(skew, feature_skew, method),
                "meta": dict(meta),
            },
        )


def _skew_notes(
    skew: Mapping[str, Any], feature_skew: Mapping[str, Any] | None, method: str
) -> list[str]:
    """Why a skew of ``partition.json`` is null, one line each (none when both are set)."""
    notes = []
    if skew["js_mean"] is None:
        notes.append("label_skew: no labelled pixel (a dataset without masks), no label skew")
    if feature_skew is None:
        notes.append(
            f"feature_skew: method '{method}' reads no features; every run's metrics.json "
            "records it (feature_skew_cosine)"
        )
    return notes


def _summary_csv(
    histograms: np.ndarray,
    client_indices: Sequence[np.ndarray],
    class_names: Sequence[str],
    js_per_client: Sequence[float | None],
) -> str:
    """CSV text: client, n_images, one pixel-count column per class, js_divergence."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["client", "n_images", *class_names, "js_divergence"])
    for client, (rows, js) in enumerate(zip(client_indices, js_per_client, strict=True)):
        counts = histograms[rows].sum(axis=0)
        writer.writerow([client, len(rows), *counts.tolist(), "" if js is None else f"{js:.6f}"])
    return buffer.getvalue()


def read_partition(out_dir: Path) -> list[list[str]]:
    """Sample names of each client, in client order, from a folder of :func:`write_partition`.

    Raises:
        FussbenchError: naming the missing or malformed file, with the fix.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FussbenchError(f"{out_dir}: no partition folder; {RERUN}")
    summary = _read_json(out_dir / "partition.json")
    n_clients = summary.get("n_clients") if isinstance(summary, dict) else None
    if not isinstance(n_clients, int) or n_clients < 1:
        raise FussbenchError(
            f"{out_dir / 'partition.json'}: no positive integer 'n_clients'; {RERUN}"
        )
    clients = [_read_client(out_dir / client_file(client), client) for client in range(n_clients)]
    names = [name for client in clients for name in client]
    if len(set(names)) != len(names):
        raise FussbenchError(f"{out_dir}: a sample is listed by two clients; {RERUN}")
    return clients


def _read_client(path: Path, client: int) -> list[str]:
    """The sample names of one ``client_XX.json`` after checking its fields."""
    payload = _read_json(path)
    if not isinstance(payload, dict):
        payload = {}
    names = payload.get("samples")
    if (
        payload.get("client") != client
        or not isinstance(names, list)
        or not all(isinstance(name, str) for name in names)
        or payload.get("n_images") != len(names)
    ):
        raise FussbenchError(
            f"{path}: malformed client manifest (expected client={client}, a list of sample "
            f"names and a matching n_images); {RERUN}"
        )
    return names


def _read_json(path: Path) -> Any:
    """Parse ``path`` as JSON, or raise FussbenchError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FussbenchError(f"{path}: missing; {RERUN}") from error
    except (OSError, ValueError) as error:
        raise FussbenchError(f"{path}: not readable JSON ({error}); {RERUN}") from error
