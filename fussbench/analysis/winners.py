"""Which candidate ``fedcc_auto`` chose, round by round: ``fussbench winners``.

Every fedcc_auto run records its choice of each round in ``metrics.json``
(``auto_selection``: round, winner, the weighted score of every candidate). This counts the
winners over a setup's runs and draws the share of runs each candidate won per round.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError


def winner_counts(metrics_files: list[Path]) -> pd.DataFrame:
    """How often each candidate won each round of ``fedcc_auto`` runs.

    Args:
        metrics_files: ``metrics.json`` of fedcc_auto runs (their ``auto_selection``).

    Returns:
        Columns round, winner, runs: the number of runs in which ``winner`` was chosen at
        ``round``.
    """
    picks = []
    for path in metrics_files:
        for entry in json.loads(path.read_text(encoding="utf-8")).get("auto_selection", []):
            picks.append({"round": int(entry["round"]), "winner": str(entry["winner"])})
    if not picks:
        return pd.DataFrame(columns=["round", "winner", "runs"])
    frame = pd.DataFrame(picks)
    counts = frame.groupby(["round", "winner"]).size().rename("runs").reset_index()
    return counts.sort_values(["round", "winner"], ignore_index=True)


def winners_figure(counts: dict[str, pd.DataFrame], target: Path) -> None:
    """Stacked bars, one panel per setup: the share of runs each candidate won per round.

    Args:
        counts: setup → :func:`winner_counts` of its fedcc_auto runs.
        target: the PNG to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from fussbench.atomic import atomic_path

    setups = [setup for setup, frame in counts.items() if not frame.empty]
    if not setups:
        raise FussbenchError("no fedcc_auto run recorded a choice: nothing to draw")
    candidates = sorted({w for setup in setups for w in counts[setup]["winner"]})
    colours = dict(zip(candidates, plt.get_cmap("tab10").colors, strict=False))
    figure, axes = plt.subplots(
        1, len(setups), figsize=(4 * len(setups), 3.2), squeeze=False, sharey=True
    )
    for axis, setup in zip(axes[0], setups, strict=True):
        table = counts[setup].pivot(index="round", columns="winner", values="runs").fillna(0)
        shares = table.div(table.sum(axis=1), axis=0)
        bottom = np.zeros(len(shares))
        for candidate in candidates:
            if candidate not in shares:
                continue
            values = shares[candidate].to_numpy()
            axis.bar(shares.index, values, bottom=bottom, color=colours[candidate], label=candidate)
            bottom += values
        axis.set_title(setup)
        axis.set_xlabel("round")
        axis.set_xticks(list(shares.index))
    axes[0][0].set_ylabel("share of runs")
    handles = [Patch(color=colours[name], label=name) for name in candidates]
    figure.legend(handles=handles, fontsize="small", loc="center right")
    figure.tight_layout(rect=(0, 0, 0.8, 1))
    with atomic_path(target) as path:
        figure.savefig(path, format="png", dpi=120)
    plt.close(figure)


def winners_report(runs: Path, setups: list[str], method: str, out: Path | None) -> str:
    """The :func:`winner_counts` of ``runs/<setup>/<method>/seed*/`` for each of ``setups``
    as CSV (columns setup, round, winner, runs), also written to ``out``.csv, with the
    :func:`winners_figure` in ``out``.png, when ``out`` is given; returns the CSV."""
    counts = {
        name: winner_counts(sorted((runs / name / method).glob("seed*/metrics.json")))
        for name in setups
    }
    table = pd.concat(
        [frame.assign(setup=name) for name, frame in counts.items()], ignore_index=True
    )[["setup", "round", "winner", "runs"]]
    if out is not None:
        winners_figure(counts, out.with_suffix(".png"))
        write_text(out.with_suffix(".csv"), table.to_csv(index=False))
    return table.to_csv(index=False)
