"""The in-process engine: every client and the server of a :class:`FederationRun` in this
Python process.

Without an aggregator every client keeps its own model (the ``local`` lower bound); the
``centralized`` upper bound is the same loop over one client holding all the data.

A client that raises, or returns non-finite numbers, is left out of that round and the
event is recorded; the run stops only when fewer than ``min_clients`` clients finish.
Under ``privacy:`` only the sampled clients train, and what they send or the server's sum
is noised (:mod:`fussbench.privacy`).
State after every round is handed to ``on_round`` so a run can be resumed bit-for-bit.
What a round records and how the server serves it are shared with the Flower engine
(:func:`~fussbench.federation.record.round_record`,
:func:`~fussbench.federation.exchange.serve_round`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from fussbench.evaluation.predict import Evaluation
from fussbench.federation.client import FederatedClient
from fussbench.federation.exchange import Reply, Transport, serve_round
from fussbench.federation.faults import misbehave
from fussbench.federation.outcome import ClientOutcome, ClientReport, check_min_clients, is_usable
from fussbench.federation.query import Query
from fussbench.federation.record import round_record
from fussbench.federation.run import FederationRun, RunResult, RunState, client_seed
from fussbench.model.head import ModelArrays
from fussbench.privacy.mechanism import release, round_aggregator, stamp
from fussbench.privacy.sampling import participants

LocalEvaluation = Callable[[int, ModelArrays], Evaluation]
"""``evaluate_local(c, model)``: a model on client c's own training images."""


def run_rounds(
    run: FederationRun, clients: Sequence[FederatedClient], evaluate_local: LocalEvaluation
) -> RunResult:
    """Run rounds ``run.resume.round + 1 .. run.rounds`` (all of them without a resume).

    Every client starts from ``run.initial``; after aggregation the global model
    overwrites every client's copy. ``clients`` were built with ``run.objective``.

    Raises:
        FussbenchError: when fewer than ``run.min_clients`` clients finish a round; the
            state of the rounds before it has already gone to ``run.on_round``.
    """
    state = run.start_state(len(clients))
    if run.resume is not None:
        for client, kept in zip(clients, state.client_states, strict=True):
            client.restore(kept)
    evaluations: list[Evaluation] = []
    for round_index in range(state.round + 1, run.rounds + 1):
        state, evaluations = _round(run, clients, evaluate_local, state, round_index)
        if run.on_round is not None:
            run.on_round(state)
    if not evaluations:  # resumed after the last round: score the saved models
        evaluations = [run.evaluate(model) for model in state.models]
    return RunResult(state, evaluations)


def _round(
    run: FederationRun,
    clients: Sequence[FederatedClient],
    evaluate_local: LocalEvaluation,
    state: RunState,
    round_index: int,
) -> tuple[RunState, list[Evaluation]]:
    """Round ``round_index`` after ``state``: the new state and its models' evaluations."""
    started = time.perf_counter()
    sampled = participants(run.seed, round_index, len(clients), run.privacy.sample_rate)
    outcomes = [
        _train(
            client,
            number,
            state.models[number] if len(state.models) == len(clients) else state.models[0],
            client_seed(run.seed, round_index, number),
            evaluate_local,
        )
        if sampled[number]
        else ClientOutcome(sampled=False)
        for number, client in enumerate(clients)
    ]
    if run.aggregator is not None:  # a fault changes what a client sends: nothing in local
        outcomes = [
            misbehave(
                outcome,
                state.models[0],
                run.fault,
                number,
                round_index,
                client_seed(run.seed, round_index, number),
            )
            for number, outcome in enumerate(outcomes)
        ]
        outcomes = [  # privacy.mechanism local: noised on the client, after any fault
            release(outcome, state.models[0], run.privacy, client_seed(run.seed, round_index, n))
            for n, outcome in enumerate(outcomes)
        ]
    check_min_clients(round_index, outcomes, run.min_clients)
    if run.aggregator is None:
        served = None
        models = [
            outcome.update.arrays if outcome.finished else previous
            for outcome, previous in zip(outcomes, state.models, strict=True)
        ]
    else:
        served = serve_round(
            round_aggregator(
                run.aggregator,
                run.privacy,
                run.seed,
                round_index,
                len(clients),
                run.objective.code_sums,
            ),
            outcomes,
            state.models[0],
            run.min_clients,
            _asking(clients),
        )
        models = [served.step.model]
    evaluations = [run.evaluate(model) for model in models]
    record = round_record(
        round_index, outcomes, models, evaluations, time.perf_counter() - started, served
    )
    record = stamp(record, outcomes, run.privacy)  # the sampled clients and ε, when private
    kept = [client.state() for client in clients]
    return RunState(round_index, models, kept, [*state.records, record]), evaluations


def _train(
    client: FederatedClient,
    number: int,
    start: ModelArrays,
    seed: int,
    evaluate_local: LocalEvaluation,
) -> ClientOutcome:
    """Client ``number``'s training from ``start``, its trained model scored on its own
    images; a client that raises or returns non-finite numbers is left out with the
    reason."""
    try:
        update, stats = client.fit(start, seed)
    except Exception as error:  # a client's fault must not end the federation
        return ClientOutcome(failure=f"{type(error).__name__}: {error}")
    if not is_usable(update, stats.loss):
        return ClientOutcome(update, failure="non-finite loss or weights")
    local = evaluate_local(number, client.trained()).scores
    return ClientOutcome(
        update, ClientReport(stats.loss, stats.seconds, local.miou, local.accuracy)
    )


def _asking(clients: Sequence[FederatedClient]) -> Transport:
    """The in-process transport: each asked client answers the query directly."""

    def deliver(query: Query, numbers: Sequence[int]) -> list[Reply]:
        replies = []
        for number in numbers:
            try:
                replies.append(Reply(answer=clients[number].answer(query)))
            except Exception as error:  # a client's fault must not end the federation
                replies.append(Reply(failure=f"{query.purpose}: {type(error).__name__}: {error}"))
        return replies

    return deliver
