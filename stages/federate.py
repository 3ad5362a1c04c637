"""Stage ``federate``: one federation run (one aggregator, one seed) on cached features."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np

from fussbench.atomic import atomic_path, write_json, write_text
from fussbench.data.partition import read_partition
from fussbench.data.registry import get_dataset
from fussbench.evaluation.predict import Evaluation, evaluate_model
from fussbench.features.cache import FeatureSplit, cache_fingerprint, open_split
from fussbench.federation.registry import get_aggregator
from fussbench.federation.rounds import RoundRecord, run_rounds
from fussbench.model.head import ModelArrays, initial_arrays
from fussbench.model.training import ClientData
from fussbench.params import Params
from stages.features import backbone_config
from stages.paths import features_dir, partition_dir


def _client_data(params: Params, train: FeatureSplit, aggregator: str) -> list[ClientData]:
    """Each client's features and own neighbour lists (one client for ``centralized``)."""
    manifests = read_partition(partition_dir(params.dataset))
    row_sets = [train.rows(names) for names in manifests]
    if aggregator == "centralized":
        row_sets = [np.concatenate(row_sets)]
    return [
        ClientData.from_cache(train.features[rows], train.pooled[rows], params.train.knn_k)
        for rows in row_sets
    ]


def _rounds_csv(records: list[RoundRecord]) -> str:
    """One row per round: global scores, then per-client scores, losses and times."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    n_clients = len(records[0].client_loss)
    per_client = ["miou", "accuracy", "loss", "train_s"]
    writer.writerow(
        ["round", "miou", "accuracy", "seconds"]
        + [f"client{c}_{what}" for c in range(n_clients) for what in per_client]
    )
    for record in records:
        row: list[object] = [
            record.round,
            f"{record.miou:.4f}",
            f"{record.accuracy:.4f}",
            f"{record.seconds:.3f}",
        ]
        for c in range(n_clients):
            row += [
                f"{record.client_miou[c]:.4f}" if record.client_miou else "",
                f"{record.client_accuracy[c]:.4f}" if record.client_accuracy else "",
                f"{record.client_loss[c]:.5f}",
                f"{record.train_seconds[c]:.3f}",
            ]
        writer.writerow(row)
    return buffer.getvalue()


def _images_csv(names: list[str], image_miou: np.ndarray) -> str:
    lines = ["image,miou"] + [
        f"{name},{value:.4f}" for name, value in zip(names, image_miou, strict=True)
    ]
    return "\n".join(lines) + "\n"


def _model_entries(
    clients: list[ClientData], final: list[Evaluation], class_names: tuple[str, ...]
) -> list[dict[str, object]]:
    """Scores of each evaluated model: one per client without aggregation, else the global."""
    if len(final) == len(clients):
        owners = [(f"client{n}", data.n_samples) for n, data in enumerate(clients)]
    else:
        owners = [("global", sum(data.n_samples for data in clients))]
    return [
        {"model": owner, "n_images": n_images, **item.scores.as_dict(class_names)}
        for (owner, n_images), item in zip(owners, final, strict=True)
    ]


def _save_models(path: Path, models: list[ModelArrays]) -> None:
    arrays = {
        f"client{c}/{key}": value for c, model in enumerate(models) for key, value in model.items()
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def run(params: Params, out_dir: Path) -> dict[str, object]:
    """Train, evaluate and write ``metrics.json``, ``rounds.csv``, ``images.csv``,
    ``model.npz`` into ``out_dir``. Returns the metrics."""
    started = time.perf_counter()
    spec = get_dataset(params.dataset)
    aggregate = get_aggregator(params.aggregator)
    config = backbone_config(params)
    cache_dir = features_dir(spec.name, params.backbone)
    train = open_split(
        cache_dir / spec.train_split, cache_fingerprint(spec, spec.train_split, config)
    )
    eval_name = params.evaluation.split or spec.eval_split
    evaluation_split = open_split(cache_dir / eval_name, cache_fingerprint(spec, eval_name, config))
    clients = _client_data(params, train, params.aggregator)
    n_clusters = params.model.n_clusters or spec.n_classes
    initial = initial_arrays(train.features.shape[1], params.model.dim, n_clusters, params.seed)

    def evaluate(arrays: ModelArrays) -> Evaluation:
        return evaluate_model(
            arrays, evaluation_split.features, evaluation_split.labels, spec.n_classes
        )

    def report_round(record: RoundRecord, models: list[ModelArrays]) -> None:
        print(
            f"round {record.round}: mIoU {record.miou:.2f}  acc {record.accuracy:.2f}  "
            f"({record.seconds:.1f} s)",
            flush=True,
        )

    models, records, final = run_rounds(
        clients,
        initial,
        params.federation.rounds,
        params.train_config(),
        params.seed,
        evaluate,
        aggregate,
        report_round,
    )
    image_miou = np.mean([item.image_miou for item in final], axis=0)
    metrics = {
        "dataset": spec.name,
        "aggregator": params.aggregator,
        "partition": params.partition.method,
        "backbone": params.backbone,
        "pretrained": params.features.pretrained,
        "seed": params.seed,
        "rounds": params.federation.rounds,
        "local_steps": params.train.local_steps,
        "n_clients": len(clients),
        "n_clusters": n_clusters,
        "eval_split": eval_name,
        "miou": round(float(np.mean([item.scores.miou for item in final])), 4),
        "accuracy": round(float(np.mean([item.scores.accuracy for item in final])), 4),
        "models": _model_entries(clients, final, spec.class_names),
        "seconds": round(time.perf_counter() - started, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "rounds.csv", _rounds_csv(records))
    write_text(out_dir / "images.csv", _images_csv(evaluation_split.names, image_miou))
    _save_models(out_dir / "model.npz", models if aggregate is None else models[:1])
    write_json(out_dir / "metrics.json", metrics)
    return metrics
