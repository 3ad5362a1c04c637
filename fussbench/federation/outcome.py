"""What the server learns of each client's training in a round, the same in both engines.

A client either finishes its round (an update and a report arrive, both usable) or is
left out with a reason (it raised, sent non-finite numbers, or, on Flower, sent nothing
usable in time). Fewer than ``federation.min_clients`` finishing clients stop the run.
Under ``privacy.sample_rate`` below 1 a client may also not be sampled for a round: it
trains and sends nothing, and that is no failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate


@dataclass(frozen=True)
class ClientReport:
    """What a client reports besides its update (NaN scores: not evaluated).

    Attributes:
        loss: mean training loss of the round.
        train_seconds: wall time of local training.
        local_miou, local_accuracy: the trained model on the client's own images (labels
            used for evaluation only).
    """

    loss: float
    train_seconds: float
    local_miou: float
    local_accuracy: float


@dataclass(frozen=True)
class ClientOutcome:
    """One client's part in a round.

    Attributes:
        update, report: what the client sent (None: nothing arrived).
        failure: why the client is left out of the round (None: it finished).
        sampled: False for a client not sampled this round (``privacy.sample_rate``).
    """

    update: ClientUpdate | None = None
    report: ClientReport | None = None
    failure: str | None = None
    sampled: bool = True

    @property
    def finished(self) -> bool:
        """Whether the client's update enters the round."""
        return self.sampled and self.failure is None


def is_usable(update: ClientUpdate, loss: float) -> bool:
    """Whether an update may be aggregated: a finite loss and finite arrays."""
    return math.isfinite(loss) and all(np.isfinite(a).all() for a in update.arrays.values())


def finished_clients(outcomes: Sequence[ClientOutcome]) -> list[int]:
    """The numbers of the clients that finished, in client order."""
    return [client for client, outcome in enumerate(outcomes) if outcome.finished]


def training_failures(outcomes: Sequence[ClientOutcome]) -> list[dict[str, object]]:
    """``{"client": c, "reason": ...}`` for each sampled client left out of the round."""
    return [
        {"client": client, "reason": outcome.failure}
        for client, outcome in enumerate(outcomes)
        if outcome.sampled and not outcome.finished
    ]


def check_min_clients(
    round_index: int, outcomes: Sequence[ClientOutcome], min_clients: int
) -> None:
    """Stop the run when fewer than ``min_clients`` clients finished round ``round_index``
    (fewer than all of them when fewer were sampled).

    Raises:
        FussbenchError: naming the round, the counts and every left-out client's reason.
    """
    finished = len(finished_clients(outcomes))
    sampled = sum(outcome.sampled for outcome in outcomes)
    if finished < min(min_clients, sampled):
        reasons = "; ".join(
            f"client {f['client']}: {f['reason']}" for f in training_failures(outcomes)
        )
        raise FussbenchError(
            f"round {round_index}: only {finished} of {sampled} clients finished "
            f"(federation.min_clients = {min_clients}): {reasons}"
        )
