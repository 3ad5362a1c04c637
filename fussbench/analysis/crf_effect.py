"""What dense-CRF refinement of the final predictions changes: ``fussbench crf-effect``.

Scores finished runs' saved models on the evaluation split without training anything
(:mod:`fussbench.analysis.rescoring`): as trained, and with every prediction refined by
the dense CRF of :mod:`fussbench.evaluation.crf` (STEGO's settings).
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from fussbench.analysis import rescoring
from fussbench.analysis.rescoring import Effect, ModelScorer
from fussbench.data.samples import DatasetSpec
from fussbench.evaluation.crf import evaluate_with_crf, evaluation_images
from fussbench.features.cache import FeatureSplit
from fussbench.params import Params


def crf_scorer(
    params: Params, spec: DatasetSpec, split: str, cache: FeatureSplit, matching: str
) -> ModelScorer:
    """A model's evaluation on the cached ``split`` with every prediction refined by the
    CRF over the split's images, read as the features saw them."""
    size = cache.labels.shape[1:]
    images = partial(evaluation_images, spec, params.backbone_config(), split, cache.names, size)
    return lambda model: evaluate_with_crf(
        model, cache.features, cache.labels, images(), spec.n_classes, matching
    )


CRF = Effect("crf", "miou_crf", "CRF", "Dense CRF on the final predictions", crf_scorer)
"""``fussbench crf-effect``: rows gain ``miou_crf``."""


def effect_table(rows: pd.DataFrame) -> str:
    """Markdown: per setup and method, runs, mean mIoU without and with CRF, and the mean
    ± std over runs of the per-run change."""
    return rescoring.effect_table(rows, CRF)
