"""mIoU against a fixed number of clusters, with the automatic choice marked:
``fussbench k-sweep``.

The sweep trains one method on one setup at every K of a list (``model.n_clusters``), for
a few seeds, into ``<out>/k<K>/seed<s>/``, and draws mean mIoU ± std over seeds against
K. Runs with ``model.n_clusters: auto`` (a profile's ``results.csv``: their final global K
in ``n_clusters_final``) are drawn as points at the K they chose, and the number of
classes (the oracle K) as a vertical line. Hungarian matching counts clusters left
unmatched as errors, so mIoU falls for K above the number of classes by construction;
majority matching (``miou_majority``) does not, and is drawn too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fussbench.errors import FussbenchError
from fussbench.stats.formatting import MISSING

SCORES = ("miou", "miou_majority")
"""The scores the sweep tabulates and draws: Hungarian and majority-matched mIoU."""


def run_dir(out: Path, k: int, seed: int) -> Path:
    """Where the run at ``k`` clusters and ``seed`` writes."""
    return out / f"k{k}" / f"seed{seed}"


def parse_values(text: str, what: str) -> list[int]:
    """``"5,8,11"`` → ``[5, 8, 11]``.

    Raises:
        FussbenchError: for an empty list or a value that is not an integer.
    """
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FussbenchError(f"--{what} '{text}': write integers separated by commas") from None
    if not values:
        raise FussbenchError(f"--{what} is empty: write integers separated by commas")
    return values


def collect_sweep(out: Path, values: list[int], seeds: list[int]) -> pd.DataFrame:
    """The finished runs of the sweep: columns k, seed, miou, miou_majority (one row per
    run whose ``metrics.json`` exists)."""
    rows = []
    for k in values:
        for seed in seeds:
            metrics = run_dir(out, k, seed) / "metrics.json"
            if metrics.is_file():
                record = json.loads(metrics.read_text(encoding="utf-8"))
                rows.append({"k": k, "seed": seed} | {name: record.get(name) for name in SCORES})
    return pd.DataFrame(rows, columns=["k", "seed", *SCORES])


def auto_points(results: Path, setup: str, method: str) -> pd.DataFrame:
    """The ``auto`` runs of ``method`` on ``setup`` in a profile's ``results.csv``: columns
    seed, k (the final global K), miou, miou_majority.

    Raises:
        FussbenchError: when the file is missing or holds no such run.
    """
    if not results.is_file():
        raise FussbenchError(f"{results} not found: run the auto profile first")
    frame = pd.read_csv(results)
    chosen = frame[
        (frame["setup"] == setup)
        & (frame["method"] == method)
        & (frame["status"] == "ok")
        & (frame["n_clusters"].astype(str) == "auto")
    ]
    if chosen.empty:
        raise FussbenchError(f"{results}: no finished auto-K run of {method} on {setup}")
    return chosen.rename(columns={"n_clusters_final": "k"})[["seed", "k", *SCORES]]


def sweep_table(sweep: pd.DataFrame, auto: pd.DataFrame | None) -> str:
    """Markdown: per K, mean ± std over seeds of each score; then each auto run."""

    def cell(values: pd.Series) -> str:
        values = values.dropna()
        if values.empty:
            return MISSING
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean():.2f} ± {spread:.2f}"

    lines = [
        "| K | seeds | mIoU Hungarian | mIoU majority |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for k, group in sweep.groupby("k"):
        lines.append(
            f"| {k} | {len(group)} | {cell(group['miou'])} | {cell(group['miou_majority'])} |"
        )
    if auto is not None:
        for row in auto.sort_values("seed").itertuples(index=False):
            lines.append(
                f"| auto ({row.k:g}), seed {row.seed} | 1 | {row.miou:.2f} "
                f"| {row.miou_majority:.2f} |"
            )
    return "\n".join(lines) + "\n"


def sweep_figure(
    sweep: pd.DataFrame, auto: pd.DataFrame | None, n_classes: int, title: str, target: Path
) -> None:
    """Mean ± std mIoU against K (Hungarian and majority), auto runs as points at their K,
    the number of classes as a dashed line; written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from fussbench.atomic import atomic_path

    if sweep.empty:
        raise FussbenchError("no sweep run has finished: nothing to draw")
    figure, axis = plt.subplots(figsize=(6, 4))
    for score, label, colour in zip(
        SCORES, ("Hungarian", "majority"), ("tab:blue", "tab:orange"), strict=True
    ):
        stats = sweep.groupby("k")[score].agg(["mean", "std"]).fillna(0.0)
        axis.plot(stats.index, stats["mean"], marker="o", color=colour, label=f"fixed K, {label}")
        axis.fill_between(
            stats.index,
            stats["mean"] - stats["std"],
            stats["mean"] + stats["std"],
            color=colour,
            alpha=0.2,
        )
        if auto is not None:
            axis.scatter(
                auto["k"], auto[score], marker="*", s=90, color=colour, edgecolor="black",
                label=f"auto K, {label}", zorder=3,
            )  # fmt: skip
    axis.axvline(n_classes, linestyle="--", color="grey", label=f"classes ({n_classes})")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("number of clusters K")
    axis.set_ylabel("mIoU (%)")
    axis.set_title(title)
    axis.legend(fontsize="small")
    figure.tight_layout()
    with atomic_path(target) as path:
        figure.savefig(path, format="png", dpi=120)
    plt.close(figure)
