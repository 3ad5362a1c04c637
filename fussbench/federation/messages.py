"""What crosses the client/server boundary, and nothing more.

A client sends a :class:`ClientUpdate`: its model as arrays (head weights and centroids,
or, for a method whose registry entry says its clients send code sums, those sums in the
centroids' place), how many images it trained on, and, only for an aggregator that uses
them, how many of its pixels each centroid won. The server sends back the global model as
arrays. Features, images, labels and neighbour lists never leave a client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fussbench.model.head import CENTROIDS_KEY, ModelArrays, head_arrays


@dataclass(frozen=True)
class ClientUpdate:
    """One client's message to the server after local training.

    Attributes:
        arrays: ``head.*`` weights and ``centroids`` (n_clusters, dim), float32; under
            ``LocalObjective.code_sums``, ``centroids`` holds the code sums instead (row c:
            the sum of the unit codes of the client's pixels its centroid c won), and the
            trained centroids stay on the client.
        n_samples: number of training images on the client.
        cluster_counts: (n_clusters,) int64, pixels of the client's own images assigned to
            each of its centroids (a histogram; no per-image information). None unless the
            aggregator uses them (``LocalObjective.cluster_counts``): a client sends nothing
            the server does not need.
    """

    arrays: ModelArrays
    n_samples: int
    cluster_counts: np.ndarray | None = None

    @property
    def head(self) -> ModelArrays:
        """The ``head.*`` arrays."""
        return head_arrays(self.arrays)

    @property
    def centroids(self) -> np.ndarray:
        """(n_clusters, dim) float32: the centroids, or the code sums in their place."""
        return self.arrays[CENTROIDS_KEY]

    def nbytes(self) -> int:
        """Bytes of payload this message carries (arrays, counts and the sample count)."""
        arrays = sum(value.nbytes for value in self.arrays.values())
        counts = 0 if self.cluster_counts is None else self.cluster_counts.nbytes
        return arrays + counts + np.dtype(np.int64).itemsize


def model_nbytes(arrays: ModelArrays) -> int:
    """Bytes of payload of a model sent as arrays (what the server broadcasts)."""
    return sum(value.nbytes for value in arrays.values())
