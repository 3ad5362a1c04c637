"""Secure aggregation on the ``flower`` engine (``privacy.secure_aggregation``): Flower's
SecAgg+ workflow and mod, run unchanged inside fussbench's Message-API strategy.

The decision. Flower 1.42 offers SecAgg+ as a ServerApp workflow
(``flwr.server.workflow.SecAggPlusWorkflow``) and a ClientApp mod
(``flwr.client.mod.secaggplus_mod``), both on its legacy compatibility layer: the
workflow configures a round through a legacy ``flwr.server.strategy.Strategy``
(``configure_fit``, ``FitIns``), runs the protocol's four stages as ``train`` messages on
the Grid, and hands the unmasked weighted average to that strategy's ``aggregate_fit``;
the mod wraps a train function whose reply is a legacy ``FitRes``. The workflow reads
nothing else from its ``LegacyContext`` than the round number, that strategy and the
Grid, so it fits fussbench's strategy round by round: :func:`run_secure_round` builds a
one-round legacy strategy (:class:`_OneRound`) around the instructions fussbench's
strategy prepared, runs Flower's workflow on the round's Grid and reads its result; the
ClientApp calls Flower's mod on every SecAgg+ message (:func:`secure_train`). Key
agreement, secret sharing, encryption of the shares, masking, quantisation and
unmasking (dropped clients included) are Flower's code; the other path, assembling the
protocol from ``flwr.common.secure_aggregation``'s primitives, would re-implement the
four stages and their dropout handling (the 1,200 lines of the workflow and the mod) for
nothing Flower's own does not give. What is summed, and how the server reads the sum,
is :mod:`.secure_sum`.

What fussbench adds around the workflow: which client left at which stage and why, and
the bytes each client sent and received over the four stages, read from the Grid that
carries the protocol (:class:`_WireLog`); and reproducible stochastic rounding: Flower's
``quantize`` draws from numpy's global generator, which the client seeds from its round
seed for that step and restores afterwards (the masks come from ``os.urandom`` and the
key agreement, and cancel in the sum whatever they are).

Settings, per round of K clients (every client takes part: params refuse client sampling
with it): every client shares its keys with every other (``num_shares`` = K, the
complete graph: SecAgg+ with all neighbours is the SecAgg of Bonawitz et al., CCS 2017;
K is a few dozen at most here), reconstruction threshold t = floor(K / 2) + 1 shares, so
the sum is unmasked while at least t clients answer every stage (up to K - t may drop
after the key exchange); ``max_weight``, the clipping and quantisation ranges and the
modulus are the plan's (:mod:`.secure_sum`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Stage
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy as LegacyStrategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientOutcome

from .codec import (
    TrainInstruction,
    content_bytes,
    decode_secure_report,
    decode_secure_train,
    encode_secure_reply,
    encode_secure_train,
)
from .secure_sum import CLIPPING_RANGE, MODULUS_RANGE, SumPlan, summands, summed_update

ROUNDING_STREAM = 2904
"""Tags the seed of SecAgg+'s stochastic rounding apart from the other draws of a client's
round seed."""


def reconstruction_threshold(n_clients: int) -> int:
    """t = floor(K / 2) + 1: the shares that unmask the sum (a strict majority)."""
    return n_clients // 2 + 1


def secagg_workflow(plan: SumPlan, timeout: float) -> SecAggPlusWorkflow:
    """Flower's SecAgg+ workflow with the plan's settings: every client a neighbour of
    every other, threshold :func:`reconstruction_threshold`, ``timeout`` seconds per
    stage."""
    return SecAggPlusWorkflow(
        num_shares=1.0,  # a fraction: all the round's clients
        reconstruction_threshold=reconstruction_threshold(plan.n_clients),
        max_weight=float(plan.total_weight),
        clipping_range=CLIPPING_RANGE,
        quantization_range=plan.quantization_range,
        modulus_range=MODULUS_RANGE,
        timeout=timeout,
    )


@dataclass(frozen=True)
class SecureRound:
    """What the server learnt from one SecAgg+ round.

    Attributes:
        outcomes: per client number (all K): a client whose masked vector entered the
            sum finished, with its report and no update (the server holds none); a
            client that dropped is left out with the stage and the reason.
        summed: the one update holding the sums (:func:`~.secure_sum.summed_update`);
            None when the protocol stopped before unmasking.
        stopped: why there is no sum (None: there is).
        bytes_up, bytes_down: per client number, the bytes of the records it sent and
            received over the round's stages (:func:`~.codec.content_bytes`).
    """

    outcomes: list[ClientOutcome]
    summed: ClientUpdate | None
    stopped: str | None
    bytes_up: list[int]
    bytes_down: list[int]


def run_secure_round(
    grid: Grid,
    sent: Mapping[int, tuple[int, TrainInstruction]],
    plan: SumPlan,
    n_clients: int,
    timeout: float,
) -> SecureRound:
    """One round of SecAgg+ on ``grid``: Flower's workflow sends the stages, each client
    trains in the third and hands the mod its summands.

    Args:
        sent: client number -> (its SuperNode id, its instruction), the round's clients;
            every instruction holds the same global model.
        n_clients: K, for the per-client lists.
        timeout: seconds to wait for each stage's replies.
    """
    wire = _WireLog(grid)
    client_of = {node: client for client, (node, _) in sent.items()}
    instructions = {node: (instruction, plan) for node, instruction in sent.values()}
    run_id = grid.run.run_id
    one_round = _OneRound(instructions, grid, run_id)
    received = next(iter(sent.values()))[1]
    context = LegacyContext(
        Context(run_id=run_id, node_id=0, node_config={}, state=RecordDict(), run_config={}),
        strategy=one_round,
    )
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: received.round}
    )
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    secagg_workflow(plan, timeout)(wire, context)
    outcomes = [ClientOutcome(sampled=False) for _ in range(n_clients)]
    for node, client in client_of.items():
        fitres = one_round.results.get(node)
        if fitres is None:
            failure = wire.failures.get(node, "SecAgg+: its masked vector is not in the sum")
            outcomes[client] = ClientOutcome(failure=failure)
        else:
            outcomes[client] = ClientOutcome(report=decode_secure_report(fitres))
    summed, stopped = None, None
    if one_round.average is None:
        stopped = (
            f"SecAgg+ stopped after its '{Stage.all()[wire.stages - 1]}' stage: fewer than "
            f"its threshold of {reconstruction_threshold(plan.n_clients)} of the "
            f"{len(sent)} clients answered"
        )
    else:
        weight = sum(int(fitres.num_examples) for fitres in one_round.results.values())
        summed = summed_update(one_round.average, weight, received.model, plan)
    node_of = {client: node for node, client in client_of.items()}
    return SecureRound(
        outcomes,
        summed,
        stopped,
        [wire.bytes_up[node_of[c]] if c in node_of else 0 for c in range(n_clients)],
        [wire.bytes_down[node_of[c]] if c in node_of else 0 for c in range(n_clients)],
    )


class _OneRound(LegacyStrategy):
    """The legacy strategy Flower's workflow configures one round with and hands the
    result to: each client's instruction as a ``FitIns``; ``aggregate_fit`` keeps the
    unmasked average and each client's ``FitRes`` (its weight and report; its arrays are
    replaced by the average)."""

    def __init__(
        self,
        instructions: Mapping[int, tuple[TrainInstruction, SumPlan]],
        grid: Grid,
        run_id: int,
    ) -> None:
        self.instructions = instructions
        self.grid = grid
        self.run_id = run_id
        self.average: list[np.ndarray] | None = None
        self.results: dict[int, FitRes] = {}

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        return [
            (GridClientProxy(node, self.grid, self.run_id), encode_secure_train(*pair))
            for node, pair in self.instructions.items()
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.results = {int(proxy.node_id): fitres for proxy, fitres in results}
        if not results:
            return None, {}
        parameters = results[0][1].parameters  # the unmasked average, on every result
        self.average = parameters_to_ndarrays(parameters)
        return parameters, {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return None


class _WireLog(Grid):
    """The round's Grid, noting per SuperNode the bytes of every message it received and
    sent, and the first stage it failed in (an error reply, or none within the timeout)."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self.stages = 0
        self.bytes_up: defaultdict[int, int] = defaultdict(int)
        self.bytes_down: defaultdict[int, int] = defaultdict(int)
        self.failures: dict[int, str] = {}

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """One stage: the grid's replies, their bytes and failures noted."""
        stage = Stage.all()[self.stages]
        self.stages += 1
        messages = list(messages)
        for message in messages:
            self.bytes_down[message.metadata.dst_node_id] += content_bytes(message.content)
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                self.failures.setdefault(node, f"SecAgg+ {stage}: {_reason(reply)}")
            else:
                self.bytes_up[node] += content_bytes(reply.content)
        answered = {reply.metadata.src_node_id for reply in replies}
        for message in messages:
            node = message.metadata.dst_node_id
            if node not in answered:
                self.failures.setdefault(node, f"SecAgg+ {stage}: no reply within {timeout:g} s")
        return replies

    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)


def _reason(reply: Message) -> str:
    """An error reply's reason: the client's exception, or Flower's error code."""
    error = reply.error
    if error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION and error.reason:
        return error.reason
    return f"Flower error {error.code}: {error.reason}"


def secure_train(
    message: Message, context: Context, fit: Callable[[TrainInstruction], ClientOutcome]
) -> Message:
    """This client's answer to one SecAgg+ stage, through Flower's ``secaggplus_mod``; in
    the 'collect masked vectors' stage ``fit`` trains and the mod masks the summands.

    Raises:
        FussbenchError: a train message without a SecAgg+ stage (under secure aggregation
            a client sends nothing outside the protocol), or a client left out by ``fit``
            (its reason), which the protocol then treats as dropped.
    """
    if RECORD_KEY_CONFIGS not in message.content.config_records:
        raise FussbenchError(
            "privacy.secure_aggregation is on: this client answers train messages only "
            "through SecAgg+, and this one carries no SecAgg+ stage"
        )

    def masked(inner: Message, inner_context: Context) -> Message:
        instruction, plan = decode_secure_train(inner.content)
        outcome = fit(instruction)
        if not outcome.finished or outcome.update is None or outcome.report is None:
            raise FussbenchError(outcome.failure or "no update to sum")
        weight, arrays = summands(outcome.update, instruction.model, plan)
        np.random.seed(
            np.random.SeedSequence([instruction.seed, ROUNDING_STREAM]).generate_state(1)
        )
        return Message(encode_secure_reply(weight, arrays, outcome.report), reply_to=inner)

    kept = np.random.get_state()
    try:
        return secaggplus_mod(message, context, masked)
    finally:
        np.random.set_state(kept)
