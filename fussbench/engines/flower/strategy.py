"""The Flower strategy of the ``flower`` engine: fussbench's rounds on a Flower Grid.

Each round sends every client's SuperNode the global model and the client's seed
(``client_seed(seed, round, client)``, as in-process), serves the round with the same
:func:`~fussbench.federation.exchange.serve_round` as the in-process engine, scores the
new global model on the server's evaluation split, records the round with the shared
:func:`~fussbench.federation.record.round_record` and hands the state to ``on_round``.

A client is left out of a round, and the event recorded, when its reply is an error (its
ClientApp raised, or Flower reports its node unavailable: a stopped SuperNode at once, a
crashed one after Flower's heartbeat patience) or when no reply came within
``round_timeout`` seconds. Fewer than ``min_clients`` finishing clients stop the run.

Under ``privacy:`` only the sampled clients get a ``train`` message, a ``local`` client
noises its own update, and a ``central`` round's server step is
:func:`~fussbench.privacy.mechanism.round_aggregator`'s: the same functions and seeds as
in-process, so the numbers match.

Under ``privacy.secure_aggregation`` the round's train messages are the four stages of
Flower's SecAgg+ (:func:`~.secure.run_secure_round`), sent from :meth:`aggregate_train`:
the server learns each client's report and weight and only the weighted sum of the
updates, which its aggregator steps from as one update (:mod:`.secure_sum`); a client
that drops during the protocol is left out with the stage and the reason, and a round
that cannot be unmasked stops the run.

An aggregator that asks the clients something during the round (FedCC-Auto's scores)
does so inside :meth:`aggregate_train`: each query goes to the clients that finished as
one ``query.aggregator`` message; a client whose answer is missing, an error or malformed
is reported to the aggregator as failed, as in-process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fussbench.errors import FussbenchError
from fussbench.federation.exchange import Reply, ServedRound, ServerStep, serve_round
from fussbench.federation.outcome import ClientOutcome, check_min_clients, is_usable
from fussbench.federation.query import Query
from fussbench.federation.record import round_record
from fussbench.federation.run import FederationRun, RunState, client_seed
from fussbench.privacy.mechanism import round_aggregator, stamp
from fussbench.privacy.sampling import participants

from .codec import (
    QUERY_MESSAGE,
    TrainInstruction,
    arrays_to_record,
    decode_answer,
    decode_reply,
    encode_query,
    encode_train,
    record_to_arrays,
)
from .secure import run_secure_round
from .secure_sum import SumPlan


def client_outcome(reply: Message | None, round_timeout: float) -> ClientOutcome:
    """Judge one client's train reply (None: no reply within ``round_timeout`` seconds)."""
    if reply is None:
        return ClientOutcome(failure=f"no reply within {round_timeout:g} s")
    if reply.has_error():
        error = reply.error
        if error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION and error.reason:
            return ClientOutcome(failure=error.reason)  # "<exception type>: <message>"
        return ClientOutcome(failure=f"Flower error {error.code}: {error.reason}")
    try:
        update, report = decode_reply(reply.content)
    except (FussbenchError, KeyError, TypeError, ValueError) as error:
        return ClientOutcome(failure=f"malformed reply: {type(error).__name__}: {error}")
    failure = None if is_usable(update, report.loss) else "non-finite loss or weights"
    return ClientOutcome(update, report, failure)


def query_reply(reply: Message | None, query: Query, round_timeout: float) -> Reply:
    """Judge one client's reply to ``query`` (None: no reply within ``round_timeout``)."""
    if reply is None:
        return Reply(failure=f"{query.purpose}: no reply within {round_timeout:g} s")
    if reply.has_error():
        return Reply(failure=f"{query.purpose}: {reply.error.reason}")
    try:
        return Reply(answer=decode_answer(reply.content))
    except (FussbenchError, KeyError, TypeError, ValueError) as error:
        return Reply(failure=f"{query.purpose}: malformed answer: {type(error).__name__}: {error}")


class FussbenchStrategy(Strategy):
    """fussbench's federated rounds as a Flower strategy.

    Args:
        run: the run (its ``aggregator`` must not be None); ``run.evaluate`` scores a
            global model on the server's evaluation split.
        nodes: SuperNode id -> client number, one node per client 0..K-1.
        round_timeout: seconds to wait for a round's replies (under secure aggregation,
            for each stage's).
        secure: the plan of secure aggregation (None: without it).

    A resumed FedMOON run sends each client its own last model in the first round: a
    client's Flower context does not outlive a run. Under secure aggregation the server
    never holds a client's model, so a resumed FedMOON client starts from the global one.
    """

    def __init__(
        self,
        run: FederationRun,
        nodes: dict[int, int],
        round_timeout: float,
        secure: SumPlan | None = None,
    ) -> None:
        if run.aggregator is None:
            raise FussbenchError("the Flower strategy runs federated aggregators only")
        self.run = run
        self.aggregator = run.aggregator
        self.nodes = nodes
        self.round_timeout = round_timeout
        self.secure = secure
        self.state = run.start_state(len(nodes))
        self._send_previous = run.resume is not None and run.objective.kind == "fedmoon"
        self._sent: dict[int, Message] = {}
        self._instructions: dict[int, tuple[int, TrainInstruction]] = {}
        self._outcomes: list[ClientOutcome] = []
        self._served: ServedRound | None = None
        self._started = 0.0
        self._grid: Grid | None = None

    def summary(self) -> None:
        """Nothing to log: fussbench prints one line per round."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One ``train`` message per client (per sampled client under ``privacy:``): the
        global model and the client's seed; none under secure aggregation, whose
        protocol :meth:`aggregate_train` runs."""
        round_index = self.state.round + 1
        self._started = time.perf_counter()
        model = record_to_arrays(arrays)
        self._grid = grid
        self._served = None
        sampled = participants(
            self.run.seed, round_index, len(self.nodes), self.run.privacy.sample_rate
        )
        self._instructions = {}
        for node, client in sorted(self.nodes.items(), key=lambda item: item[1]):
            if not sampled[client]:
                continue
            previous = self.state.client_states[client] if self._send_previous else None
            seed = client_seed(self.run.seed, round_index, client)
            instruction = TrainInstruction(model, round_index, seed, previous)
            self._instructions[client] = (node, instruction)
        self._send_previous = False
        self._sent = {}
        if self.secure is not None:
            return []
        self._sent = {
            client: Message(
                encode_train(instruction),
                dst_node_id=node,
                message_type=MessageType.TRAIN,
                group_id=str(round_index),
            )
            for client, (node, instruction) in self._instructions.items()
        }
        return list(self._sent.values())

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The next global model from the clients that finished.

        Raises:
            FussbenchError: fewer than ``min_clients`` clients finished, or SecAgg+ could
                not unmask the sum; the state of the rounds before has already gone to
                ``on_round``.
        """
        if self.secure is not None:
            return self._aggregate_securely(), None
        by_message = {reply.metadata.reply_to_message_id: reply for reply in replies}
        replied = {
            client: by_message.get(sent.metadata.message_id) for client, sent in self._sent.items()
        }
        self._outcomes = [  # a client not sampled this round (privacy.sample_rate) got nothing
            client_outcome(replied[client], self.round_timeout)
            if client in replied
            else ClientOutcome(sampled=False)
            for client in range(len(self.nodes))
        ]
        round_index = self.state.round + 1
        check_min_clients(round_index, self._outcomes, self.run.min_clients)
        aggregator = round_aggregator(
            self.aggregator,
            self.run.privacy,
            self.run.seed,
            round_index,
            len(self.nodes),
            self.run.objective.code_sums,
        )
        self._served = serve_round(
            aggregator, self._outcomes, self.state.models[0], self.run.min_clients, self._ask
        )
        return arrays_to_record(self._served.step.model), None

    def _aggregate_securely(self) -> ArrayRecord:
        """The round as SecAgg+: the aggregator's step from the one update holding the
        sums (a method whose server needs only a weighted sum steps the same from it)."""
        if self._grid is None or self.secure is None:
            raise FussbenchError("a secure round needs the grid and the plan of the round")
        round_index = self.state.round + 1
        secure = run_secure_round(
            self._grid, self._instructions, self.secure, len(self.nodes), self.round_timeout
        )
        self._outcomes = secure.outcomes
        check_min_clients(round_index, self._outcomes, self.run.min_clients)
        if secure.summed is None:
            raise FussbenchError(f"round {round_index}: {secure.stopped}")
        step = ServerStep(self.aggregator.aggregate([secure.summed], self.state.models[0]))
        self._served = ServedRound(step, secure.bytes_up, secure.bytes_down, secure=True)
        return arrays_to_record(step.model)

    def _ask(self, query: Query, clients: Sequence[int]) -> list[Reply]:
        """The Flower transport: one ``query.aggregator`` message to each of ``clients``;
        per client its reply, or the reason of a missing or failed one."""
        if self._grid is None:
            raise FussbenchError("an aggregator's query needs the grid of the round")
        node_of = {client: node for node, client in self.nodes.items()}
        sent = {
            client: Message(
                encode_query(query),
                dst_node_id=node_of[client],
                message_type=QUERY_MESSAGE,
                group_id=str(self.state.round + 1),
            )
            for client in clients
        }
        replies = self._grid.send_and_receive(list(sent.values()), timeout=self.round_timeout)
        by_message = {reply.metadata.reply_to_message_id: reply for reply in replies}
        return [
            query_reply(by_message.get(sent[client].metadata.message_id), query, self.round_timeout)
            for client in clients
        ]

    def evaluate_round(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Score the new global model, record the round and hand the state on (the
        ``evaluate_fn`` of :meth:`start`; nothing to do before the first round)."""
        if server_round == 0:
            return None
        global_model = record_to_arrays(arrays)
        evaluation = self.run.evaluate(global_model)
        seconds = time.perf_counter() - self._started
        record = round_record(
            self.state.round + 1,
            self._outcomes,
            [global_model],
            [evaluation],
            seconds,
            self._served,
        )
        record = stamp(record, self._outcomes, self.run.privacy)
        kept = [
            outcome.update.arrays if outcome.update is not None else previous
            for outcome, previous in zip(self._outcomes, self.state.client_states, strict=True)
        ]
        self.state = RunState(record.round, [global_model], kept, [*self.state.records, record])
        if self.run.on_round is not None:
            self.run.on_round(self.state)
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
