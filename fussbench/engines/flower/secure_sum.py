"""What a client hands secure aggregation, and how the server turns SecAgg+'s result back
into the sums its aggregator reads (``privacy.secure_aggregation`` on the ``flower`` engine).

Numpy only; the protocol itself is Flower's (:mod:`fussbench.engines.flower.secure`).

What SecAgg+ computes. Client k hands Flower's ``secaggplus_mod`` a weight m_k (its
``num_examples``) and a list of float arrays p_k. It scales them by r_k = m_k / M
(M: the public ``max_weight``), clips every coordinate to [-c, c], quantises it into
[0, Q] by stochastic rounding and masks it; the masks cancel in the sum, and the server
learns, for the clients A whose masked vectors entered the sum, only

    avg = sum_{k in A} r_k p_k / sum_{k in A} r_k        (coordinate by coordinate).

What a client hands it (:func:`summands`), for a method whose server needs only a
weighted sum (registry ``server_needs: weighted_sum``):

- m_k = n_k, its image count, under ``federation.weighting: samples``, 1 under
  ``uniform``; M = the sum of the K clients' m_k, so r_k <= 1, and sum_k r_k = 1 when
  every client takes part.
- weighted arrays (the head, and the centroids unless the clients send code sums):
  p_k = theta_k - g, the change of the global model g the client received. The server
  gets sum_A w_k theta_k = g + avg, w_k = m_k / sum_{j in A} m_j: FedAvg's weights.
- plain arrays (the code sums in the centroids' place and the per-centroid pixel counts
  of a method whose clients send code sums, FedCC-Sums): p_k = x_k / (m_k s) with
  s = X / (c M) and X the pixel count of the largest client, which bounds every
  coordinate of a code sum (a sum of unit vectors) and every count; so
  |r_k p_k| = c |x_k| / X <= c, never clipped. The server gets
  sum_A x_k = avg * s * sum_{k in A} m_k (the counts rounded to integers).

The server hands its aggregator one update holding these sums (:func:`summed_update`): for
a method whose server needs only a weighted sum, the aggregator's step on it (weight 1)
is its step on the updates one by one, so the method's math stays in its aggregator.

Precision. Q = 2^(32 - ceil(log2(K + 1))), the largest power of two whose K-fold sum stays
below SecAgg+'s modulus 2^32 (:data:`MODULUS_RANGE`): 2^30 for 2 or 3 clients, 2^27 for 18;
c = :data:`CLIPPING_RANGE` = 8 (Flower's default). Stochastic rounding moves each client's
r_k p_k by less than one step 2c / Q, and SecAgg+ rounds each r_k to a multiple of 1 / Q, so
with rho = sum_{k in A} r_k and D the largest |p_k| coordinate, every coordinate of a
weighted result is within

    |A| (2c + D) / (Q rho)

of the exact weighted sum (3.2e-8 for 2 clients, D < 1, below float32's resolution of a
weight near 1), and a plain sum within about 2 |A| X / (Q rho) (+ a relative
|A| / (Q min_k r_k)): for 18 clients of at most 1.2e6 feature pixels, 0.3 pixel counts.
A weighted coordinate that moves by more than c / r_k >= 8 in one round is clipped by
SecAgg+ (an honest update moves far less).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.federation.messages import ClientUpdate
from fussbench.methods.registry import MethodSpec
from fussbench.model.head import CENTROIDS_KEY, ModelArrays

COUNTS = "cluster_counts"
"""The plain summand that carries a client's per-centroid pixel counts."""

CLIPPING_RANGE = 8.0
"""c: SecAgg+ clips every scaled summand coordinate r_k p_k to [-c, c]."""

MODULUS_RANGE = 2**32
"""SecAgg+'s modulus: masks and sums are integers modulo it (Flower's default)."""


@dataclass(frozen=True)
class SumPlan:
    """What every client hands SecAgg+ and how the server reads its result: public, the same
    on the server and on every client (it travels in each client's train instruction).

    Attributes:
        weighted: the keys summed with the clients' weights, as changes of the global model.
        plain: the keys summed with weight 1 (code sums in the centroids' place,
            :data:`COUNTS`), in this order after the weighted ones.
        uniform: every client weighs 1 (``federation.weighting: uniform``); else its image
            count.
        total_weight: M, the sum of the K clients' weights (SecAgg+'s ``max_weight``).
        plain_bound: X, the feature pixels of the largest client.
        n_clients: K.
    """

    weighted: tuple[str, ...]
    plain: tuple[str, ...]
    uniform: bool
    total_weight: int
    plain_bound: int
    n_clients: int

    @property
    def quantization_range(self) -> int:
        """Q = 2^(32 - ceil(log2(K + 1))): K quantised values in [0, Q] sum below 2^32."""
        return MODULUS_RANGE >> math.ceil(math.log2(self.n_clients + 1))

    @property
    def plain_scale(self) -> float:
        """s = X / (c M): a plain summand is x_k / (m_k s)."""
        return self.plain_bound / (CLIPPING_RANGE * self.total_weight)

    def weight(self, n_samples: int) -> int:
        """m_k of a client of ``n_samples`` images."""
        return 1 if self.uniform else n_samples

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SumPlan:
        values = json.loads(text)
        return cls(
            **{**values, "weighted": tuple(values["weighted"]), "plain": tuple(values["plain"])}
        )


def sum_plan(
    spec: MethodSpec,
    mode: str | None,
    weighting: str,
    keys: Iterable[str],
    client_sizes: Sequence[int],
    row_pixels: int,
) -> SumPlan:
    """The plan of a run of the method ``spec`` (its registry entry says what its clients
    send: code sums and counts are plain sums, the rest is weighted).

    Args:
        mode: ``federation.mode`` (None: the method's default).
        weighting: ``federation.weighting``.
        keys: the model's array keys (``head.*`` and ``centroids``).
        client_sizes: n_k, the training rows (images) of each of the K clients.
        row_pixels: h * w, the feature pixels of one row.

    Raises:
        FussbenchError: a method whose server needs each client's update, or fewer than 2
            clients (SecAgg+ sums at least two vectors).
    """
    if spec.server_needs != "weighted_sum":
        raise FussbenchError(
            f"secure aggregation sums the updates, and {spec.name}'s server needs each one "
            "(registry: server_needs); set privacy.secure_aggregation false"
        )
    if len(client_sizes) < 2:
        raise FussbenchError(
            f"secure aggregation sums at least 2 clients' updates, the partition has "
            f"{len(client_sizes)}; set partition.n_clients >= 2 or privacy.secure_aggregation "
            "false"
        )
    plain = ((CENTROIDS_KEY,) if spec.sends_code_sums else ()) + (
        (COUNTS,) if spec.reads_cluster_counts(mode) else ()
    )
    uniform = weighting == "uniform"
    return SumPlan(
        weighted=tuple(sorted(key for key in keys if key not in plain)),
        plain=plain,
        uniform=uniform,
        total_weight=len(client_sizes) if uniform else int(sum(client_sizes)),
        plain_bound=int(max(client_sizes)) * row_pixels,
        n_clients=len(client_sizes),
    )


def summands(
    update: ClientUpdate, received: ModelArrays, plan: SumPlan
) -> tuple[int, list[np.ndarray]]:
    """What client k hands SecAgg+: its weight m_k and, float64 in the plan's order, the
    weighted arrays' changes theta_k - g and the plain arrays x_k / (m_k s).

    Raises:
        FussbenchError: the update holds other arrays than the plan sums.
    """
    expected = {*plan.weighted, *plan.plain} - {COUNTS}
    counted = update.cluster_counts is not None
    if set(update.arrays) != expected or counted != (COUNTS in plan.plain):
        raise FussbenchError(
            f"the update holds {sorted(update.arrays)} (counts: {counted}), the secure sum "
            f"expects {sorted(expected)} (counts: {COUNTS in plan.plain})"
        )
    weight = plan.weight(update.n_samples)
    weighted = [
        np.asarray(update.arrays[key], np.float64) - np.asarray(received[key], np.float64)
        for key in plan.weighted
    ]
    sums = {**update.arrays, COUNTS: update.cluster_counts}
    scale = weight * plan.plain_scale
    plain = [np.asarray(sums[key], np.float64) / scale for key in plan.plain]
    return weight, weighted + plain


def summed_update(
    average: Sequence[np.ndarray], active_weight: int, received: ModelArrays, plan: SumPlan
) -> ClientUpdate:
    """The one update the aggregator receives: the weighted arrays' weighted sum
    g + avg and the plain arrays' sum avg * s * sum_A m_k (counts rounded), float32.

    Args:
        average: SecAgg+'s result, one array per summand in the plan's order.
        active_weight: sum_{k in A} m_k of the clients whose vectors entered the sum (the
            update's ``n_samples``).
        received: the global model g the clients started the round from.

    Raises:
        FussbenchError: ``average`` does not hold one array per summand.
    """
    if len(average) != len(plan.weighted) + len(plan.plain):
        raise FussbenchError(
            f"SecAgg+ returned {len(average)} arrays, the plan sums "
            f"{len(plan.weighted) + len(plan.plain)}"
        )
    arrays = {
        key: (np.asarray(received[key], np.float64) + value).astype(np.float32)
        for key, value in zip(plan.weighted, average, strict=False)
    }
    scale = plan.plain_scale * active_weight
    sums = {
        key: np.asarray(value, np.float64) * scale
        for key, value in zip(plan.plain, average[len(plan.weighted) :], strict=True)
    }
    counts = sums.pop(COUNTS, None)
    arrays.update({key: value.astype(np.float32) for key, value in sums.items()})
    return ClientUpdate(
        arrays=arrays,
        n_samples=active_weight,
        cluster_counts=None if counts is None else np.maximum(np.rint(counts), 0).astype(np.int64),
    )
