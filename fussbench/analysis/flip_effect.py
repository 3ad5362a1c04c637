"""What horizontal-flip averaging of the final predictions changes: ``fussbench flip-effect``.

Scores finished runs' saved models on the evaluation split without training anything
(:mod:`fussbench.analysis.rescoring`): as trained, and with every prediction averaged with
its mirror image's (:mod:`fussbench.evaluation.flip`, STEGO's protocol), from the flipped
features cached once by ``fussbench features --flip``.
"""

from __future__ import annotations

import pandas as pd

from fussbench.analysis import rescoring
from fussbench.analysis.rescoring import Effect, ModelScorer
from fussbench.data.samples import DatasetSpec
from fussbench.evaluation.predict import evaluate_model
from fussbench.features.cache import FeatureSplit
from fussbench.features.flipped import open_flipped
from fussbench.params import Params


def flip_scorer(
    params: Params, spec: DatasetSpec, split: str, cache: FeatureSplit, matching: str
) -> ModelScorer:
    """A model's evaluation on the cached ``split`` with every prediction flip-averaged.

    Raises:
        FussbenchError: when the split's flipped features are missing or stale
            (:func:`~fussbench.features.flipped.open_flipped`, naming the command).
    """
    flipped = open_flipped(cache)
    return lambda model: evaluate_model(
        model, cache.features, cache.labels, spec.n_classes, matching, flipped
    )


FLIP = Effect(
    "flip", "miou_flip", "flip", "Horizontal-flip averaging of the final predictions", flip_scorer
)
"""``fussbench flip-effect``: rows gain ``miou_flip``."""


def effect_table(rows: pd.DataFrame) -> str:
    """Markdown: per setup and method, runs, mean mIoU without and with flip averaging,
    and the mean ± std over runs of the per-run change."""
    return rescoring.effect_table(rows, FLIP)
