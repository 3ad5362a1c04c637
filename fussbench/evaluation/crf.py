"""Dense CRF refinement of a model's predictions at evaluation (``evaluation.crf: true``).

STEGO and the FUSS authors' code refine the final predictions with a fully connected CRF
(Kraehenbuehl and Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian Edge
Potentials", NIPS 2011) over the image's pixels: unaries from the cluster probabilities,
a smoothness kernel over positions and an appearance kernel over positions and colours.
The settings are STEGO's (``crf.py``): 10 iterations, smoothness weight 3 at 1 pixel,
appearance weight 4 at 67 pixels and 3 colour levels; probabilities are
softmax(2 · cosine) over the clusters, as STEGO's cluster probe gives them.

Needs ``pydensecrf2`` (``pip install 'fussbench[crf]'``). Only the evaluation uses it:
training and the federation never do, and the run without it is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.evaluation.predict import Evaluation, evaluate_clusters, scored_rows
from fussbench.features.config import BackboneConfig
from fussbench.model.head import CENTROIDS_KEY, ModelArrays
from fussbench.paths import raw_dir

ITERATIONS = 10
SMOOTHNESS_WEIGHT, SMOOTHNESS_XY = 3, 1
APPEARANCE_WEIGHT, APPEARANCE_XY, APPEARANCE_RGB = 4, 67, 3
PROBE_ALPHA = 2.0
"""Cluster probabilities are softmax(PROBE_ALPHA · cosine(code, centroid))."""


def _densecrf():
    """The ``pydensecrf.densecrf`` module of pydensecrf2, or one line saying how to get it."""
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError as error:
        raise FussbenchError(
            "evaluation.crf: true needs pydensecrf2: pip install 'fussbench[crf]' "
            "(or set evaluation.crf: false)"
        ) from error
    return densecrf


def refine(image: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The CRF's labelling (H, W) int64 of one image (H, W, 3) uint8 from its cluster
    probabilities (K, H, W) (each pixel's K values sum to 1)."""
    densecrf = _densecrf()
    n_clusters, height, width = probabilities.shape
    crf = densecrf.DenseCRF2D(width, height, n_clusters)
    unary = -np.log(np.clip(probabilities, 1e-8, 1.0)).reshape(n_clusters, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=SMOOTHNESS_XY, compat=SMOOTHNESS_WEIGHT)
    crf.addPairwiseBilateral(
        sxy=APPEARANCE_XY,
        srgb=APPEARANCE_RGB,
        rgbim=np.require(image, np.uint8, ["C", "W"]),  # the wrapper wants a writable buffer
        compat=APPEARANCE_WEIGHT,
    )
    marginals = np.asarray(crf.inference(ITERATIONS)).reshape(n_clusters, height, width)
    return marginals.argmax(axis=0).astype(np.int64)


def crf_cluster_maps(
    arrays: ModelArrays,
    features: np.ndarray,
    images: Iterable[np.ndarray],
    batch_size: int = 16,
    flipped: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Each image's CRF-refined clusters (H, W) uint8 (int16 over 255 clusters): the
    model's probabilities on features (N, C, h, w) (flip-averaged with ``flipped``
    (N, C, h, w), see :func:`~fussbench.evaluation.predict.scored_rows`), upsampled
    bilinearly to its image (H, W, 3) uint8 (``images``: N of them, in the features'
    order), then :func:`refine`."""
    rows, score, n_clusters = scored_rows(arrays, features, flipped)
    dtype = np.uint8 if n_clusters <= 255 else np.int16
    images = iter(images)
    for start in range(0, rows.shape[0], batch_size):
        batch = torch.from_numpy(np.asarray(rows[start : start + batch_size], np.float32))
        with torch.inference_mode():
            scores = score(batch)
        for image_scores in scores.split(1):
            image = next(images)
            with torch.inference_mode():
                upsampled = F.interpolate(
                    image_scores, size=image.shape[:2], mode="bilinear", align_corners=False
                )
                probabilities = torch.softmax(PROBE_ALPHA * upsampled[0], dim=0).numpy()
            yield refine(image, probabilities).astype(dtype)


def evaluate_with_crf(
    arrays: ModelArrays,
    features: np.ndarray,
    labels: np.ndarray,
    images: Iterable[np.ndarray],
    n_classes: int,
    matching: str = "hungarian",
    flipped: np.ndarray | None = None,
) -> Evaluation:
    """:func:`~fussbench.evaluation.predict.evaluate_model` with every prediction refined
    by the CRF; ``images``: (H, W, 3) uint8 at the labels' size (H, W), in row order;
    ``flipped``: as there."""
    n_clusters = len(arrays[CENTROIDS_KEY])
    clusters = crf_cluster_maps(arrays, features, images, flipped=flipped)
    return evaluate_clusters(clusters, labels, n_clusters, n_classes, matching)


def evaluation_view(spec: DatasetSpec, config: BackboneConfig, path: Path) -> np.ndarray:
    """The image (H, W, 3) uint8 exactly as the evaluation split's features saw it."""
    image = spec.open_image(path)
    views = config.preprocessing.views(image, False, Image.Resampling.BICUBIC, spec.fit)
    return np.asarray(views[0])


def evaluation_images(
    spec: DatasetSpec,
    config: BackboneConfig,
    split: str,
    names: Sequence[str],
    size: tuple[int, int],
) -> Iterator[np.ndarray]:
    """The raw images of ``names`` in ``split`` (H, W, 3) uint8, as the features saw them
    and at the labels' ``size`` (H, W), read one at a time."""
    samples = {sample.name: sample for sample in spec.samples(raw_dir(spec.name), split)}
    for name in names:
        image = evaluation_view(spec, config, samples[name].image)
        if image.shape[:2] != tuple(size):
            resized = Image.fromarray(image).resize(tuple(size)[::-1], Image.Resampling.BICUBIC)
            image = np.asarray(resized)
        yield image
