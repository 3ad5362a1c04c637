"""FedCC-Auto's question to the clients: score candidate global models on your own images.

The score is the negative cluster loss of each candidate: the mean, over every pixel of a
fixed sample of the client's images, of the best cosine between the pixel's code and the
candidate's centroids. It is what the centroids are trained to maximise (L_cluster =
-mean best cosine, :func:`~fussbench.model.losses.cluster_loss`), needs no labels, and with
the head shared by every candidate costs one head pass for all of them. Higher is better:
centroids that sit where the client's codes are.

:class:`ScoreCandidates` is the :class:`~fussbench.federation.query.Query` that carries the
candidates down and the J scores, and nothing else, back up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from fussbench.evaluation.subsets import evenly_spaced
from fussbench.federation.query import ConfigValue, Query
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, SegmentationModel
from fussbench.model.losses import assign_clusters
from fussbench.model.training import ClientData

_BATCH = 64

SCORES = "scores"
"""Name of the answer's one array: (J,) float64 scores."""

CANDIDATE_CENTROIDS = "candidate_centroids"
"""Name of the (J, n_clusters, dim) candidate centroids among the query's arrays."""


@dataclass(frozen=True)
class ScoreCandidates(Query):
    """FedCC-Auto's query: J candidate global models that share one head.

    Down: the shared ``head.*`` arrays once, the (J, n_clusters, dim) float32 centroids and
    ``max_images`` (the candidates' names stay on the server: the client answers in the
    order of the centroids). Up: ``{"scores": (J,) float64}`` from
    :func:`candidate_scores`, the only thing a client sends back.

    Attributes:
        head: ``head.*`` arrays, float32, shared by all candidates.
        centroids: (J, n_clusters, dim) float32, candidate j's global centroids.
        max_images: how many of its images a client scores on (``federation.score_images``).
    """

    purpose: ClassVar[str] = "scoring"
    answer_keys: ClassVar[tuple[str, ...]] = (SCORES,)

    head: ModelArrays
    centroids: np.ndarray
    max_images: int

    def arrays(self) -> ModelArrays:
        """The shared head's arrays and the candidate centroids."""
        return {**self.head, CANDIDATE_CENTROIDS: self.centroids}

    def config(self) -> dict[str, ConfigValue]:
        """``max_images``."""
        return {"max_images": int(self.max_images)}

    @classmethod
    def rebuild(cls, arrays: ModelArrays, config: Mapping[str, ConfigValue]) -> ScoreCandidates:
        """The query of :meth:`arrays` and :meth:`config`."""
        head = {key: value for key, value in arrays.items() if key != CANDIDATE_CENTROIDS}
        return cls(head, arrays[CANDIDATE_CENTROIDS], int(config["max_images"]))

    def answer(self, data: ClientData) -> ModelArrays:
        """``{"scores": (J,) float64}`` on the client's images (:func:`candidate_scores`)."""
        return {SCORES: candidate_scores(self.head, self.centroids, data, self.max_images)}


def candidate_scores(
    head: ModelArrays, centroids: np.ndarray, data: ClientData, max_images: int
) -> np.ndarray:
    """Each candidate's mean best cosine on the client's images: (J,) float64.

    Args:
        head: ``head.*`` arrays shared by the candidates.
        centroids: (J, n_clusters, dim) candidate centroids.
        data: the client's images (cached features).
        max_images: at most this many images, evenly spaced over the client's
            (:func:`~fussbench.evaluation.subsets.evenly_spaced`, so the same ones every round).

    Returns:
        s_j = mean over the sampled pixels of max_c cos(z, centroids[j, c]), in [-1, 1].
    """
    model = SegmentationModel.from_arrays({**head, CENTROIDS_KEY: centroids[0]}).eval()
    samples = evenly_spaced(data.n_samples, max_images)
    candidates = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    totals = np.zeros(len(centroids), dtype=np.float64)
    pixels = 0
    with torch.inference_mode():
        for start in range(0, len(samples), _BATCH):
            codes = model.head(data.batch(samples[start : start + _BATCH]))
            pixels += codes.shape[0] * codes.shape[2] * codes.shape[3]
            for index, candidate in enumerate(candidates):
                best = assign_clusters(codes, candidate).amax(dim=1)
                totals[index] += best.double().sum().item()
    return totals / max(pixels, 1)
