"""A toy aggregator for tests/test_extending.py: one knob and a head rule of its own.

It lives in a module of its own (not in the test) so that the Flower engine's ServerApp, a
separate process, can import the class the pickled job names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fussbench.federation.aggregators import Aggregator
from fussbench.federation.messages import ClientUpdate
from fussbench.model.head import ModelArrays


@dataclass(frozen=True)
class ToyMedian(Aggregator):
    """Head: the coordinate-wise median of the clients' heads; centroids: the element-wise
    median, blended with the previous global centroids.

    Math: theta = median_k theta_k for every head array;
    mu_c = blend * median_k mu_{k,c} + (1 - blend) * mu_c^prev for every centroid index c.

    Attributes:
        weighting: ``"samples"`` or ``"uniform"`` (the median ignores it).
        blend: the median's share of the new centroids, in [0, 1] (``federation.toy_blend``).
    """

    blend: float = 1.0

    def aggregate_head(
        self, updates: Sequence[ClientUpdate], weights: np.ndarray, previous_head: ModelArrays
    ) -> ModelArrays:
        """Every ``head.*`` array: the median over the K clients, float32."""
        return {
            key: np.median(np.stack([update.arrays[key] for update in updates]), axis=0).astype(
                np.float32
            )
            for key in previous_head
        }

    def aggregate_centroids(
        self,
        updates: Sequence[ClientUpdate],
        weights: np.ndarray,
        previous_centroids: np.ndarray,
    ) -> np.ndarray:
        """(n_clusters, dim): the blended element-wise median of the clients' centroids."""
        median = np.median(np.stack([update.centroids for update in updates]), axis=0)
        return self.blend * median + (1.0 - self.blend) * previous_centroids
