"""The Gaussian noise of client-level DP, on the client (``local``) or on the server's sum
(``central``), and the round's record of it: the same functions on both engines.

Shapes: a model is named float32 arrays, ``head.*`` and ``centroids`` (n_clusters, dim);
deltas are float64 arrays of the same shapes. Block b of array ``key`` is
:func:`~fussbench.privacy.clipping.block_of` (head or centroids), with clip norm C_b.

Calibration, per block: a client's clipped delta clip(Delta_k) has ||Delta_{k,b}|| <= C_b
in each block b (:mod:`.clipping`), and each block gets noise xi_b ~ N(0, sigma^2 C_b^2 I),
sigma = ``privacy.noise_multiplier``. So every block carries the same noise relative to
its bound, and the head (about 2.5e5 coordinates) and the centroids (n_clusters x dim)
keep bounds that fit their own update norms. One round is then the composition of two
Gaussian mechanisms of multiplier sigma, i.e. one of multiplier sigma / sqrt(2) on the
whitened update (:mod:`.accounting` accounts it so). A single joint bound
C = sqrt(C_h^2 + C_c^2) with noise sigma' C on every coordinate is the alternative; it
coincides with this one when C_h = C_c and otherwise noises the smaller block with the
larger block's scale.

``central`` (DP-FedAvg's fixed-denominator estimator, McMahan et al. 2018): with S the
clients that took part and finished, q = ``privacy.sample_rate`` and K clients,

    theta' = theta_g + (sum_{k in S} clip(Delta_k) + xi) / (q K)

for the head and the centroids alike. Adding or removing one client moves the sum by at
most C_h in the head block and C_c in the centroid block (its L2 sensitivity per block).
Every client weighs 1 / (q K), whatever its image count: uniform weights, as Flower's DP
strategies require (params refuse ``federation.weighting: samples`` with it). Only
methods whose server needs nothing but a weighted sum (registry ``server_needs:
weighted_sum``) take it; the estimator is FedAvg's step, and FedCC-Sums' centroids take
a Lloyd step on the noised sum of its clients' code shares instead (:class:`NoisySum`,
sensitivity 1 by construction, so no clip norm to choose). The clients
send their updates as they are and the server clips them, so it sees every update (no
secure aggregation here): central DP protects the global models everyone receives, not
the clients from the server.

``local``: client k sends theta_g + clip(Delta_k) + xi_k, drawn on the client; the server
aggregates what arrives with the method's own rule, so any federated method takes it.

Noise comes from seeds derived from the run seed, the round and, for ``local``, the
client (its round seed ``client_seed``), so both engines draw the same numbers. Flower's
``DifferentialPrivacyServerSideFixedClipping`` / ``ClientSideFixedClipping`` and
``LocalDpMod`` are not used: they clip one vector with one bound, draw unseeded noise from
numpy's global generator, wrap FedAvg-style strategies whose replies are plain
ArrayRecords, and (``LocalDpMod``) read legacy FitRes messages, none of which fits
fussbench's strategy or gives the in-process numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fussbench.federation.aggregators import Aggregator
from fussbench.federation.exchange import Exchange, ServerStep
from fussbench.federation.messages import ClientUpdate
from fussbench.federation.outcome import ClientOutcome
from fussbench.federation.record import RoundRecord
from fussbench.model.head import CENTROIDS_KEY, ModelArrays
from fussbench.params import PrivacyParams
from fussbench.privacy.accounting import epsilon
from fussbench.privacy.clipping import CENTROIDS, block_of, bounds, clip, clipped_delta

SHARE_BOUND = 1.0
"""The L2 bound of a FedCC-Sums client's code shares (:func:`code_shares`)."""

LOCAL_STREAM = 2902
CENTRAL_STREAM = 2903
"""Tag the noise streams apart from the other draws of the same seeds."""


def block_noise(
    shapes: Mapping[str, tuple[int, ...]],
    sigma: float,
    block_bounds: Mapping[str, float],
    seed: np.random.SeedSequence,
) -> ModelArrays:
    """float64 noise of each array: xi[key] ~ N(0, (sigma C_b)^2) per coordinate, b the
    key's block and C_b its bound in ``block_bounds``; drawn key by key in sorted order
    from ``seed``."""
    rng = np.random.default_rng(seed)
    return {
        key: rng.standard_normal(shapes[key]) * (sigma * block_bounds[block_of(key)])
        for key in sorted(shapes)
    }


def code_shares(update: ClientUpdate) -> np.ndarray:
    """A FedCC-Sums client's centroid block under ``central``: its code sums over its
    pixel count, A_k = S_k / n_k with n_k = sum_c n_{k,c}, (n_clusters, dim) float64.

    Bound: every code is a unit vector, so ||S_{k,c}|| <= n_{k,c} and
    ||A_k||_F <= sum_c ||S_{k,c}|| / n_k <= 1 = :data:`SHARE_BOUND` whatever the data;
    clipping to it only guards against rounding. Every client weighs the same (central's
    uniform weights), whatever its pixel count."""
    total = max(int(np.sum(update.cluster_counts)), 1)
    return clip(np.asarray(update.centroids, np.float64) / total, SHARE_BOUND)


def local_release(
    update: ClientUpdate, received: ModelArrays, privacy: PrivacyParams, seed: int
) -> ClientUpdate:
    """What a client sends under ``local``: theta_g + clip(Delta) + xi for every array.

    Args:
        update: the client's update after local training (its arrays have the keys and
            shapes of ``received``).
        received: the global model it started the round from.
        privacy: the mechanism's settings.
        seed: the client's seed of the round (``client_seed(run seed, round, client)``).

    Returns:
        ``update`` with the same keys, shapes and dtypes, its arrays noised; its image
        count and counts unchanged.
    """
    deltas = clipped_delta(update.arrays, received, bounds(privacy))
    shapes = {key: np.shape(value) for key, value in deltas.items()}
    stream = np.random.SeedSequence([seed, LOCAL_STREAM])
    noise = block_noise(shapes, privacy.noise_multiplier, bounds(privacy), stream)
    arrays = {
        key: (received[key] + deltas[key] + noise[key]).astype(value.dtype)
        for key, value in update.arrays.items()
    }
    return replace(update, arrays=arrays)


def release(
    outcome: ClientOutcome, received: ModelArrays, privacy: PrivacyParams, seed: int
) -> ClientOutcome:
    """Client's part in a round as the server receives it: under ``local`` a finished
    client's update passes :func:`local_release`; otherwise ``outcome`` unchanged.
    ``seed``: the client's seed of the round."""
    if privacy.mechanism != "local" or not outcome.finished:
        return outcome
    return replace(outcome, update=local_release(outcome.update, received, privacy, seed))


@dataclass(frozen=True)
class NoisySum(Aggregator):
    """``central``: the noised sum of the clipped deltas over the expected number of
    participants (module docstring); a round in which nobody took part still moves the
    model by the noise, so the release does not tell who took part.

    With ``code_sums`` (FedCC-Sums, whose clients send code sums in the centroids' place)
    the centroid block is the federated Lloyd step on noised sums instead, the spherical
    form of DP-Lloyd (Blum, Dwork, McSherry and Nissim, "Practical Privacy: the SuLQ
    Framework", PODS 2005): with A_k the client's code shares (:func:`code_shares`,
    ||A_k|| <= 1) and xi_c ~ N(0, sigma^2 I),

        g'_c = normalise(sum_{k in S} A_{k,c} + xi_c)

    (rows whose noised sum is exactly zero keep g_c). Counts cancel in the normalisation,
    so none is released. Adding or removing one client moves the sum by at most 1: the
    block's sensitivity is 1 and its noise std sigma, one Gaussian of multiplier sigma as
    for the other blocks, so the accountant is unchanged.

    Attributes:
        privacy: the mechanism's settings (sigma, C_h, C_c).
        expected: q K, the fixed denominator.
        seed, round_index: the run seed and the round (1-based), the noise's seed.
        code_sums: the clients send code sums (the registry's ``client_sends``).
    """

    weighting: str = "uniform"
    privacy: PrivacyParams = field(default_factory=PrivacyParams, kw_only=True)
    expected: float = field(default=1.0, kw_only=True)
    seed: int = field(default=0, kw_only=True)
    round_index: int = field(default=1, kw_only=True)
    code_sums: bool = field(default=False, kw_only=True)

    def aggregate(self, updates: Sequence[ClientUpdate], previous: ModelArrays) -> ModelArrays:
        """theta' = theta_g + (sum_k clip(Delta_k) + xi) / (q K), float32, the keys of
        ``previous`` (the centroids by the Lloyd step above under ``code_sums``);
        ``updates`` may be empty."""
        block_bounds = bounds(self.privacy)
        if self.code_sums:
            block_bounds[CENTROIDS] = SHARE_BOUND
        total = {key: np.zeros(np.shape(value)) for key, value in previous.items()}
        for update in updates:
            deltas = clipped_delta(update.arrays, previous, block_bounds)
            if self.code_sums:  # the centroids' place holds code sums, not centroids
                deltas[CENTROIDS_KEY] = code_shares(update)
            for key, delta in deltas.items():
                total[key] += delta
        shapes = {key: np.shape(value) for key, value in previous.items()}
        seed = np.random.SeedSequence([self.seed, self.round_index, CENTRAL_STREAM])
        noise = block_noise(shapes, self.privacy.noise_multiplier, block_bounds, seed)
        model = {
            key: (value + (total[key] + noise[key]) / self.expected).astype(np.float32)
            for key, value in previous.items()
        }
        if self.code_sums:
            model[CENTROIDS_KEY] = _lloyd_step(
                total[CENTROIDS_KEY] + noise[CENTROIDS_KEY], previous[CENTROIDS_KEY]
            )
        return model


def _lloyd_step(noised: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(n_clusters, dim) float32: each row of the noised share sum normalised to unit
    length; a row that is exactly zero keeps ``previous``'s."""
    norms = np.linalg.norm(noised, axis=1, keepdims=True)
    unit = noised / np.where(norms > 0, norms, 1.0)
    return np.where(norms > 0, unit, previous).astype(np.float32)


@dataclass(frozen=True)
class SampledRound(Aggregator):
    """``local`` with client sampling: ``inner``'s step, or the previous model in a round
    in which no client took part.

    Attributes:
        inner: the method's aggregator.
    """

    inner: Aggregator = field(kw_only=True)

    def server_round(
        self, updates: Sequence[ClientUpdate], previous: ModelArrays, exchange: Exchange
    ) -> ServerStep:
        """``inner.server_round``, or ``ServerStep(previous)`` without updates."""
        if not updates:
            return ServerStep(dict(previous))
        return self.inner.server_round(updates, previous, exchange)


def round_aggregator(
    aggregator: Aggregator,
    privacy: PrivacyParams,
    seed: int,
    round_index: int,
    n_clients: int,
    code_sums: bool = False,
) -> Aggregator:
    """The server's aggregator for round ``round_index`` of a run of ``n_clients`` clients
    and run seed ``seed``: :class:`NoisySum` under ``central`` (its Lloyd step when the
    clients send ``code_sums``), :class:`SampledRound` under sampled ``local``, else
    ``aggregator`` itself."""
    if privacy.mechanism == "central":
        expected = privacy.sample_rate * n_clients
        return NoisySum(
            privacy=privacy,
            expected=expected,
            seed=seed,
            round_index=round_index,
            code_sums=code_sums,
        )
    if privacy.sample_rate < 1.0:
        return SampledRound(inner=aggregator)
    return aggregator


def stamp(
    record: RoundRecord, outcomes: Sequence[ClientOutcome], privacy: PrivacyParams
) -> RoundRecord:
    """``record`` with the clients sampled and ε spent after its round, under a privacy
    mechanism; ``record`` itself without one."""
    if not privacy.on:
        return record
    sampled = [client for client, outcome in enumerate(outcomes) if outcome.sampled]
    return replace(record, sampled=sampled, epsilon=epsilon(privacy, record.round))
