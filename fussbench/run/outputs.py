"""The files a run writes besides ``metrics.json``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fussbench.atomic import atomic_path
from fussbench.evaluation.predict import Evaluation
from fussbench.federation.record import RoundRecord
from fussbench.federation.robust import STANDS_OUT
from fussbench.model.head import CENTROIDS_KEY, ModelArrays
from fussbench.params import PrivacyParams
from fussbench.privacy.accounting import epsilon


def _fmt(value: float | int | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def rounds_csv(records: list[RoundRecord]) -> str:
    """One row per round: global scores, then every client's scores, loss, time, bytes;
    for FedCC-Auto, then the winning candidate and each candidate's weighted score; the
    cluster counts; where the server scored them, the clients' suspicion ratios; and under
    a privacy mechanism, how many clients were sampled and the ε spent so far."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    n_clients = len(records[0].client_loss)
    per_client = [
        "miou",
        "accuracy",
        "local_miou",
        "local_accuracy",
        "loss",
        "train_s",
        "bytes_up",
        "bytes_down",
    ]
    selected = records[0].selection
    candidates = list(selected["candidates"]) if selected else []
    suspicion = any(value is not None for r in records for value in r.client_suspicion)
    private = any(record.epsilon is not None for record in records)
    writer.writerow(
        ["round", "miou", "accuracy", "min_centroid_distance", "failed_clients", "seconds"]
        + [f"client{c}_{what}" for c in range(n_clients) for what in per_client]
        + (["auto_winner"] + [f"auto_score_{name}" for name in candidates] if selected else [])
        + ["n_clusters_global"]
        + [f"client{c}_n_clusters" for c in range(n_clients)]
        + ([f"client{c}_suspicion" for c in range(n_clients)] if suspicion else [])
        + (["sampled_clients", "epsilon"] if private else [])
    )
    for record in records:
        row = [
            record.round,
            _fmt(record.miou),
            _fmt(record.accuracy),
            _fmt(record.min_centroid_distance),
            len(record.failures),
            _fmt(record.seconds, 3),
        ]
        for c in range(n_clients):
            row += [
                _fmt(record.client_miou[c]) if record.client_miou else "",
                _fmt(record.client_accuracy[c]) if record.client_accuracy else "",
                _fmt(record.client_local_miou[c]),
                _fmt(record.client_local_accuracy[c]),
                _fmt(record.client_loss[c], 5),
                _fmt(record.train_seconds[c], 3),
                record.bytes_up[c],
                record.bytes_down[c],
            ]
        if record.selection:
            row += [record.selection["winner"]] + [_fmt(s, 6) for s in record.selection["scores"]]
        row.append("" if record.n_clusters is None else record.n_clusters)
        row += [_count(record.client_n_clusters, c) for c in range(n_clients)]
        if suspicion:
            values = record.client_suspicion or [None] * n_clients  # resumed older records
            row += [_fmt(value, 4) for value in values]
        if private:
            row += [len(record.sampled or []), _fmt(record.epsilon)]
        writer.writerow(row)
    return buffer.getvalue()


def _count(counts: list[int | None], client: int) -> int | str:
    """Client ``client``'s entry of ``counts``; "" when failed or not recorded."""
    value = counts[client] if counts else None
    return "" if value is None else value


def cluster_count_metrics(
    records: list[RoundRecord], models: list[ModelArrays], final: list[Evaluation]
) -> dict[str, object]:
    """The ``metrics.json`` fields on the number of clusters, for any K.

    ``n_clusters_clients``: what each client trained in round 1 (its own estimate under
    ``model.n_clusters: auto``); ``n_clusters_global``: the global K after each round (None
    without aggregation); ``n_clusters_final``: the K of each evaluated model; the final
    scores under both matchings (mean over the evaluated models): Hungarian, where the
    clusters left unmatched count as errors, and majority.
    """
    return {
        "n_clusters_clients": records[0].client_n_clusters if records else [],
        "n_clusters_global": [record.n_clusters for record in records],
        "n_clusters_final": [len(model[CENTROIDS_KEY]) for model in models],
        **matching_scores(final),
    }


def matching_scores(final: list[Evaluation]) -> dict[str, float | None]:
    """``miou_hungarian``, ``accuracy_hungarian``, ``miou_majority``, ``accuracy_majority``:
    the mean over ``final`` of each evaluation rescored under that matching (None without
    labels)."""
    scores = {}
    for matching in ("hungarian", "majority"):
        rescored = [item.rescored(matching) for item in final]
        for what in ("miou", "accuracy"):
            value = float(np.mean([getattr(item, what) for item in rescored]))
            scores[f"{what}_{matching}"] = round(value, 4) if np.isfinite(value) else None
    return scores


def images_csv(names: list[str], image_miou: np.ndarray) -> str:
    """``image,miou``: per-image mIoU (N,) under the split-wide matching."""
    rows = [f"{name},{value:.4f}" for name, value in zip(names, image_miou, strict=True)]
    return "\n".join(["image,miou", *rows]) + "\n"


def save_models(path: Path, models: list[ModelArrays]) -> None:
    """The final models as one .npz, keys ``model<n>/<parameter>``, written atomically."""
    arrays = {
        f"model{n}/{key}": value for n, model in enumerate(models) for key, value in model.items()
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def detection_metrics(records: list[RoundRecord]) -> dict[str, object]:
    """The client that stood out most over the run, from the server's suspicion ratios.

    Returns:
        ``{"suspect_client": k, "suspect_ratio": r, "stood_out": r > STANDS_OUT}`` with k
        the client of the largest mean ratio over the rounds that scored it; ``{}`` when no
        round scored the clients (no aggregation, or fewer than 3 clients).
    """
    rows = [r.client_suspicion for r in records if any(v is not None for v in r.client_suspicion)]
    if not rows:
        return {}
    table = np.array([[np.nan if v is None else v for v in row] for row in rows])
    scored = ~np.isnan(table)  # a client sampled in no scored round has no mean
    means = np.where(
        scored.any(axis=0), np.nansum(table, axis=0) / np.maximum(scored.sum(axis=0), 1), np.nan
    )
    suspect = int(np.nanargmax(means))
    ratio = float(means[suspect])
    return {
        "suspect_client": suspect,
        "suspect_ratio": round(ratio, 4),
        "stood_out": ratio > STANDS_OUT,
    }


def privacy_metrics(privacy: PrivacyParams, rounds: int) -> dict[str, object]:
    """The ``metrics.json`` fields of a run under a privacy mechanism: ``privacy`` (the
    mechanism), ``epsilon`` (spent after ``rounds`` rounds, from the accountant) at
    ``delta``, and the settings behind them; nothing without a mechanism."""
    if not privacy.on:
        return {}
    return {
        "privacy": privacy.mechanism,
        "epsilon": round(epsilon(privacy, rounds), 4),
        "delta": privacy.delta,
        "noise_multiplier": privacy.noise_multiplier,
        "clip_head": privacy.clip_head,
        "clip_centroids": privacy.clip_centroids,
        "sample_rate": privacy.sample_rate,
    }
