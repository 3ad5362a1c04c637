"""The Flower strategy of the ``flower`` engine: fussbench's rounds on a Flower Grid.

Each round sends every client's SuperNode the global model and the client's seed
(``client_seed(seed, round, client)``, as in-process), aggregates the replies with the
same :class:`~fussbench.federation.aggregators.Aggregator` as the in-process engine, scores
the new global model on the server's evaluation split and hands the state to ``on_round``.

A client is left out of a round, and the event recorded, when its reply is an error (its
ClientApp raised, or Flower reports its node unavailable: a stopped SuperNode at once, a
crashed one after Flower's heartbeat patience) or when no reply came within
``round_timeout`` seconds. Fewer than ``min_clients`` finishing clients stop the run.

For FedCC-Auto the strategy runs one more exchange inside :meth:`aggregate_train`: the
candidate global models go to the clients that finished (``query.score``), their scores
come back, and the candidate they score best becomes the global model; a client whose
scores are missing, malformed, NaN or of the wrong length is left out of the vote and
recorded, as in-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fussbench.errors import FussbenchError
from fussbench.evaluation.predict import Evaluation
from fussbench.federation.aggregators import Aggregator, centroid_diagnostics
from fussbench.federation.auto import Candidates, FedCCAuto, exchange, scores_nbytes
from fussbench.federation.messages import ClientUpdate, model_nbytes
from fussbench.federation.rounds import RoundRecord, RunState, client_seed
from fussbench.model.head import CENTROIDS_KEY, ModelArrays

from .codec import (
    SCORE_MESSAGE,
    ClientReport,
    TrainInstruction,
    arrays_to_record,
    decode_reply,
    decode_scores,
    encode_candidates,
    encode_train,
    is_usable,
    record_to_arrays,
)


@dataclass(frozen=True)
class ClientRound:
    """One client's part in a round.

    Attributes:
        update, report: what the client sent (None: nothing usable arrived).
        failure: why the client is left out of the round (None: it finished).
    """

    update: ClientUpdate | None = None
    report: ClientReport | None = None
    failure: str | None = None


def client_round(reply: Message | None, round_timeout: float) -> ClientRound:
    """Judge one client's reply (None: no reply within ``round_timeout`` seconds)."""
    if reply is None:
        return ClientRound(failure=f"no reply within {round_timeout:g} s")
    if reply.has_error():
        error = reply.error
        if error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION and error.reason:
            return ClientRound(failure=error.reason)  # "<exception type>: <message>"
        return ClientRound(failure=f"Flower error {error.code}: {error.reason}")
    try:
        update, report = decode_reply(reply.content)
    except (FussbenchError, KeyError, TypeError, ValueError) as error:
        return ClientRound(failure=f"malformed reply: {type(error).__name__}: {error}")
    failure = None if is_usable(update, report.loss) else "non-finite loss or weights"
    return ClientRound(update, report, failure)


def _scores_of(reply: Message | None, round_timeout: float) -> object:
    """A client's scores from its ``query.score`` reply, or why there are none."""
    if reply is None:
        return f"scoring: no reply within {round_timeout:g} s"
    if reply.has_error():
        return f"scoring: {reply.error.reason}"
    try:
        return decode_scores(reply.content)
    except (FussbenchError, KeyError, TypeError, ValueError) as error:
        return f"malformed scores: {type(error).__name__}: {error}"


class FussbenchStrategy(Strategy):
    """fussbench's federated rounds as a Flower strategy.

    Args:
        aggregator: the server aggregator (``build_method``).
        nodes: SuperNode id -> client number, one node per client 0..K-1.
        seed: the run seed.
        state: the state to continue from (round 0 for a fresh run).
        evaluate: scores a global model on the server's evaluation split.
        on_round: called with the new state after every round.
        min_clients: fewer finishing clients stop the run (``federation.min_clients``).
        round_timeout: seconds to wait for a round's replies.
        send_previous: send each client its own last model in the first round (a resumed
            FedMOON run: a client's Flower context does not outlive a run).
    """

    def __init__(
        self,
        aggregator: Aggregator,
        nodes: dict[int, int],
        seed: int,
        state: RunState,
        evaluate: Callable[[ModelArrays], Evaluation],
        on_round: Callable[[RunState], None],
        min_clients: int,
        round_timeout: float,
        send_previous: bool,
    ) -> None:
        self.aggregator = aggregator
        self.nodes = nodes
        self.seed = seed
        self.state = state
        self.evaluate = evaluate
        self.on_round = on_round
        self.min_clients = min_clients
        self.round_timeout = round_timeout
        self._send_previous = send_previous
        self._sent: dict[int, Message] = {}
        self._rounds: list[ClientRound] = []
        self._started = 0.0
        self._grid: Grid | None = None
        self._selection: dict[str, object] | None = None
        self._score_failures: list[dict[str, object]] = []
        self._score_up: dict[int, int] = {}
        self._score_down = 0

    @property
    def n_clients(self) -> int:
        return len(self.state.client_states)

    def summary(self) -> None:
        """Nothing to log: fussbench prints one line per round."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One ``train`` message per client: the global model and the client's seed."""
        round_index = self.state.round + 1
        self._started = time.perf_counter()
        model = record_to_arrays(arrays)
        self._grid = grid
        self._selection, self._score_failures, self._score_up, self._score_down = None, [], {}, 0
        self._sent = {}
        for node, client in sorted(self.nodes.items(), key=lambda item: item[1]):
            previous = self.state.client_states[client] if self._send_previous else None
            seed = client_seed(self.seed, round_index, client)
            self._sent[client] = Message(
                encode_train(TrainInstruction(model, round_index, seed, previous)),
                dst_node_id=node,
                message_type=MessageType.TRAIN,
                group_id=str(round_index),
            )
        self._send_previous = False
        return list(self._sent.values())

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The next global model from the clients that finished.

        Raises:
            FussbenchError: fewer than ``min_clients`` clients finished; the state of the
                rounds before has already gone to ``on_round``.
        """
        by_message = {reply.metadata.reply_to_message_id: reply for reply in replies}
        self._rounds = [
            client_round(by_message.get(self._sent[client].metadata.message_id), self.round_timeout)
            for client in range(self.n_clients)
        ]
        updates = [item.update for item in self._rounds if item.failure is None]
        if len(updates) < self.min_clients:
            reasons = "; ".join(f"client {f['client']}: {f['reason']}" for f in self._failures())
            raise FussbenchError(
                f"round {self.state.round + 1}: only {len(updates)} of {self.n_clients} clients "
                f"finished (federation.min_clients = {self.min_clients}): {reasons}"
            )
        if isinstance(self.aggregator, FedCCAuto):
            global_model = self._auto(self.aggregator, updates)
        else:
            global_model = self.aggregator.aggregate(updates, self.state.models[0])
        return arrays_to_record(global_model), None

    def _auto(self, aggregator: FedCCAuto, updates: list[ClientUpdate]) -> ModelArrays:
        """FedCC-Auto's exchange with the clients that finished; the chosen global model."""
        finished = [client for client, item in enumerate(self._rounds) if item.failure is None]
        choice, candidates, replies = exchange(
            aggregator,
            updates,
            self.state.models[0],
            lambda sent: self._ask_scores(sent, finished),
            self.min_clients,
            finished,
        )
        self._score_failures = [
            {"client": finished[index], "reason": reason} for index, reason in choice.failures
        ]
        voters = [finished[index] for index in choice.selection["voters"]]
        self._selection = {**choice.selection, "voters": voters}
        self._score_up = {
            client: scores_nbytes(reply) for client, reply in zip(finished, replies, strict=True)
        }
        self._score_down = candidates.nbytes()
        return choice.model

    def _ask_scores(self, candidates: Candidates, clients: list[int]) -> list[object]:
        """One ``query.score`` message to each of ``clients``; per client its scores, or
        the reason string of a missing or failed reply."""
        if self._grid is None:
            raise FussbenchError("FedCC-Auto's scoring exchange needs the grid of the round")
        node_of = {client: node for node, client in self.nodes.items()}
        sent = {
            client: Message(
                encode_candidates(candidates),
                dst_node_id=node_of[client],
                message_type=SCORE_MESSAGE,
                group_id=str(self.state.round + 1),
            )
            for client in clients
        }
        replies = self._grid.send_and_receive(list(sent.values()), timeout=self.round_timeout)
        by_message = {reply.metadata.reply_to_message_id: reply for reply in replies}
        return [
            _scores_of(by_message.get(sent[client].metadata.message_id), self.round_timeout)
            for client in clients
        ]

    def evaluate_round(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Score the new global model, record the round and hand the state on (the
        ``evaluate_fn`` of :meth:`start`; nothing to do before the first round)."""
        if server_round == 0:
            return None
        global_model = record_to_arrays(arrays)
        evaluation = self.evaluate(global_model)
        done = [item if item.failure is None else None for item in self._rounds]
        down = model_nbytes(global_model)
        distance = centroid_diagnostics(global_model[CENTROIDS_KEY])["min_offdiagonal"]
        record = RoundRecord(
            round=self.state.round + 1,
            miou=float(evaluation.scores.miou),
            accuracy=float(evaluation.scores.accuracy),
            client_local_miou=[item.report.local_miou if item else None for item in done],
            client_local_accuracy=[item.report.local_accuracy if item else None for item in done],
            client_loss=[item.report.loss if item else None for item in done],
            train_seconds=[item.report.train_seconds if item else None for item in done],
            bytes_up=[
                item.update.nbytes() + self._score_up.get(client, 0) if item else 0
                for client, item in enumerate(done)
            ],
            bytes_down=[down + self._score_down if item else 0 for item in done],
            min_centroid_distance=float(distance),
            failures=[*self._failures(), *self._score_failures],
            seconds=time.perf_counter() - self._started,
            selection=self._selection,
            client_n_clusters=[len(item.update.centroids) if item else None for item in done],
            n_clusters=len(global_model[CENTROIDS_KEY]),
        )
        kept = [
            item.update.arrays if item.update is not None else previous
            for item, previous in zip(self._rounds, self.state.client_states, strict=True)
        ]
        self.state = RunState(record.round, [global_model], kept, [*self.state.records, record])
        self.on_round(self.state)
        return MetricRecord({"miou": record.miou, "accuracy": record.accuracy})

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No client-side evaluation round: clients score themselves while training."""
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """No client-side evaluation round."""
        return None

    def _failures(self) -> list[dict[str, object]]:
        """``{"client": c, "reason": ...}`` for each client left out of this round."""
        return [
            {"client": client, "reason": item.failure}
            for client, item in enumerate(self._rounds)
            if item.failure is not None
        ]
