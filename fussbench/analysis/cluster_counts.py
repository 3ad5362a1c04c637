"""The number of clusters each client and the server chose, round by round:
``fussbench cluster-counts``.

A run with ``model.n_clusters: auto`` records in ``rounds.csv`` each client's K
(``client<c>_n_clusters``) and the global K the server chose (``n_clusters_global``) every
round. This gathers them over a method's seeds into one table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.reporting.results import markdown_table

CLIENT_COLUMN = re.compile(r"client(\d+)_n_clusters$")
"""rounds.csv's column of client c's number of clusters."""


def cluster_counts(method_dir: Path) -> pd.DataFrame:
    """One row per seed and round of the runs under ``method_dir`` (``seed<s>/rounds.csv``):
    columns seed, round, client0 .. client<C-1>, global.

    Raises:
        FussbenchError: when no run there recorded its number of clusters.
    """
    frames = []
    for path in sorted(method_dir.glob("seed*/rounds.csv")):
        rounds = pd.read_csv(path)
        clients = {
            name: f"client{int(found.group(1))}"
            for name in rounds.columns
            if (found := CLIENT_COLUMN.match(name))
        }
        if "n_clusters_global" not in rounds.columns and not clients:
            continue
        frame = rounds[["round", *clients]].rename(columns=clients)
        frame["global"] = rounds.get("n_clusters_global")
        frame.insert(0, "seed", int(path.parent.name.removeprefix("seed")))
        frames.append(frame)
    if not frames:
        raise FussbenchError(
            f"{method_dir}: no seed*/rounds.csv with cluster counts; run the method first"
        )
    return pd.concat(frames, ignore_index=True).sort_values(["seed", "round"], ignore_index=True)


def cluster_count_report(runs: Path, setup: str, method: str, out: Path | None) -> str:
    """The :func:`cluster_counts` of ``runs/<setup>/<method>/`` as a titled Markdown table,
    also written to ``out``.md and ``out``.csv when ``out`` is given; returns the Markdown."""
    counts = cluster_counts(runs / setup / method)
    table = f"# Number of clusters per client and round: {setup}, {method}\n\n"
    table += markdown_table(counts)
    if out is not None:
        write_text(out.with_suffix(".md"), table)
        write_text(out.with_suffix(".csv"), counts.to_csv(index=False))
    return table
