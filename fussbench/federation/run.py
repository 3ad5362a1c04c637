"""One federation run as both engines take it (:class:`FederationRun`), its state after
each round (:class:`RunState`) and its result (:class:`RunResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fussbench.evaluation.predict import Evaluation
from fussbench.federation.aggregators import Aggregator
from fussbench.federation.client import LocalObjective
from fussbench.federation.faults import Fault
from fussbench.federation.record import RoundRecord
from fussbench.model.head import ModelArrays
from fussbench.params import PrivacyParams


def client_seed(seed: int, round_index: int, client: int) -> int:
    """The training seed of one client in one round, derived from the run seed."""
    return int(np.random.SeedSequence([seed, round_index, client]).generate_state(1)[0])


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


@dataclass(frozen=True)
class FederationRun:
    """What to run: the method, the rounds, and what to do with each round's state.

    Attributes:
        aggregator: the server aggregator; None: no aggregation, every client keeps its
            own model (``local``; ``centralized`` is one client holding all the data).
        objective: the clients' local objective (in-process the clients are built with
            it; on Flower it reaches every SuperNode in the run config).
        initial: the initial global model (``head.*`` and (n_clusters, dim) centroids;
            (0, dim) under ``model.n_clusters: auto``).
        rounds: the run ends after this round (``federation.rounds``).
        seed: the run seed; client k trains round r with ``client_seed(seed, r, k)``.
        evaluate: scores a model on the central split (server side).
        min_clients: fewer finishing clients stop the run (``federation.min_clients``).
        on_round: called with the state after every round (to checkpoint it).
        resume: the state after the completed rounds of an interrupted run, or None.
        fault: the clients that misbehave, and how (``faults:``; default: none). The
            engines apply it to what those clients send (:func:`~fussbench.federation.
            faults.corrupt`) when a server aggregates.
        privacy: client-level differential privacy (``privacy:``; default: off). The
            engines sample the clients of each round, noise what they send
            (:func:`~fussbench.privacy.mechanism.release`) or the server's sum
            (:func:`~fussbench.privacy.mechanism.round_aggregator`) and record ε.
    """

    aggregator: Aggregator | None
    objective: LocalObjective
    initial: ModelArrays
    rounds: int
    seed: int
    evaluate: Callable[[ModelArrays], Evaluation]
    min_clients: int = 1
    on_round: Callable[[RunState], None] | None = None
    resume: RunState | None = None
    fault: Fault = Fault()
    privacy: PrivacyParams = PrivacyParams()

    def start_state(self, n_clients: int) -> RunState:
        """``resume``, or round 0: the initial model, once with aggregation, else for
        each of the ``n_clients`` clients."""
        if self.resume is not None:
            return self.resume
        copies = 1 if self.aggregator is not None else n_clients
        return RunState(0, [dict(self.initial) for _ in range(copies)], [None] * n_clients, [])
