"""The report's index, ``README.md``: what was run, a link to every table (with its LaTeX
and CSV) and figure, the other Markdown reports beside it, and what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

TABLE_TITLES = {
    "main": "Main results: mIoU and pixel accuracy per setup",
    "aggregation": "Aggregation type: mode and weighting",
    "significance": "Paired significance tests",
    "communication": "Communication per client and round",
    "clusters": "Number of clusters and mIoU under Hungarian and majority matching",
    "heterogeneity": "FedCC's gain over FedAvg against label and feature skew",
    "classes": "IoU per class (setups of at most 12 classes)",
}
"""Each table's file stem and its title in the index."""

FIGURE_TITLES = {
    "rounds": "Global mIoU vs round",
    "centroids": "Pairwise cosine distance of the final centroids",
    "partition": "Class distribution per client",
    "qualitative": "Qualitative predictions",
    "heterogeneity": "FedCC's gain over FedAvg against label and feature skew",
}
"""Each figure kind (the file name's first part) and its title in the index."""


def _values(frame: pd.DataFrame, column: str) -> str:
    """The distinct values of a column, ``"a / b"``."""
    return " / ".join(str(value) for value in pd.unique(frame[column].dropna()))


def what_was_run(
    results: pd.DataFrame,
    communication: pd.DataFrame,
    setups: Sequence[str],
    seeds: Sequence[int],
    params_hash: str,
) -> str:
    """One paragraph: setups (dataset, partition, clients), backbone, seeds, rounds × local
    steps and the params hash, all read from the results."""
    done = results[(results["status"] == "ok") & results["setup"].isin(list(setups))]
    described = []
    for setup in setups:
        rows = done[done["setup"] == setup]
        if len(rows):
            clients = int(rows["n_clients"].max())  # centralized pools them into one
            described.append(
                f"`{setup}` ({_values(rows, 'dataset')}, {_values(rows, 'partition')} "
                f"partition, {clients} clients)"
            )
        else:
            described.append(f"`{setup}` (no finished run)")
    backbone = _values(communication, "backbone") or "unknown (no run reports it)"
    rounds = _values(done.assign(r=done["rounds"].astype("Int64")), "r")
    steps = _values(done.assign(s=done["local_steps"].astype("Int64")), "s")
    seed_list = ", ".join(str(seed) for seed in seeds)
    return (
        f"Setups {', '.join(described)}; backbone {backbone} (frozen); seeds {seed_list}; "
        f"{rounds} rounds × {steps} local steps per client; "
        f"{len(pd.unique(done['method']))} methods. Params hash `{params_hash}`."
    )


def _link(out_dir: Path, path: Path) -> str:
    return path.relative_to(out_dir).as_posix()


def readme(out_dir: Path, summary: str, written: list[Path], missing: list[str]) -> str:
    """The index: what was run, a link per table (with its LaTeX and CSV) and figure, the
    other Markdown reports in ``out_dir``, and what is missing."""
    lines = ["# Report", "", summary, "", "## Tables", ""]
    for path in written:
        if path.suffix == ".md":
            base = _link(out_dir, path)[: -len(".md")]
            lines.append(
                f"- [{TABLE_TITLES[path.stem]}]({base}.md) ([LaTeX]({base}.tex), [CSV]({base}.csv))"
            )
    lines += ["", "## Figures", ""]
    for path in written:
        if path.suffix == ".png":
            kind, _, setup = path.stem.partition("_")
            lines.append(f"- [{FIGURE_TITLES[kind]}, {setup}]({_link(out_dir, path)})")
    others = sorted(p for p in out_dir.glob("*.md") if p.name != "README.md")
    if others:
        lines += ["", "## Other reports", ""]
        lines += [f"- [{p.stem}]({_link(out_dir, p)})" for p in others]
    if missing:
        lines += ["", "## Missing", "", "Rendered without:", ""]
        lines += [f"- {item}" for item in missing]
    return "\n".join(lines) + "\n"
