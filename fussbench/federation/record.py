"""What a round produced, as both engines record it: :class:`RoundRecord` and the one
function that builds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fussbench.evaluation.predict import Evaluation
from fussbench.federation.aggregators import centroid_diagnostics
from fussbench.federation.exchange import ServedRound
from fussbench.federation.messages import model_nbytes
from fussbench.federation.outcome import ClientOutcome, training_failures
from fussbench.federation.robust import suspicion_ratios
from fussbench.model.head import CENTROIDS_KEY, ModelArrays


@dataclass(frozen=True)
class RoundRecord:
    """What one round produced. Per-client lists hold None for a client that failed.

    Attributes:
        round: 1-based round number.
        miou, accuracy: the global model on the central split; without aggregation, the
            mean over the clients' own models.
        client_miou, client_accuracy: each client's model on the central split (recorded
            without aggregation only; with it every client holds the global model).
        client_local_miou, client_local_accuracy: each client's trained model on the
            client's own training images (labels used for evaluation only).
        client_loss, train_seconds: each client's mean training loss and training time.
        bytes_up, bytes_down: payload each client sent to / received from the server; under
            secure aggregation, the bytes of every message of the protocol
            (:attr:`~fussbench.federation.exchange.ServedRound.secure`).
        min_centroid_distance: smallest cosine distance between two global centroids
            (mean over clients without aggregation); near 0 means prototype collapse.
        failures: ``{"client": c, "reason": "..."}`` for each client left out.
        seconds: wall time of the round.
        selection: FedCC-Auto's choice (candidates, winner, weighted scores, voting
            clients); None for every other method. Its exchange is in the bytes.
        client_n_clusters: how many centroids each client trained and sent (its own
            estimate K_k in round 1 of ``model.n_clusters: auto``).
        n_clusters: the global model's number of centroids; None without aggregation.
        client_suspicion: how far each client's update stood out of the others' (the
            server's view, :func:`~fussbench.federation.robust.suspicion_ratios`); None
            for a client that failed, and for every client without aggregation, with
            fewer than 3 finishing clients or under secure aggregation (the server sees
            no client's update).
        sampled: the clients sampled this round under a privacy mechanism (stamped by
            :func:`fussbench.privacy.mechanism.stamp`); None without privacy.
        epsilon: the privacy spent after this round at ``privacy.delta``; None without
            privacy.
    """

    round: int
    miou: float
    accuracy: float
    client_miou: list[float | None] = field(default_factory=list)
    client_accuracy: list[float | None] = field(default_factory=list)
    client_local_miou: list[float | None] = field(default_factory=list)
    client_local_accuracy: list[float | None] = field(default_factory=list)
    client_loss: list[float | None] = field(default_factory=list)
    train_seconds: list[float | None] = field(default_factory=list)
    bytes_up: list[int] = field(default_factory=list)
    bytes_down: list[int] = field(default_factory=list)
    min_centroid_distance: float = float("nan")
    failures: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0
    selection: dict[str, object] | None = None
    client_n_clusters: list[int | None] = field(default_factory=list)
    n_clusters: int | None = None
    client_suspicion: list[float | None] = field(default_factory=list)
    sampled: list[int] | None = None
    epsilon: float | None = None


def round_record(
    round_index: int,
    outcomes: Sequence[ClientOutcome],
    models: Sequence[ModelArrays],
    evaluations: Sequence[Evaluation],
    seconds: float,
    served: ServedRound | None,
) -> RoundRecord:
    """The record of round ``round_index``.

    Args:
        outcomes: every client's part in the round (K entries).
        models: the global model (one entry) when ``served``, else each client's model.
        evaluations: each of ``models`` on the central split.
        seconds: wall time of the round.
        served: the server's half of the round; None without aggregation (``local``,
            ``centralized``), where nothing crosses the network.

    A finished client k sent ``update.nbytes()`` plus its answers' bytes and received the
    global model plus the queries' bytes; a left-out client sent and received nothing
    counted. Under secure aggregation (``served.secure``) every client's bytes are those
    of the protocol's messages it sent and received, a client that dropped midway
    included, and a finished client's number of centroids is the global model's (the
    shape of the vectors SecAgg+ sums). miou = mean over ``evaluations``;
    min_centroid_distance = mean over ``models`` of the smallest off-diagonal 1 - cos
    between their centroids.
    """
    federated = served is not None
    secure = served is not None and served.secure
    done = [outcome if outcome.finished else None for outcome in outcomes]
    if served is not None and served.secure:
        bytes_up, bytes_down = served.bytes_up, served.bytes_down
        sent_clusters = [len(models[0][CENTROIDS_KEY]) if item else None for item in done]
    else:
        extra_up = served.bytes_up if federated else [0] * len(outcomes)
        extra_down = served.bytes_down if federated else [0] * len(outcomes)
        down = model_nbytes(models[0])
        bytes_up = [
            item.update.nbytes() + extra if item and federated else 0
            for item, extra in zip(done, extra_up, strict=True)
        ]
        bytes_down = [
            down + extra if item and federated else 0
            for item, extra in zip(done, extra_down, strict=True)
        ]
        sent_clusters = [len(item.update.centroids) if item else None for item in done]
    distances = [centroid_diagnostics(model[CENTROIDS_KEY])["min_offdiagonal"] for model in models]
    return RoundRecord(
        round=round_index,
        miou=float(np.mean([item.scores.miou for item in evaluations])),
        accuracy=float(np.mean([item.scores.accuracy for item in evaluations])),
        client_miou=[] if federated else [item.scores.miou for item in evaluations],
        client_accuracy=[] if federated else [item.scores.accuracy for item in evaluations],
        client_local_miou=[item.report.local_miou if item else None for item in done],
        client_local_accuracy=[item.report.local_accuracy if item else None for item in done],
        client_loss=[item.report.loss if item else None for item in done],
        train_seconds=[item.report.train_seconds if item else None for item in done],
        bytes_up=bytes_up,
        bytes_down=bytes_down,
        min_centroid_distance=float(np.mean(distances)),
        failures=[*training_failures(outcomes), *(served.step.failures if federated else [])],
        seconds=seconds,
        selection=served.step.selection if federated else None,
        client_n_clusters=sent_clusters,
        n_clusters=len(models[0][CENTROIDS_KEY]) if federated else None,
        client_suspicion=_suspicion(done) if federated and not secure else [None] * len(done),
    )


def _suspicion(done: Sequence[ClientOutcome | None]) -> list[float | None]:
    """Each finished client's suspicion ratio (None for the others, and for everyone when
    fewer than 3 finished)."""
    finished = [index for index, item in enumerate(done) if item is not None]
    if len(finished) < 3:
        return [None] * len(done)
    ratios = suspicion_ratios([done[index].update for index in finished])
    values: list[float | None] = [None] * len(done)
    for index, ratio in zip(finished, ratios, strict=True):
        values[index] = float(ratio)
    return values
