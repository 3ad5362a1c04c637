"""Horizontal-flip averaging of the final predictions (``evaluation.flip: true``).

STEGO's evaluation, which the FUSS authors' code keeps, runs the network on an image x and
on its mirror image flip(x), flips the second output back and averages the two codes
before assigning clusters (``code = (code1 + code2.flip(dims=[3])) / 2``). Here, with h
the head, M the centroids (K, D) and F the frozen backbone, every pixel (i, j) of the
(h', w') feature grid gets

    c(x) = ½ · (h(F(x)) + flip(h(F(flip(x)))))                     (D, h', w')
    s_k(x)[i, j] = cos(c(x)[:, i, j], M_k)                          (K, h', w')

and then, as without flipping, the scores are upsampled bilinearly to the labels' size,
each pixel goes to its best-scoring cluster, and the clusters are matched to classes over
the whole split. ``flip`` reverses the width axis: with the image's width a multiple of
the backbone's stride, cell j of flip(x)'s grid covers exactly the pixels of cell
w' − 1 − j of x's, so the two codes are aligned cell for cell.

What is averaged is the head's code, not the cosine scores or the probabilities, because
that is what STEGO and the FUSS code average: the mean code is normalised again before
the cosine, so a pixel whose two codes point the same way keeps the score of either, and
the CRF (``evaluation.crf``) takes its probabilities from the mean code as STEGO's does.

The features F(flip(x)) are computed once by the backbone and cached beside the split's
features (:mod:`fussbench.features.flipped`); nothing here runs the backbone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fussbench.errors import FussbenchError
from fussbench.model.head import ModelArrays, SegmentationModel
from fussbench.model.losses import assign_clusters


class FlipPairs:
    """Each image's cached features and its mirror image's, read together: row i is
    (2, C, h, w), ``features[i]`` then ``flipped[i]`` (as cached, not flipped back).

    ``pairs[start:stop]`` reads both arrays' rows (B, 2, C, h, w); only slices are read,
    the way :func:`~fussbench.evaluation.predict.iter_cluster_maps` reads its rows.
    """

    def __init__(self, features: np.ndarray, flipped: np.ndarray) -> None:
        if tuple(features.shape) != tuple(flipped.shape):
            raise FussbenchError(
                f"flipped features {tuple(flipped.shape)} do not match the features "
                f"{tuple(features.shape)}; rerun `fussbench features --flip`"
            )
        self._features = features
        self._flipped = flipped
        self.shape = (features.shape[0], 2, *features.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.stack([self._features[rows], self._flipped[rows]], axis=1)


def flip_averaged_scores(
    arrays: ModelArrays,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """The model's scores of a batch of :class:`FlipPairs` rows (B, 2, C, h, w) as the
    module docstring defines them: cosine (B, K, h, w) of the mean of the image's code and
    its mirror image's code flipped back; and the model's number of clusters K."""
    model = SegmentationModel.from_arrays(arrays).eval()

    def score(pairs: torch.Tensor) -> torch.Tensor:
        codes = model.head(pairs.flatten(0, 1)).unflatten(0, (pairs.shape[0], 2))
        mean = 0.5 * (codes[:, 0] + codes[:, 1].flip(-1))
        return assign_clusters(mean, model.centroids)

    return score, model.n_clusters
