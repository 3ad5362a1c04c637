"""The federated round loop: local training on every client, then aggregation.

Without an aggregation function every client keeps its own model (the ``local`` lower
bound); the ``centralized`` upper bound is the same loop over one client holding the union
of all data.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fussbench.evaluation.predict import Evaluation
from fussbench.model.head import ModelArrays
from fussbench.model.training import ClientData, TrainConfig, train_arrays

Aggregate = Callable[[Sequence[ModelArrays], Sequence[int]], ModelArrays]
"""Server aggregation: client models and their sample counts → the global model."""


def client_seed(seed: int, round_index: int, client: int) -> int:
    """The training seed of one client in one round, derived from the run seed."""
    return int(np.random.SeedSequence([seed, round_index, client]).generate_state(1)[0])


@dataclass(frozen=True)
class RoundRecord:
    """What one round produced.

    Attributes:
        round: 1-based round number.
        miou, accuracy: of the global model on the central split; without aggregation,
            the mean over the clients' own models.
        client_miou, client_accuracy: each client's model on the central split (after
            aggregation all clients hold the global model, so these are only recorded
            without aggregation).
        client_loss: each client's mean training loss this round.
        seconds: wall time of the round, training and evaluation.
    """

    round: int
    miou: float
    accuracy: float
    client_miou: list[float] = field(default_factory=list)
    client_accuracy: list[float] = field(default_factory=list)
    client_loss: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


def run_rounds(
    clients: Sequence[ClientData],
    initial: ModelArrays,
    rounds: int,
    config: TrainConfig,
    seed: int,
    evaluate: Callable[[ModelArrays], Evaluation],
    aggregate: Aggregate | None,
    on_round: Callable[[RoundRecord, list[ModelArrays]], None] | None = None,
) -> tuple[list[ModelArrays], list[RoundRecord], list[Evaluation]]:
    """Run ``rounds`` rounds of local training (+ aggregation when given).

    Every client starts from ``initial``. After aggregation the global model overwrites
    every client's copy.

    Returns:
        The final model of every client (all equal to the global model when aggregating),
        one record per round, and the last round's evaluations (one per client model
        without aggregation, else one of the global model). ``on_round`` sees each record
        and the models as they are completed.
    """
    models = [dict(initial) for _ in clients]
    records: list[RoundRecord] = []
    evaluations: list[Evaluation] = []
    for round_index in range(1, rounds + 1):
        started = time.perf_counter()
        results = [
            train_arrays(models[number], data, config, client_seed(seed, round_index, number))
            for number, data in enumerate(clients)
        ]
        models = [arrays for arrays, _ in results]
        losses = [stats.loss for _, stats in results]
        seconds = [stats.seconds for _, stats in results]
        if aggregate is None:
            evaluations = [evaluate(arrays) for arrays in models]
            client_miou = [item.scores.miou for item in evaluations]
            client_accuracy = [item.scores.accuracy for item in evaluations]
            record = RoundRecord(
                round=round_index,
                miou=float(np.mean(client_miou)),
                accuracy=float(np.mean(client_accuracy)),
                client_miou=client_miou,
                client_accuracy=client_accuracy,
                client_loss=losses,
                train_seconds=seconds,
            )
        else:
            global_model = aggregate(models, [data.n_samples for data in clients])
            models = [dict(global_model) for _ in clients]
            evaluations = [evaluate(global_model)]
            scores = evaluations[0].scores
            record = RoundRecord(
                round=round_index,
                miou=scores.miou,
                accuracy=scores.accuracy,
                client_loss=losses,
                train_seconds=seconds,
            )
        record = dataclasses.replace(record, seconds=time.perf_counter() - started)
        records.append(record)
        if on_round is not None:
            on_round(record, models)
    return models, records, evaluations
