"""Client side of FedCC-Auto: score candidate global models on the client's own images.

The score is the negative cluster loss of each candidate: the mean, over every pixel of a
fixed sample of the client's images, of the best cosine between the pixel's code and the
candidate's centroids. It is what the centroids are trained to maximise (L_cluster =
-mean best cosine, :func:`~fussbench.model.losses.cluster_loss`), needs no labels, and with
the head shared by every candidate costs one head pass for all of them. Higher is better:
centroids that sit where the client's codes are.
"""

from __future__ import annotations

import numpy as np
import torch

from fussbench.evaluation.subsets import evenly_spaced
from fussbench.model.head import CENTROIDS_KEY, ModelArrays, SegmentationModel
from fussbench.model.losses import assign_clusters
from fussbench.model.training import ClientData

_BATCH = 64


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
