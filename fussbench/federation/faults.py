"""Faulty and hostile clients, as scenarios of an experiment (``faults:`` in params).

A scenario changes what the chosen clients send from a chosen round on; every other client
and every method run as usual, with the same seeds, so a method's drop under a fault is
paired with its honest run. Both engines apply it on the client, after honest training
(:func:`corrupt`), except ``noise_images``, which gives the client noise images to train on
honestly (its features are computed from them before the run).

Scenarios, for a client whose honest update has head theta and centroids mu (n_clusters,
dim), and the global model it received (theta_0, mu_0):
    - ``random_centroids``: each centroid replaced by a random direction of the same norm,
      mu'_c = ||mu_c|| g_c / ||g_c||, g_c ~ N(0, I) (a client whose training collapsed to
      noise, or an attacker who wants clusters of its own).
    - ``collapsed``: every centroid replaced by its first, mu'_c = mu_1 (a client whose
      training collapsed to one cluster).
    - ``poisoned_head``: the head update sign-flipped and scaled,
      theta' = theta_0 - strength (theta - theta_0); the centroids stay honest.
    - ``free_rider``: the received model sent back unchanged, (theta_0, mu_0), still
      claiming its image count.
    - ``noise_images``: honest training on images of uniform noise.

A client whose method sends code sums in its centroids' place (registry ``client_sends:
code_sums``, e.g. ``fedcc_sums``) is corrupted the same way, on what it sends: mu is then
its code sums, and its counts stay honest. ``random_centroids`` turns every sum to a random
direction, its norm kept; ``collapsed`` sends its first sum at every index (pulling every
global centroid towards one direction); ``free_rider`` sends the received centroids as its
sums (rows of norm 1, or about sqrt(dim) in round 1: next to nothing beside sums of
thousands of unit codes, so it moves no centroid).

Server side and client side alike: numpy only (params checking imports it without torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from fussbench.errors import FussbenchError

if TYPE_CHECKING:
    from fussbench.federation.messages import ClientUpdate
    from fussbench.federation.outcome import ClientOutcome

CENTROIDS = "centroids"

SCENARIOS = (
    "none",
    "random_centroids",
    "collapsed",
    "poisoned_head",
    "free_rider",
    "noise_images",
)
"""Valid ``faults.scenario`` values; ``none`` (the default) is an honest federation."""

CLIENT_TOKENS = ("largest", "smallest")
"""Names ``faults.clients`` may use instead of a client number: the client with the most /
fewest training images (the lowest number on ties)."""


@dataclass(frozen=True)
class Fault:
    """One scenario, resolved for a run: which clients misbehave, from when and how much.

    Attributes:
        scenario: one of :data:`SCENARIOS`.
        clients: the misbehaving client numbers.
        from_round: the first round (1-based) in which they misbehave.
        strength: ``poisoned_head``'s scale of the flipped update (1: a sign flip).
    """

    scenario: str = "none"
    clients: tuple[int, ...] = ()
    from_round: int = 1
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise FussbenchError(
                f"faults.scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}"
            )

    @property
    def active(self) -> bool:
        """Whether any client misbehaves."""
        return self.scenario != "none" and bool(self.clients)

    def hits(self, client: int, round_index: int) -> bool:
        """Whether ``client`` misbehaves in ``round_index`` (1-based)."""
        return self.active and client in self.clients and round_index >= self.from_round

    @property
    def corrupts_updates(self) -> bool:
        """Whether the scenario changes what a client sends (all but ``noise_images``)."""
        return self.active and self.scenario != "noise_images"

    def describe(self) -> str:
        """``"random_centroids: client 2 from round 1"`` (``"honest"`` when inactive), for
        the first line of a table."""
        if not self.active:
            return "honest"
        who = ", ".join(str(client) for client in self.clients)
        plural = "s" if len(self.clients) > 1 else ""
        strength = f", strength {self.strength:g}" if self.scenario == "poisoned_head" else ""
        return f"{self.scenario}: client{plural} {who} from round {self.from_round}{strength}"


def resolve_clients(names: Sequence[int | str], sizes: Sequence[int]) -> tuple[int, ...]:
    """Client numbers from ``faults.clients`` (numbers or :data:`CLIENT_TOKENS`).

    Args:
        names: the entries of ``faults.clients``.
        sizes: (K,) training images of each client.

    Raises:
        FussbenchError: a number outside 0..K-1 or an unknown token, naming the param.
    """
    chosen = []
    for name in names:
        if name == "largest":
            chosen.append(int(np.argmax(sizes)))
        elif name == "smallest":
            chosen.append(int(np.argmin(sizes)))
        elif isinstance(name, int) and 0 <= name < len(sizes):
            chosen.append(name)
        else:
            raise FussbenchError(
                f"faults.clients: {name!r} is not a client of this setup; use 0..{len(sizes) - 1}"
                f" or {' / '.join(CLIENT_TOKENS)}"
            )
    return tuple(dict.fromkeys(chosen))


def corrupt(
    update: ClientUpdate, received: dict[str, np.ndarray], fault: Fault, seed: int
) -> ClientUpdate:
    """What a misbehaving client sends instead of its honest ``update``.

    Args:
        update: the honest update after local training.
        received: the global model the client started the round from.
        fault: the scenario (its math in the module docstring).
        seed: the client's seed of the round (random directions are drawn from it).

    Returns:
        An update with the same keys, shapes and dtypes (``noise_images`` and ``none``:
        ``update`` itself).
    """
    arrays = dict(update.arrays)
    centroids = np.asarray(arrays[CENTROIDS])
    if fault.scenario == "random_centroids":
        rng = np.random.default_rng(np.random.SeedSequence([seed, 27]))
        directions = rng.standard_normal(centroids.shape)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        arrays[CENTROIDS] = (directions * norms).astype(centroids.dtype)
    elif fault.scenario == "collapsed":
        arrays[CENTROIDS] = np.repeat(centroids[:1], len(centroids), axis=0)
    elif fault.scenario == "poisoned_head":
        for key, value in arrays.items():
            if key != CENTROIDS:
                start = received[key]
                arrays[key] = (start - fault.strength * (value - start)).astype(value.dtype)
    elif fault.scenario == "free_rider":
        arrays = {key: np.array(value, copy=True) for key, value in received.items()}
    else:
        return update
    return replace(update, arrays=arrays)


def misbehave(
    outcome: ClientOutcome,
    received: dict[str, np.ndarray],
    fault: Fault,
    client: int,
    round_index: int,
    seed: int,
) -> ClientOutcome:
    """Client ``client``'s part in round ``round_index`` as the server receives it: its
    update :func:`corrupt`-ed when the fault hits it then (and it finished), else
    ``outcome`` unchanged. ``seed``: the client's seed of the round."""
    if not (outcome.finished and fault.corrupts_updates and fault.hits(client, round_index)):
        return outcome
    return replace(outcome, update=corrupt(outcome.update, received, fault, seed))
