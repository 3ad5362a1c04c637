"""The server's half of a round, the same in both engines: the aggregator, and the queries
it sends the clients that finished.

An engine supplies only a :data:`Transport` (in-process: call each client; on Flower: one
message per client on the grid). :func:`serve_round` hands the aggregator an
:class:`Exchange` over it; the exchange checks every answer against its query and counts
the bytes each client received and sent, so no engine and no aggregator counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fussbench.federation.outcome import ClientOutcome, finished_clients
from fussbench.federation.query import Query, answer_nbytes, answer_problem
from fussbench.model.head import ModelArrays

if TYPE_CHECKING:
    from fussbench.federation.aggregators import Aggregator


@dataclass(frozen=True)
class Reply:
    """One client's reply to a query: its answer, or why there is none.

    Attributes:
        answer: arrays named as the query's ``answer_keys`` (None: no usable answer).
        failure: the reason, prefixed with the query's purpose (None: answered).
    """

    answer: ModelArrays | None = None
    failure: str | None = None


Transport = Callable[[Query, Sequence[int]], list[Reply]]
"""Sends a query to the given clients (by number) and returns, per client in that order,
its reply: an answer as it came, or the reason none came."""


class Exchange:
    """A round's line from the aggregator to the clients whose updates it holds.

    Attributes:
        clients: the client number of each update, in the order of the updates.
        min_clients: ``federation.min_clients``, for an aggregator that needs that many
            usable answers.
        bytes_up, bytes_down: per client number (all K clients), the bytes of the answers
            it sent and of the queries it received this round.
    """

    def __init__(
        self, clients: Sequence[int], n_clients: int, min_clients: int, transport: Transport
    ) -> None:
        self.clients = list(clients)
        self.min_clients = min_clients
        self.bytes_up = [0] * n_clients
        self.bytes_down = [0] * n_clients
        self._transport = transport

    def ask(self, query: Query) -> list[Reply]:
        """Send ``query`` to every client of :attr:`clients`; per update (same order), the
        client's checked reply. An answer with other arrays than ``query.answer_keys``
        becomes a failure; only accepted answers count as bytes up."""
        replies = [_checked(query, reply) for reply in self._transport(query, self.clients)]
        for client, reply in zip(self.clients, replies, strict=True):
            self.bytes_down[client] += query.nbytes()
            if reply.answer is not None:
                self.bytes_up[client] += answer_nbytes(reply.answer)
        return replies


def _checked(query: Query, reply: Reply) -> Reply:
    """``reply``, or a failure when its answer has other arrays than ``query`` declares."""
    if reply.answer is None:
        return reply
    problem = answer_problem(query, reply.answer)
    return reply if problem is None else Reply(failure=problem)


@dataclass(frozen=True)
class ServerStep:
    """What an aggregator's round produced (:meth:`Aggregator.server_round`).

    Attributes:
        model: the next global model.
        selection: what the aggregator chose, for the round record (FedCC-Auto's winner,
            weighted scores and voting clients); None for an aggregator without a choice.
        failures: ``{"client": c, "reason": ...}`` for each client whose answers the
            aggregator left out (its update still entered the round).
    """

    model: ModelArrays
    selection: dict[str, object] | None = None
    failures: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class ServedRound:
    """The server's half of a round: the aggregator's step and the bytes its exchange
    moved, per client number (0 for a client it did not ask).

    ``secure``: the round ran under secure aggregation: the server saw only the sum of
    the updates (no client's update, so no suspicion ratio), and ``bytes_up`` /
    ``bytes_down`` are every byte of the protocol's messages, the model and the masked
    update included.
    """

    step: ServerStep
    bytes_up: list[int]
    bytes_down: list[int]
    secure: bool = False


def serve_round(
    aggregator: Aggregator,
    outcomes: Sequence[ClientOutcome],
    previous: ModelArrays,
    min_clients: int,
    transport: Transport,
) -> ServedRound:
    """The next global model from the updates of the clients that finished, with the
    aggregator's queries to those clients going over ``transport``."""
    finished = finished_clients(outcomes)
    exchange = Exchange(finished, len(outcomes), min_clients, transport)
    updates = [outcomes[client].update for client in finished]
    step = aggregator.server_round(updates, previous, exchange)
    return ServedRound(step, exchange.bytes_up, exchange.bytes_down)
