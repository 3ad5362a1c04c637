"""Finished runs' saved models scored again on the evaluation split, without training: what
``fussbench crf-effect`` and ``fussbench flip-effect`` share.

Finished runs keep their final models (``model.npz``: the global model, or one per client
for ``local``). An effect command scores each run's models as trained and with one change
to the final prediction (a dense CRF, flip averaging). The score the run itself used (with
the change for a run made with it on) must give the run's recorded mIoU: a check that the
models and the feature cache are the ones the run used. A run's score is the mean over its
models, as in ``metrics.json``; the table
gives, per setup and method, the mean score without and with the change and the mean ±
std over runs of the per-run change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.evaluation.predict import Evaluation, evaluate_model
from fussbench.features.cache import FeatureSplit, cache_fingerprint, open_split
from fussbench.model.head import ModelArrays
from fussbench.params import Params
from fussbench.paths import features_dir

RECORD_TOLERANCE = 0.01
"""Largest |rescored − recorded| mIoU (points) accepted: metrics.json rounds to 4 digits."""

ModelScorer = Callable[[ModelArrays], Evaluation]
"""One model's evaluation, with the change to its predictions."""


@dataclass(frozen=True)
class Effect:
    """A change to the final predictions that an effect command measures.

    Attributes:
        param: the ``evaluation`` param that makes a run use it (``crf``, ``flip``); a run
            whose ``metrics.json`` says it was on recorded the changed score.
        column: the row's column of the changed mIoU (``miou_crf``).
        name: what the table calls it (``CRF``).
        title: the heading of the Markdown report.
        scorer: (params, dataset, split name, its cache, matching) -> the scorer of one
            model with the change; called once per run, so it may open what it needs.
    """

    param: str
    column: str
    name: str
    title: str
    scorer: Callable[[Params, DatasetSpec, str, FeatureSplit, str], ModelScorer]


def load_models(path: Path) -> list[ModelArrays]:
    """Every model of a run's ``model.npz`` (keys ``model<n>/<parameter>``), in order.

    Raises:
        FussbenchError: when the file is missing (a reference row or an unfinished run).
    """
    if not path.is_file():
        raise FussbenchError(f"{path} not found: rescoring needs a finished trained run")
    models: dict[int, ModelArrays] = {}
    with np.load(path) as archive:
        for key in archive.files:
            prefix, _, name = key.partition("/")
            models.setdefault(int(prefix.removeprefix("model")), {})[name] = archive[key]
    return [models[index] for index in sorted(models)]


def rescore(
    run: Path, metrics: dict[str, Any], params: Params, effect: Effect
) -> dict[str, object]:
    """One run's mIoU without and with ``effect``, each the mean over its models.

    Args:
        run: a finished run folder (``model.npz``).
        metrics: the run's ``metrics.json``.
        params: the params with the run's setup selected (dataset, backbone, caches).

    Returns:
        run, setup, method, seed, miou_recorded, miou (rescored without the change), and
        the changed mIoU under ``effect.column``.

    Raises:
        FussbenchError: when the score the run used (changed if ``metrics.json`` says
            ``effect.param`` was on) differs from the recorded one: the run was made from
            another feature cache or matching than these params give.
    """
    spec, split, matching = params.dataset_spec(), metrics["eval_split"], metrics["matching"]
    directory = features_dir(spec.name, params.backbone) / split
    cache = open_split(directory, cache_fingerprint(spec, split, params.backbone_config()))
    changed_score = effect.scorer(params, spec, split, cache, matching)
    plain, changed = [], []
    for model in load_models(run / "model.npz"):
        plain.append(evaluate_model(model, cache.features, cache.labels, spec.n_classes, matching))
        changed.append(changed_score(model))
    miou, changed_miou = _mean_miou(plain), _mean_miou(changed)
    as_run = changed_miou if metrics.get(effect.param) else miou
    if abs(as_run - float(metrics["miou"])) > RECORD_TOLERANCE:
        raise FussbenchError(
            f"{run}: rescored mIoU {as_run:.4f} differs from the recorded {metrics['miou']}; "
            "score it with the params (setup, backbone, features) it was run with"
        )
    return {
        "run": str(run),
        "setup": metrics["setup"],
        "method": metrics["method"],
        "seed": metrics["seed"],
        "miou_recorded": float(metrics["miou"]),
        "miou": round(miou, 4),
        effect.column: round(changed_miou, 4),
    }


def _mean_miou(evaluations: Sequence[Evaluation]) -> float:
    return float(np.mean([item.scores.miou for item in evaluations]))


def effect_table(rows: pd.DataFrame, effect: Effect) -> str:
    """Markdown: per setup and method, runs, mean mIoU without and with ``effect``, and
    the mean ± std over runs of the per-run change."""
    column, name = effect.column, effect.name
    lines = [
        f"| setup | method | runs | mIoU | mIoU with {name} | {name} − none (mean ± std) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (setup, method), group in rows.groupby(["setup", "method"], sort=False):
        change = group[column] - group["miou"]
        spread = change.std(ddof=1) if len(change) > 1 else 0.0
        lines.append(
            f"| {setup} | {method} | {len(group)} | {group['miou'].mean():.2f} "
            f"| {group[column].mean():.2f} | {change.mean():+.2f} ± {spread:.2f} |"
        )
    return "\n".join(lines) + "\n"


def effect_report(
    effect: Effect,
    runs: Sequence[Path],
    params_for: Callable[[str], Params],
    out: Path | None,
    say: Callable[[str], None],
    skip: Callable[[str], None],
) -> str:
    """:func:`rescore` each of ``runs`` with ``effect`` and return the
    :func:`effect_table` of them all.

    Args:
        params_for: the params with a setup chosen (each run's ``metrics.json`` names it).
        out: when given, ``out``.md (the titled table) and ``out``.csv (one row per run)
            are rewritten after every run, so a stopped call keeps the rows it finished.
        say: receives each run's row, as JSON, once it is scored.
        skip: receives the reason a folder without ``model.npz`` (a reference row or an
            unfinished run) is skipped.

    Raises:
        FussbenchError: when no folder holds a finished trained run, or a run's rescored
            mIoU differs from its record (:func:`rescore`).
    """
    rows = []
    for run in runs:
        if not (run / "model.npz").is_file():
            skip(f"{run}: no model.npz (a reference row or an unfinished run), skipped")
            continue
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        rows.append(rescore(run, metrics, params_for(metrics["setup"]), effect))
        say(json.dumps(rows[-1]))
        frame = pd.DataFrame(rows)
        table = effect_table(frame, effect)
        if out is not None:
            write_text(out.with_suffix(".md"), f"# {effect.title}\n\n" + table)
            write_text(out.with_suffix(".csv"), frame.to_csv(index=False))
    if not rows:
        raise FussbenchError("no finished trained run among the folders given")
    return table
