"""A federation run (one method, one seed) on cached features: the federate stage's work."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from fussbench.atomic import write_json, write_text
from fussbench.data.partition import read_partition
from fussbench.data.samples import DatasetSpec
from fussbench.engines import check_engine, flower_engine
from fussbench.errors import FussbenchError
from fussbench.evaluation.collapse import collapse_with_labels, collapse_without_labels
from fussbench.evaluation.crf import evaluate_with_crf, evaluation_images
from fussbench.evaluation.predict import Evaluation, evaluate_model
from fussbench.evaluation.subsets import evenly_spaced
from fussbench.evaluation.unlabelled import has_labels
from fussbench.features.cache import FeatureSplit, cache_fingerprint, open_split
from fussbench.features.flipped import open_flipped
from fussbench.features.noise import with_noise_images
from fussbench.features.rows import FileRows, RowView
from fussbench.features.skew import feature_skew
from fussbench.federation.aggregators import centroid_diagnostics
from fussbench.federation.build import build_method
from fussbench.federation.checkpoint import load_checkpoint, save_checkpoint
from fussbench.federation.client import FederatedClient
from fussbench.federation.cluster_count import check_clients
from fussbench.federation.faults import Fault, resolve_clients
from fussbench.federation.messages import model_nbytes
from fussbench.federation.record import RoundRecord
from fussbench.federation.rounds import run_rounds
from fussbench.federation.run import FederationRun, RunResult, RunState
from fussbench.methods import Method, get_spec
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, initial_arrays
from fussbench.model.training import ClientData
from fussbench.params import Params
from fussbench.paths import features_dir, partition_dir, raw_dir
from fussbench.privacy.accounting import calibrated
from fussbench.run import reference
from fussbench.run.outputs import (
    cluster_count_metrics,
    detection_metrics,
    images_csv,
    privacy_metrics,
    rounds_csv,
    save_models,
)
from fussbench.run.reuse import copy_finished, find_finished, forget, mark_finished, run_key
from fussbench.run.unlabelled import write_unlabelled

if TYPE_CHECKING:
    from fussbench.engines.flower.launcher import Connection

CHECKPOINT = "checkpoint.npz"


def _partition_rows(params: Params, train: FeatureSplit) -> list[np.ndarray]:
    """Training-cache rows of each client of the setup's partition."""
    return [train.rows(names) for names in read_partition(partition_dir(params.setup))]


def _client_rows(params: Params, partition: list[np.ndarray]) -> list[np.ndarray]:
    """Training-cache rows of each trained client (one holding all for a method whose
    registry entry ``pools_clients``, i.e. ``centralized``)."""
    pooled = get_spec(params.aggregator).pools_clients
    return [np.concatenate(partition)] if pooled else partition


def at_equal_compute(params: Params, n_clients: int) -> Params:
    """``params`` with the rounds and local steps a run trains, so that every method spends
    the compute of the iterative federated ones: R = ``federation.rounds`` rounds of
    S = ``train.local_steps`` steps per client. Both engines take the rounds and the local
    steps from the result; the registry entry's ``pools_clients`` and ``one_shot`` decide,
    and this is the one place a run's budget reads them:

    - a method that ``pools_clients`` (``centralized``) trains one model on the union of
      the ``n_clients`` clients' data for n_clients × S steps per round, the whole
      federation's, so that the upper bound gets as many gradient steps as the methods it
      bounds;
    - a ``one_shot`` method (``fedcc_oneshot``) runs 1 round of R × S steps per client:
      every client trains alone for the whole budget and the server merges once. Its
      ``rounds.csv`` holds that one round (round 1), and ``metrics.json`` keeps R and S
      as ``rounds`` and ``local_steps`` (the budget) with ``steps_per_round`` R × S;
    - every other method keeps R rounds of S steps per client.
    """
    spec = get_spec(params.aggregator)
    rounds, steps = params.federation.rounds, params.train.local_steps
    if spec.pools_clients:
        steps *= n_clients
    if spec.one_shot:
        rounds, steps = 1, rounds * steps
    return dataclasses.replace(
        params,
        federation=dataclasses.replace(params.federation, rounds=rounds),
        train=dataclasses.replace(params.train, local_steps=steps),
    )


def _open_cache(spec: DatasetSpec, params: Params, split: str) -> FeatureSplit:
    """A split's cached features, or under ``features.store: online`` the same split with
    its features computed from the images when read."""
    if split not in spec.split_counts:
        raise FussbenchError(
            f"evaluation.split '{split}' is not a split of {spec.name}; "
            f"valid: {', '.join(spec.split_counts)}"
        )
    if params.features.store == "online":
        from fussbench.features.online import open_online  # imports timm: only here

        source, settings = raw_dir(spec.name), params.features
        return open_online(
            spec,
            source,
            spec.samples(source, split),
            split,
            params.backbone_config(),
            settings.device,
            settings.precision,
            settings.batch_size,
            with_pooled=split == spec.train_split,
        )
    directory = features_dir(spec.name, params.backbone) / split
    split_cache = open_split(directory, cache_fingerprint(spec, split, params.backbone_config()))
    # read with file reads, not through the memory maps (see FileRows): same values
    return dataclasses.replace(
        split_cache, features=FileRows(split_cache.features), labels=FileRows(split_cache.labels)
    )


def _open_flipped(params: Params, evaluation: FeatureSplit) -> FileRows | None:
    """The flipped features of the evaluation split under ``evaluation.flip: true`` for a
    trained method (read with file reads, as :func:`_open_cache` reads the features);
    None otherwise. Opened before any training, so a missing file stops the run at once.

    Raises:
        FussbenchError: under ``features.store: online`` (no cache to hold them), or when
            they are missing or stale (:func:`~fussbench.features.flipped.open_flipped`).
    """
    if not params.evaluation.flip or get_spec(params.aggregator).kind == "reference":
        return None
    if params.features.store == "online":
        raise FussbenchError(
            "evaluation.flip: true reads the flipped features from the feature cache, and "
            "features.store: online keeps none; set features.store: cache or "
            "evaluation.flip: false"
        )
    return FileRows(open_flipped(evaluation))


def _model_entries(
    models: list[ModelArrays],
    final: list[Evaluation],
    sizes: list[int],
    class_names: tuple[str, ...],
) -> list[dict[str, object]]:
    """Scores of each evaluated model: one per client without aggregation, else the global."""
    owners = [f"client{n}" for n in range(len(final))] if len(final) > 1 else ["global"]
    counts = sizes if len(final) > 1 else [sum(sizes)]
    return [
        {
            "model": owner,
            "n_images": count,
            **item.scores.as_dict(class_names),
            "centroids": centroid_diagnostics(model[CENTROIDS_KEY]),
        }
        for owner, count, item, model in zip(owners, counts, final, models, strict=True)
    ]


def _communication(records: list[RoundRecord], backbone_nbytes: int) -> dict[str, object]:
    """Mean payload per client per round, and its ratio to shipping the backbone once."""
    up = [b for record in records for b in record.bytes_up if b]
    down = [b for record in records for b in record.bytes_down if b]
    per_round = (float(np.mean(up)) if up else 0.0) + (float(np.mean(down)) if down else 0.0)
    return {
        "bytes_up_per_client_round": round(float(np.mean(up)), 1) if up else 0,
        "bytes_down_per_client_round": round(float(np.mean(down)), 1) if down else 0,
        "backbone_bytes": backbone_nbytes,
        "backbone_to_round_ratio": round(backbone_nbytes / per_round, 2) if per_round else None,
    }


def _selections(records: list[RoundRecord]) -> dict[str, object]:
    """FedCC-Auto's choice of every round (``auto_selection``); nothing for other methods."""
    if not any(record.selection for record in records):
        return {}
    return {
        "auto_selection": [
            {
                "round": record.round,
                "winner": record.selection["winner"],
                "scores": dict(
                    zip(record.selection["candidates"], record.selection["scores"], strict=True)
                ),
                "voters": record.selection["voters"],
            }
            for record in records
            if record.selection
        ]
    }


def _fault(params: Params, partition: list[np.ndarray]) -> Fault:
    """The run's fault scenario (``faults:``), its clients resolved against the partition
    (``largest`` / ``smallest`` by training images); an honest run's is inactive."""
    faults = params.faults
    if faults.scenario == "none":
        return Fault()
    sizes = [len(rows) for rows in partition]
    clients = resolve_clients(faults.clients, sizes)
    return Fault(faults.scenario, clients, faults.from_round, faults.strength)


def _fault_fields(fault: Fault) -> dict[str, object]:
    """``fault`` (its description) and ``fault_clients`` (space-separated) of a run with a
    fault scenario on; nothing for an honest run."""
    if not fault.active:
        return {}
    return {"fault": fault.describe(), "fault_clients": " ".join(map(str, fault.clients))}


def _label_skew(setup: str) -> float | None:
    summary = json.loads((partition_dir(setup) / "partition.json").read_text())
    return summary["label_skew"]["js_mean"]


def _describe_run(
    params: Params,
    spec: DatasetSpec,
    method: Method,
    n_clients: int,
    eval_name: str,
    skew: dict[str, object],
) -> dict[str, object]:
    """The identifying fields every ``metrics.json`` starts with (``skew``: the
    partition's :func:`~fussbench.features.skew.feature_skew`)."""
    return {
        "setup": params.setup,
        "dataset": spec.name,
        "partition": params.partition.method,
        "label_skew_js": _label_skew(params.setup),
        "feature_skew_cosine": skew["cosine_mean"],
        "method": method.name,
        "aggregator": params.aggregator,
        "mode": params.federation.mode,
        "weighting": params.federation.weighting,
        "backbone": params.backbone,
        "pretrained": params.features.pretrained,
        "seed": params.seed,
        "rounds": params.federation.rounds,
        "local_steps": params.train.local_steps,
        "steps_per_round": at_equal_compute(params, skew["n_clients"]).train.local_steps,
        "n_clients": n_clients,
        "n_clusters": params.model.n_clusters or spec.n_classes,
        "eval_split": eval_name,
        "matching": params.evaluation.matching,
        "crf": params.evaluation.crf and get_spec(params.aggregator).kind != "reference",
        "flip": params.evaluation.flip and get_spec(params.aggregator).kind != "reference",
    }


@dataclass(frozen=True)
class RunInputs:
    """What a run reads before training: the dataset, its caches and the clients' rows.

    Attributes:
        spec: the dataset.
        train: the training split's features (noise features in the rows of a client
            under ``noise_images``).
        evaluation: the split the global model is scored on, named ``eval_name``.
        flipped: the features of ``evaluation``'s mirrored images, under
            ``evaluation.flip: true`` for a trained method; else None.
        labelled: whether ``evaluation`` has labels.
        partition: each partition client's rows of ``train``.
        client_rows: each trained client's rows (one holding all for ``centralized``).
        common: the identifying fields every ``metrics.json`` starts with.
    """

    spec: DatasetSpec
    train: FeatureSplit
    evaluation: FeatureSplit
    flipped: FileRows | None
    eval_name: str
    labelled: bool
    partition: list[np.ndarray]
    client_rows: list[np.ndarray]
    common: dict[str, object]


def _inputs(params: Params, method: Method, k_range: tuple[int, int] | None) -> RunInputs:
    """Open the caches and the partition of the run, and check that every client can
    estimate a K in ``k_range`` (auto K) from its pixels."""
    spec = params.dataset_spec()
    train = _open_cache(spec, params, spec.train_split)
    eval_name = params.evaluation.split or spec.eval_split
    evaluation = _open_cache(spec, params, eval_name)
    flipped = _open_flipped(params, evaluation)
    partition = _partition_rows(params, train)
    client_rows = _client_rows(params, partition)
    if k_range is not None:
        image_pixels = int(np.prod(train.features.shape[2:]))
        check_clients(k_range, [len(rows) for rows in client_rows], image_pixels)
    skew = feature_skew(train.pooled, partition)
    common = _describe_run(params, spec, method, len(client_rows), eval_name, skew)
    labelled = has_labels(evaluation.labels)
    return RunInputs(
        spec, train, evaluation, flipped, eval_name, labelled, partition, client_rows, common
    )


def run_federation(
    params: Params,
    out_dir: Path,
    superlink: Connection | None = None,
    reuse_from: Path | None = None,
) -> dict[str, object]:
    """Train, evaluate every round, and write ``metrics.json``, ``rounds.csv``,
    ``images.csv``, ``model.npz`` into ``out_dir``. A ``checkpoint.npz`` from an
    interrupted run of the same key (params, code, inputs and platform) is resumed.
    Reference methods (``kmeans``, ``kmeans_local``, ``majority``) are scored without
    training. Returns the metrics.

    The rounds run where ``params.engine`` says: in this process, or on Flower (a local
    SuperLink and SuperNodes, or the running SuperLink of ``superlink``).

    A finished run's folder ends with its key (:mod:`fussbench.run.reuse`). With
    ``reuse_from`` (a folder of runs, e.g. ``runs``), a finished run under it with this
    run's key is copied into ``out_dir`` instead of trained again. A run on a
    ``superlink``'s data is neither marked finished nor reused, since its inputs are on
    other machines; its checkpoints carry its key without them."""
    if superlink is not None:
        return _train_or_score(params, out_dir, superlink, run_key(params, local_inputs=False))
    key = run_key(params)
    source = find_finished(reuse_from, key, out_dir) if reuse_from is not None else None
    if source is not None:
        print(
            f"{out_dir}: copied from {source} (same params, code, inputs and platform)", flush=True
        )
        return copy_finished(source, out_dir)
    forget(out_dir)
    metrics = _train_or_score(params, out_dir, superlink, key)
    mark_finished(out_dir, key)
    return metrics


def _train_or_score(
    params: Params, out_dir: Path, superlink: Connection | None, key: str
) -> dict[str, object]:
    """The work of :func:`run_federation`: train (or score a reference row) and write
    the run's files. ``key``: the run's key (:func:`~fussbench.run.reuse.run_key`),
    stamped on its checkpoints, so only a checkpoint of the same key is resumed."""
    check_engine(params.engine)
    if params.features.store == "online" and params.engine != "inprocess":
        raise FussbenchError(
            f"features.store: online runs the backbone in this process; engine "
            f"'{params.engine}' reads per-site feature caches: use features.store: cache"
        )
    started = time.perf_counter()
    torch.set_num_threads(params.runtime.threads)
    threadpool_limits(params.runtime.threads)  # scikit-learn's OpenMP / BLAS pools too
    federation = params.federation
    k_range = tuple(params.model.k_range) if params.model.auto else None
    aggregator, objective = build_method(params.aggregator, federation, params.seed, k_range)
    method = Method(params.aggregator, federation.mode, federation.weighting)
    inputs = _inputs(params, method, k_range)
    if get_spec(params.aggregator).kind == "reference":
        if not inputs.labelled:
            raise FussbenchError(
                f"the reference row '{params.aggregator}' needs labels to score, and the "
                f"{inputs.eval_name} split of {inputs.spec.name} has none (no masks); leave "
                "it out of `compare`"
            )
        return reference.run(
            params, out_dir, inputs.train, inputs.evaluation, inputs.client_rows, inputs.common
        )
    fault = _fault(params, inputs.partition)
    if fault.active and not fault.corrupts_updates:  # noise_images: the clients' data
        bad_rows = np.concatenate([inputs.partition[client] for client in fault.clients])
        noisy = with_noise_images(inputs.train, bad_rows, params.backbone_config(), params.seed)
        inputs = dataclasses.replace(inputs, train=noisy)
    # auto: no centroids yet; each client adds its own K_k in round 1
    initial_clusters = 0 if params.model.auto else int(inputs.common["n_clusters"])
    initial = initial_arrays(
        inputs.train.features.shape[1], params.model.dim, initial_clusters, params.seed
    )
    params = at_equal_compute(params, len(inputs.partition))
    params = dataclasses.replace(  # sigma for privacy.target_epsilon over the rounds it runs
        params, privacy=calibrated(params.privacy, params.federation.rounds)
    )
    resume = load_checkpoint(out_dir / CHECKPOINT, key)
    if resume is not None:
        print(f"resuming {out_dir} after round {resume.round}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = FederationRun(
        aggregator=aggregator,
        objective=objective,
        initial=initial,
        rounds=params.federation.rounds,
        seed=params.seed,
        evaluate=partial(_evaluate, inputs, params.evaluation.matching),
        min_clients=federation.min_clients,
        on_round=partial(_after_round, out_dir, key, inputs.labelled),
        resume=resume,
        fault=fault,
        privacy=params.privacy,
    )
    result = _run_engine(params, inputs, run, k_range, key, out_dir, superlink)
    final = _final_evaluations(params, inputs, result)
    # a resumed run also counts the rounds it inherited (their wall time is in the records)
    inherited = sum(record.seconds for record in resume.records) if resume is not None else 0.0
    metrics = {
        **_metrics(inputs, result.state, final, initial, fault),
        **privacy_metrics(params.privacy, params.federation.rounds),
        "seconds": round(inherited + time.perf_counter() - started, 2),
    }
    return _write_run(params, inputs, result.state, final, metrics, out_dir)


def _evaluate(inputs: RunInputs, matching: str, arrays: ModelArrays) -> Evaluation:
    """A model on the central split."""
    split = inputs.evaluation
    return evaluate_model(arrays, split.features, split.labels, inputs.spec.n_classes, matching)


def _after_round(out_dir: Path, key: str, labelled: bool, state: RunState) -> None:
    """Checkpoint the state (stamped with the run's ``key``), rewrite ``rounds.csv`` and
    print the round's line."""
    save_checkpoint(out_dir / CHECKPOINT, state, key)
    write_text(out_dir / "rounds.csv", rounds_csv(state.records))
    record = state.records[-1]
    failed = f", {len(record.failures)} client(s) failed" if record.failures else ""
    scores = f"mIoU {record.miou:.2f}  acc {record.accuracy:.2f}" if labelled else "no labels"
    print(f"round {record.round}: {scores}  ({record.seconds:.1f} s{failed})", flush=True)


def _run_engine(
    params: Params,
    inputs: RunInputs,
    run: FederationRun,
    k_range: tuple[int, int] | None,
    key: str,
    out_dir: Path,
    superlink: Connection | None,
) -> RunResult:
    """The rounds of ``run`` on the engine ``params.engine`` names (``key``: the run's key,
    stamped on the checkpoints Flower's ServerApp writes)."""
    if params.engine == "flower":
        return flower_engine()(
            run,
            params=params,
            train=inputs.train,
            client_rows=inputs.client_rows,
            evaluation=inputs.evaluation,
            fingerprint=key,
            logs_dir=out_dir / "flower_logs",
            connection=superlink,
        )
    if params.privacy.secure_aggregation:
        print(
            "privacy.secure_aggregation: in-process no update crosses a network, so it changes "
            "nothing here (engine flower runs SecAgg+)",
            flush=True,
        )
    config = params.train_config()
    train = inputs.train
    clients = [
        FederatedClient(
            ClientData.from_cache(train.features, train.pooled, config.knn_k, rows),
            config,
            run.objective,
            k_range,
        )
        for rows in inputs.client_rows
    ]
    local_rows = [
        rows[evenly_spaced(len(rows), params.evaluation.local_max_images)]
        for rows in inputs.client_rows
    ]

    def evaluate_local(client: int, arrays: ModelArrays) -> Evaluation:
        rows = local_rows[client]
        features, labels = RowView(train.features, rows), RowView(train.labels, rows)
        n_classes, matching = inputs.spec.n_classes, params.evaluation.matching
        return evaluate_model(arrays, features, labels, n_classes, matching)

    return run_rounds(run, clients, evaluate_local)


def _final_evaluations(params: Params, inputs: RunInputs, result: RunResult) -> list[Evaluation]:
    """The last round's evaluations; with ``evaluation.flip``, the final models'
    flip-averaged predictions instead, and with ``evaluation.crf`` on a labelled split,
    their predictions (flip-averaged or not) refined by the dense CRF (the rounds are
    neither)."""
    split, matching = inputs.evaluation, params.evaluation.matching
    n_classes = inputs.spec.n_classes
    if not (params.evaluation.crf and inputs.labelled):
        if inputs.flipped is None:
            return result.evaluations
        return [
            evaluate_model(model, split.features, split.labels, n_classes, matching, inputs.flipped)
            for model in result.state.models
        ]
    images = partial(
        evaluation_images,
        inputs.spec,
        params.backbone_config(),
        inputs.eval_name,
        split.names,
        split.labels.shape[1:],
    )
    return [
        evaluate_with_crf(
            model, split.features, split.labels, images(), n_classes, matching, inputs.flipped
        )
        for model in result.state.models
    ]


def _metrics(
    inputs: RunInputs,
    state: RunState,
    final: list[Evaluation],
    initial: ModelArrays,
    fault: Fault,
) -> dict[str, object]:
    """``metrics.json`` but for its collapse flags, label fields and wall time."""
    sizes = [len(rows) for rows in inputs.client_rows]
    return {
        **inputs.common,
        "miou": round(float(np.mean([item.scores.miou for item in final])), 4),
        "accuracy": round(float(np.mean([item.scores.accuracy for item in final])), 4),
        "failed_client_rounds": sum(len(record.failures) for record in state.records),
        "communication": _communication(state.records, inputs.train.backbone_nbytes),
        **_selections(state.records),
        "model_bytes": model_nbytes(initial),
        "models": _model_entries(state.models, final, sizes, inputs.spec.class_names),
        **cluster_count_metrics(state.records, state.models, final),
        **_fault_fields(fault),
        **detection_metrics(state.records),
    }


def _write_run(
    params: Params,
    inputs: RunInputs,
    state: RunState,
    final: list[Evaluation],
    metrics: dict[str, object],
    out_dir: Path,
) -> dict[str, object]:
    """Add the collapse flags (and, without labels, the predictions on each client's
    images) to ``metrics``; write ``images.csv``, ``model.npz`` and ``metrics.json``;
    return the metrics."""
    labelled = inputs.labelled
    collapse = [
        collapse_with_labels(item)
        if labelled
        else collapse_without_labels(item.cluster_pixels, params.folder.collapse_share)
        for item in final
    ]
    for entry, flag in zip(metrics["models"], collapse, strict=True):
        entry["collapse"] = flag
        if not labelled:
            entry.update(miou=None, accuracy=None)
    metrics["labels"] = labelled
    metrics["collapsed"] = any(flag["collapsed"] for flag in collapse)
    if labelled:
        image_miou = np.mean([item.image_miou for item in final], axis=0)
        write_text(out_dir / "images.csv", images_csv(inputs.evaluation.names, image_miou))
    else:  # no scores: what the model predicts on each client's own images instead
        metrics.update(miou=None, accuracy=None)
        unlabelled = write_unlabelled(
            params, inputs.spec, out_dir, state.models, inputs.train, inputs.client_rows
        )
        metrics.update(unlabelled)
    save_models(out_dir / "model.npz", state.models)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
