"""The federated round loop: local training on every client, then server aggregation.

Without an aggregator every client keeps its own model (the ``local`` lower bound); the
``centralized`` upper bound is the same loop over one client holding all the data.

A client that raises, or returns non-finite numbers, is left out of that round and the
event is recorded; the run stops only when fewer than ``min_clients`` clients finish.
State after every round is handed to ``on_round`` so a run can be resumed bit-for-bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.evaluation.predict import Evaluation
from fussbench.federation.aggregators import Aggregator, centroid_diagnostics
from fussbench.federation.auto import Candidates, FedCCAuto, exchange, scores_nbytes
from fussbench.federation.client import FederatedClient
from fussbench.federation.messages import ClientUpdate, model_nbytes
from fussbench.model.head import CENTROIDS_KEY, ModelArrays


def client_seed(seed: int, round_index: int, client: int) -> int:
    """The training seed of one client in one round, derived from the run seed."""
    return int(np.random.SeedSequence([seed, round_index, client]).generate_state(1)[0])


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
        bytes_up, bytes_down: payload each client sent to / received from the server.
        min_centroid_distance: smallest cosine distance between two global centroids
            (mean over clients without aggregation); near 0 means prototype collapse.
        failures: ``{"client": c, "reason": "..."}`` for each client left out.
        seconds: wall time of the round.
        selection: FedCC-Auto's choice (candidates, winner, weighted scores, voting
            clients); None for every other method. Its exchange is in the bytes.
        client_n_clusters: how many centroids each client trained and sent (its own
            estimate K_k in round 1 of ``model.n_clusters: auto``).
        n_clusters: the global model's number of centroids; None without aggregation.
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


@dataclass
class RunState:
    """Everything needed to continue a run after ``round`` completed rounds.

    Attributes:
        models: the global model (one entry) with aggregation, else each client's model.
        client_states: what each client keeps between rounds (FedMOON's previous model).
    """

    round: int
    models: list[ModelArrays]
    client_states: list[ModelArrays | None]
    records: list[RoundRecord]


@dataclass(frozen=True)
class RunResult:
    """The final state and the last round's evaluations (one per evaluated model)."""

    state: RunState
    evaluations: list[Evaluation]


def _is_finite(update: ClientUpdate, loss: float) -> bool:
    return math.isfinite(loss) and all(np.isfinite(a).all() for a in update.arrays.values())


@dataclass(frozen=True)
class TrainedClient:
    """One client's finished local training in a round (the in-process counterpart of the
    Flower strategy's ``ClientRound``, whose client also scores itself).

    Attributes:
        update: the message the client sends to the server.
        loss: mean training loss of the round.
        seconds: wall time of local training.
    """

    update: ClientUpdate
    loss: float
    seconds: float


def _train_clients(
    clients: Sequence[FederatedClient], models: list[ModelArrays], seed: int, round_index: int
) -> tuple[list[TrainedClient | None], list[dict[str, object]]]:
    """Train every client from its starting model; a failing client gives None."""
    results: list[TrainedClient | None] = []
    failures: list[dict[str, object]] = []
    for number, client in enumerate(clients):
        start = models[number] if len(models) == len(clients) else models[0]
        try:
            update, stats = client.fit(start, client_seed(seed, round_index, number))
        except Exception as error:  # a client's fault must not end the federation
            failures.append({"client": number, "reason": f"{type(error).__name__}: {error}"})
            results.append(None)
            continue
        if not _is_finite(update, stats.loss):
            failures.append({"client": number, "reason": "non-finite loss or weights"})
            results.append(None)
            continue
        results.append(TrainedClient(update, stats.loss, stats.seconds))
    return results, failures


def _auto_round(
    aggregator: FedCCAuto,
    clients: Sequence[FederatedClient],
    finished: list[int],
    updates: list[ClientUpdate],
    previous: ModelArrays,
    min_clients: int,
    failures: list[dict[str, object]],
) -> tuple[dict[str, object], list[int], int, ModelArrays]:
    """FedCC-Auto's exchange with the clients that finished: candidates down, scores up.

    A client whose scores are unusable is appended to ``failures``. Returns the selection
    (voters as client numbers), the score bytes up per client, the candidate bytes down and
    the chosen global model."""

    def ask(candidates: Candidates) -> list[object]:
        replies: list[object] = []
        for number in finished:
            try:
                replies.append(
                    clients[number].score(
                        candidates.head, candidates.centroids, candidates.max_images
                    )
                )
            except Exception as error:  # a client's fault must not end the federation
                replies.append(f"scoring: {type(error).__name__}: {error}")
        return replies

    choice, candidates, replies = exchange(
        aggregator, updates, previous, ask, min_clients, finished
    )
    failures += [{"client": finished[index], "reason": reason} for index, reason in choice.failures]
    selection = {**choice.selection, "voters": [finished[i] for i in choice.selection["voters"]]}
    score_up = [0] * len(clients)
    for number, reply in zip(finished, replies, strict=True):
        score_up[number] = scores_nbytes(reply)
    return selection, score_up, candidates.nbytes(), choice.model


def run_rounds(
    clients: Sequence[FederatedClient],
    initial: ModelArrays,
    rounds: int,
    seed: int,
    evaluate: Callable[[ModelArrays], Evaluation],
    evaluate_local: Callable[[int, ModelArrays], Evaluation],
    aggregator: Aggregator | None,
    min_clients: int = 1,
    on_round: Callable[[RunState], None] | None = None,
    resume: RunState | None = None,
) -> RunResult:
    """Run rounds ``resume.round + 1 .. rounds`` (all of them without ``resume``).

    Every client starts from ``initial``; after aggregation the global model overwrites
    every client's copy. ``evaluate`` scores a model on the central split and
    ``evaluate_local(c, model)`` on client c's own images.

    Raises:
        FussbenchError: when fewer than ``min_clients`` clients finish a round; the state
            of the rounds before it has already gone to ``on_round``.
    """
    federated = aggregator is not None
    if resume is None:
        models = [dict(initial)] if federated else [dict(initial) for _ in clients]
        state = RunState(0, models, [None] * len(clients), [])
    else:
        state = resume
        for client, kept in zip(clients, state.client_states, strict=True):
            client.restore(kept)
    evaluations: list[Evaluation] = []
    for round_index in range(state.round + 1, rounds + 1):
        started = time.perf_counter()
        results, failures = _train_clients(clients, state.models, seed, round_index)
        finished = [number for number, result in enumerate(results) if result is not None]
        if len(finished) < min_clients:
            reasons = "; ".join(f"client {f['client']}: {f['reason']}" for f in failures)
            raise FussbenchError(
                f"round {round_index}: only {len(finished)} of {len(clients)} clients finished "
                f"(federation.min_clients = {min_clients}): {reasons}"
            )
        local_scores = [
            evaluate_local(number, result.update.arrays) if result else None
            for number, result in enumerate(results)
        ]
        selection, score_up, score_down = None, [0] * len(clients), 0
        if federated:
            updates = [result.update for result in results if result is not None]
            if isinstance(aggregator, FedCCAuto):
                selection, score_up, score_down, global_model = _auto_round(
                    aggregator, clients, finished, updates, state.models[0], min_clients, failures
                )
            else:
                global_model = aggregator.aggregate(updates, state.models[0])
            models = [global_model]
            evaluations = [evaluate(global_model)]
            down = model_nbytes(global_model) + score_down
            bytes_down = [down if result else 0 for result in results]
        else:
            models = [
                result.update.arrays if result else previous
                for result, previous in zip(results, state.models, strict=True)
            ]
            evaluations = [evaluate(model) for model in models]
            bytes_down = [0] * len(clients)
        distances = [
            centroid_diagnostics(model[CENTROIDS_KEY])["min_offdiagonal"] for model in models
        ]
        record = RoundRecord(
            round=round_index,
            miou=float(np.mean([item.scores.miou for item in evaluations])),
            accuracy=float(np.mean([item.scores.accuracy for item in evaluations])),
            client_miou=[] if federated else [item.scores.miou for item in evaluations],
            client_accuracy=[] if federated else [item.scores.accuracy for item in evaluations],
            client_local_miou=[item.scores.miou if item else None for item in local_scores],
            client_local_accuracy=[item.scores.accuracy if item else None for item in local_scores],
            client_loss=[result.loss if result else None for result in results],
            train_seconds=[result.seconds if result else None for result in results],
            bytes_up=[
                result.update.nbytes() + extra if result and federated else 0
                for result, extra in zip(results, score_up, strict=True)
            ],
            bytes_down=bytes_down,
            min_centroid_distance=float(np.mean(distances)),
            failures=failures,
            seconds=time.perf_counter() - started,
            selection=selection,
            client_n_clusters=[
                len(result.update.centroids) if result else None for result in results
            ],
            n_clusters=len(models[0][CENTROIDS_KEY]) if federated else None,
        )
        state = RunState(
            round_index,
            models,
            [client.state() for client in clients],
            [*state.records, record],
        )
        if on_round is not None:
            on_round(state)
    if not evaluations:  # resumed after the last round: score the saved models
        evaluations = [evaluate(model) for model in state.models]
    return RunResult(state, evaluations)
