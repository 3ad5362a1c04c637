"""The K sweep as a study (``fussbench k-sweep``): train one method at every fixed K and
seed, then write the sweep's table, numbers and figure (:mod:`fussbench.analysis.k_sweep`).
"""

from __future__ import annotations

from pathlib import Path

from fussbench.analysis.k_sweep import (
    auto_points,
    collect_sweep,
    run_dir,
    sweep_figure,
    sweep_table,
)
from fussbench.atomic import write_text
from fussbench.params import Params
from fussbench.studies.overrides import method_overrides
from fussbench.studies.trainer import Trainer


def train(
    params: Params, ks: list[int], seeds: list[int], method: str, out: Path, trainer: Trainer
) -> None:
    """Train ``method`` on the setup of ``params`` at every K of ``ks`` and seed of
    ``seeds`` into ``out/k<K>/seed<s>/``; a run whose ``metrics.json`` exists is kept."""
    jobs = []
    for k in ks:
        for seed in seeds:
            target = run_dir(out, k, seed)
            if (target / "metrics.json").is_file():
                continue
            # at setup level, so it also wins over a setup's own K (the tile's 2)
            extra = [
                f"seed={seed}",
                *method_overrides(method),
                f"setups.{params.setup}.model.n_clusters={k}",
            ]
            jobs.append(trainer.job(target, extra))
    trainer.train(jobs, [params.setup] if jobs else [], out)


def write_sweep(
    params: Params,
    ks: list[int],
    seeds: list[int],
    method: str,
    out: Path,
    report: Path,
    auto: Path | None,
) -> str:
    """Write ``report``.md (mean ± std over seeds against K, then each auto run), .csv (one
    row per finished run) and .png from the finished runs under ``out``; return the
    Markdown.

    Args:
        auto: a profile's ``results.csv`` whose ``model.n_clusters: auto`` runs of
            ``method`` on the setup are drawn at the K they chose; None: none drawn.
    """
    sweep = collect_sweep(out, ks, seeds)
    points = auto_points(auto, params.setup, method) if auto is not None else None
    title = (
        f"{params.setup}, {method}, {params.federation.rounds} × {params.train.local_steps} steps"
    )
    table = f"# mIoU against K: {title}\n\n" + sweep_table(sweep, points)
    write_text(report.with_suffix(".md"), table)
    write_text(report.with_suffix(".csv"), sweep.to_csv(index=False))
    n_classes = params.dataset_spec().n_classes
    sweep_figure(sweep, points, n_classes, title, report.with_suffix(".png"))
    return table
