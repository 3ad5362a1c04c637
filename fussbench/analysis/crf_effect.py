"""What dense-CRF refinement of the final predictions changes: ``fussbench crf-effect``.

Finished runs keep their final models (``model.npz``: the global model, or one per client
for ``local``). This scores them again on the evaluation split twice, without training
anything: as trained, which must give the run's own recorded mIoU (a check that the models
and the feature cache are the ones the run used), and with every prediction refined by the
dense CRF of :mod:`fussbench.evaluation.crf` (STEGO's settings). A run's score is the mean
over its models, as in ``metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.evaluation.crf import evaluate_with_crf, evaluation_images
from fussbench.evaluation.predict import evaluate_model
from fussbench.features.cache import cache_fingerprint, open_split
from fussbench.model.head import ModelArrays
from fussbench.params import Params
from fussbench.paths import features_dir

RECORD_TOLERANCE = 0.01
"""Largest |rescored − recorded| mIoU (points) accepted: metrics.json rounds to 4 digits."""


def load_models(path: Path) -> list[ModelArrays]:
    """Every model of a run's ``model.npz`` (keys ``model<n>/<parameter>``), in order.

    Raises:
        FussbenchError: when the file is missing (a reference row or an unfinished run).
    """
    if not path.is_file():
        raise FussbenchError(f"{path} not found: crf-effect needs a finished trained run")
    models: dict[int, ModelArrays] = {}
    with np.load(path) as archive:
        for key in archive.files:
            prefix, _, name = key.partition("/")
            models.setdefault(int(prefix.removeprefix("model")), {})[name] = archive[key]
    return [models[index] for index in sorted(models)]


def rescore(run: Path, metrics: dict[str, Any], params: Params) -> dict[str, object]:
    """One run's mIoU without and with the CRF.

    Args:
        run: a finished run folder (``model.npz``).
        metrics: the run's ``metrics.json``.
        params: the params with the run's setup selected (dataset, backbone, caches).

    Returns:
        run, setup, method, seed, miou_recorded, miou (rescored, no CRF), miou_crf.

    Raises:
        FussbenchError: when the rescored mIoU differs from the recorded one: the run was
            made from another feature cache or matching than these params give.
    """
    spec = params.dataset_spec()
    split = metrics["eval_split"]
    config = params.backbone_config()
    cache = open_split(
        features_dir(spec.name, params.backbone) / split, cache_fingerprint(spec, split, config)
    )
    matching = metrics["matching"]
    images = partial(evaluation_images, spec, config, split, cache.names, cache.labels.shape[1:])
    plain, refined = [], []
    for model in load_models(run / "model.npz"):
        plain.append(evaluate_model(model, cache.features, cache.labels, spec.n_classes, matching))
        refined.append(
            evaluate_with_crf(
                model, cache.features, cache.labels, images(), spec.n_classes, matching
            )
        )
    miou = float(np.mean([item.scores.miou for item in plain]))
    if abs(miou - float(metrics["miou"])) > RECORD_TOLERANCE:
        raise FussbenchError(
            f"{run}: rescored mIoU {miou:.4f} differs from the recorded {metrics['miou']}; "
            "score it with the params (setup, backbone, features) it was run with"
        )
    return {
        "run": str(run),
        "setup": metrics["setup"],
        "method": metrics["method"],
        "seed": metrics["seed"],
        "miou_recorded": float(metrics["miou"]),
        "miou": round(miou, 4),
        "miou_crf": round(float(np.mean([item.scores.miou for item in refined])), 4),
    }


def effect_table(rows: pd.DataFrame) -> str:
    """Markdown: per setup and method, runs, mean mIoU without and with CRF, and the mean
    ± std over runs of the per-run change."""
    lines = [
        "| setup | method | runs | mIoU | mIoU with CRF | CRF − none (mean ± std) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (setup, method), group in rows.groupby(["setup", "method"], sort=False):
        change = group["miou_crf"] - group["miou"]
        spread = change.std(ddof=1) if len(change) > 1 else 0.0
        lines.append(
            f"| {setup} | {method} | {len(group)} | {group['miou'].mean():.2f} "
            f"| {group['miou_crf'].mean():.2f} | {change.mean():+.2f} ± {spread:.2f} |"
        )
    return "\n".join(lines) + "\n"


def crf_effect_report(
    runs: Sequence[Path],
    params_for: Callable[[str], Params],
    out: Path | None,
    say: Callable[[str], None],
    skip: Callable[[str], None],
) -> str:
    """:func:`rescore` each of ``runs`` and return the :func:`effect_table` of them all.

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
        rows.append(rescore(run, metrics, params_for(metrics["setup"])))
        say(json.dumps(rows[-1]))
        frame = pd.DataFrame(rows)
        table = effect_table(frame)
        if out is not None:
            write_text(out.with_suffix(".md"), "# Dense CRF on the final predictions\n\n" + table)
            write_text(out.with_suffix(".csv"), frame.to_csv(index=False))
    if not rows:
        raise FussbenchError("no finished trained run among the folders given")
    return table
