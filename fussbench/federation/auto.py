"""FedCC-Auto (ours): the server picks each round's aggregation by the clients' own scores.

The FUSS paper (arXiv 2505.23292) finds FedCC-kMeans best on simple tasks and FedCC-Maximin
on cluttered ones and asks whether the choice can be made without labels. FedCC-Auto builds
every candidate global model, lets each client score them on its own images with an
unsupervised score (:mod:`fussbench.federation.scoring`) and keeps the candidate with the
best client-weighted score.

Each round :meth:`FedCCAuto.server_round` proposes the candidates, asks the clients that
finished to score them (the :class:`~fussbench.federation.scoring.ScoreCandidates` query,
through the engine's exchange) and chooses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import Aggregator, client_weights, make_aggregator
from fussbench.federation.exchange import Exchange, ServerStep
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.scoring import SCORES, ScoreCandidates
from fussbench.methods import parse_candidate
from fussbench.methods.catalog import DEFAULT_CANDIDATES
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, head_arrays


@dataclass(frozen=True)
class Candidates:
    """The candidate global models of one round.

    Every candidate has the same FedAvg head, so the head travels once (:meth:`query`).

    Attributes:
        names: the J candidate names (``federation.candidates``).
        head: ``head.*`` arrays, float32, shared by all candidates.
        centroids: (J, n_clusters, dim) float32, candidate j's global centroids.
        max_images: how many of its images a client scores on (``federation.score_images``).
    """

    names: tuple[str, ...]
    head: ModelArrays
    centroids: np.ndarray
    max_images: int

    def model(self, index: int) -> ModelArrays:
        """Candidate ``index`` as a full model (head and (n_clusters, dim) centroids)."""
        return {**self.head, CENTROIDS_KEY: self.centroids[index]}

    def query(self) -> ScoreCandidates:
        """What the clients are asked: the candidates without their names."""
        return ScoreCandidates(self.head, self.centroids, self.max_images)


@dataclass(frozen=True)
class Choice:
    """The server's decision of one round.

    Attributes:
        model: the winning candidate, the next global model.
        selection: ``{"candidates": names, "winner": name, "scores": weighted score per
            candidate, "voters": update indices whose scores counted}`` for the round record.
        failures: ``(update index, reason)`` for each client whose scores were left out.
    """

    model: ModelArrays
    selection: dict[str, object]
    failures: list[tuple[int, str]] = field(default_factory=list)


def scores_problem(scores: object, count: int) -> str | None:
    """Why a client's reply cannot be counted (None: it can): not ``count`` finite floats,
    or the reason string of a client that failed to score."""
    if isinstance(scores, str):
        return scores
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (count,):
        return f"scores: expected {count} values, got shape {values.shape}"
    if not np.isfinite(values).all():
        return "scores: non-finite value"
    return None


@dataclass(frozen=True)
class FedCCAuto(Aggregator):
    """FedCC-Auto (ours): each round, the candidate the clients score best becomes global.

    Math: with the J candidate aggregators A_1..A_J (``candidates``), each candidate global
    model is G_j = A_j(updates, previous): FedAvg head (identical for every j) and A_j's
    centroids. Client k scores each on its own images
    (:func:`~fussbench.federation.scoring.candidate_scores`): s_{k,j} = mean over the pixels
    of a fixed, evenly spaced sample of its images of max_c cos(z, g_{j,c}), z the pixel's
    code under the shared head: the negative cluster loss of G_j on client k, the objective
    the centroids are trained on, label-free and one head pass for all J candidates. With the
    client weights w_k renormalised over the set V of clients whose scores are J finite
    numbers (``federation.weighting``), S_j = sum_{k in V} w_k s_{k,j}, and the next global
    model is G_{j*}, j* = argmax_j S_j (the first candidate in ``candidates`` on ties). A
    hard choice, not a blend: the global model is always one a fixed method would produce
    from the same updates, so the record says which.

    Known limit of the score: it rewards centroids that sit in the dense parts of the
    clients' codes and does not penalise two centroids covering the same part, so averaged
    centroids (FedAvg, FedCC-Matched) can outscore spread-out ones (FedCC-Maximin) even
    where the spread-out ones segment better; whether it tracks mIoU is what the issue's
    paper-profile measurement is for.

    Contract: a client returns exactly J floats, nothing else. A client whose scores are
    not J finite numbers (or that fails to score) is left out of the vote and recorded as a
    failing client; its update still entered the candidates, built before the scores.

    Attributes:
        weighting: ``"samples"`` (default) or ``"uniform"``; for the head, the candidates
            and the vote.
        candidates: ``<aggregator>[.<mode>]`` names (``federation.candidates``), default
            FedCC-kMeans, FedCC-Maximin, FedCC-Matched and FedAvg; at least one, no repeats.
        score_images: at most this many of its images a client scores on
            (``federation.score_images``), default 32, must be >= 1.
        seed: random state of the candidates that take one (k-means), default 0.
    """

    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    score_images: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.candidates:
            raise FussbenchError("federation.candidates is empty; name at least one aggregator")
        if len(set(self.candidates)) != len(self.candidates):
            raise FussbenchError(
                f"federation.candidates repeats a name: {', '.join(self.candidates)}"
            )
        for name in self.candidates:
            parse_candidate(name)
        if self.score_images < 1:
            raise FussbenchError(f"federation.score_images must be >= 1, got {self.score_images}")

    def members(self) -> list[Aggregator]:
        """The candidate aggregators, configured with this one's weighting and seed."""
        built = []
        for text in self.candidates:
            name, mode = parse_candidate(text)
            built.append(make_aggregator(name, weighting=self.weighting, mode=mode, seed=self.seed))
        return built

    def propose(self, updates: Sequence[ClientUpdate], previous: ModelArrays) -> Candidates:
        """Every candidate's global model from this round's updates (the message down).

        Raises:
            FussbenchError: a candidate's head differs from the first candidate's (an
                aggregator with a head rule of its own): the candidates share one head.
        """
        models = [member.aggregate(updates, previous) for member in self.members()]
        head = head_arrays(models[0])
        for name, model in zip(self.candidates[1:], models[1:], strict=True):
            if any(not np.array_equal(value, model[key]) for key, value in head.items()):
                raise FussbenchError(
                    f"fedcc_auto: candidate '{name}' merges the head by a rule of its own, and "
                    "the candidates share one head; leave it out of federation.candidates"
                )
        centroids = np.stack([model[CENTROIDS_KEY] for model in models]).astype(np.float32)
        return Candidates(tuple(self.candidates), head, centroids, self.score_images)

    def choose(
        self,
        candidates: Candidates,
        updates: Sequence[ClientUpdate],
        scores: Sequence[object],
        min_clients: int = 1,
        numbers: Sequence[int] | None = None,
    ) -> Choice:
        """The winning candidate by the weighted scores of the clients that sent usable ones.

        Args:
            candidates: what :meth:`propose` returned.
            updates: the updates the candidates were built from (for the weights).
            scores: per update, the client's J scores, or a reason string if it failed.
            min_clients: fewer usable score vectors stop the run.
            numbers: the client number of each update, for the error message (default:
                0..K-1).

        Raises:
            FussbenchError: fewer than ``min_clients`` clients sent usable scores.
        """
        count = len(candidates.names)
        problems = [scores_problem(item, count) for item in scores]
        voters = [index for index, problem in enumerate(problems) if problem is None]
        failures = [(index, problem) for index, problem in enumerate(problems) if problem]
        if len(voters) < max(min_clients, 1):
            labels = list(range(len(scores))) if numbers is None else list(numbers)
            reasons = "; ".join(f"client {labels[index]}: {reason}" for index, reason in failures)
            raise FussbenchError(
                f"fedcc_auto: only {len(voters)} of {len(scores)} clients sent usable scores "
                f"(federation.min_clients = {min_clients}): {reasons}"
            )
        weights = client_weights([updates[index] for index in voters], self.weighting)
        matrix = np.stack([np.asarray(scores[index], dtype=np.float64) for index in voters])
        weighted = weights @ matrix
        winner = int(np.argmax(weighted))
        selection = {
            "candidates": list(candidates.names),
            "winner": candidates.names[winner],
            "scores": [float(value) for value in weighted],
            "voters": voters,
        }
        return Choice(candidates.model(winner), selection, failures)

    def server_round(
        self, updates: Sequence[ClientUpdate], previous: ModelArrays, exchange: Exchange
    ) -> ServerStep:
        """Candidates down, scores up, the choice: :meth:`propose`, the
        :class:`~fussbench.federation.scoring.ScoreCandidates` query to the clients of
        ``updates``, :meth:`choose`. The selection's voters and the failures are client
        numbers.

        Raises:
            FussbenchError: fewer than ``exchange.min_clients`` clients sent usable scores.
        """
        candidates = self.propose(updates, previous)
        replies = exchange.ask(candidates.query())
        scores = [
            reply.failure if reply.answer is None else reply.answer[SCORES] for reply in replies
        ]
        clients = exchange.clients
        choice = self.choose(candidates, updates, scores, exchange.min_clients, clients)
        voters = [clients[index] for index in choice.selection["voters"]]
        failures = [
            {"client": clients[index], "reason": reason} for index, reason in choice.failures
        ]
        return ServerStep(choice.model, {**choice.selection, "voters": voters}, failures)

    def aggregate(self, updates: Sequence[ClientUpdate], previous: ModelArrays) -> ModelArrays:
        """Not available: the choice needs the clients' scores (see :meth:`server_round`).

        Raises:
            FussbenchError: always.
        """
        raise FussbenchError(
            "fedcc_auto needs the clients' scores each round; run it through an engine, "
            "which calls FedCCAuto.server_round"
        )
