"""Convergence: global mIoU against the local-steps budget, and the budgets it chooses.

A *budget* is (rounds r, local steps s per client per round); its cost is r·s steps per
client (``centralized`` trains the federation's total, see the federate stage). A run of R
rounds of s steps passes through every budget (r, s) with r ≤ R, because a round's training
does not depend on what comes after it; so the curves come from one run per (method, seed,
s), evaluated after every round.

Two budgets are chosen per setup, by rules fixed before the runs:
- the **paper budget**: the cheapest budget at which every method's mean mIoU over seeds
  is no more than ``tolerance`` below its mean at the longest budget (R, max s);
- the **default budget**: the cheapest budget at which ``centralized`` (the bound that pools
  the clients' data) and the better FedCC (the higher mean of the methods of the registry's
  family ``fedcc``) both beat the ``kmeans`` reference by at least ``margin``.
Ties in cost go to fewer rounds (less communication).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fussbench.methods import parse_method

CURVE_COLUMNS = ("setup", "method", "local_steps", "seed", "round", "miou")
"""One row per evaluated round of one run."""


@dataclass(frozen=True)
class Budget:
    """``rounds`` rounds of ``local_steps`` steps per client."""

    rounds: int
    local_steps: int

    @property
    def cost(self) -> int:
        """Local steps per client in all."""
        return self.rounds * self.local_steps

    def __str__(self) -> str:
        return f"{self.rounds} rounds × {self.local_steps} steps"


def budget_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds of each (setup, method, budget).

    Args:
        curves: columns :data:`CURVE_COLUMNS`.

    Returns:
        columns setup, method, rounds, local_steps, cost, mean, std, n_seeds; sorted by
        setup, method and cost.
    """
    grouped = curves.groupby(["setup", "method", "round", "local_steps"])["miou"]
    table = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    table = table.rename(columns={"round": "rounds"})
    table["cost"] = table["rounds"] * table["local_steps"]
    return table.sort_values(["setup", "method", "cost", "rounds"]).reset_index(drop=True)


def _means(table: pd.DataFrame, setup: str) -> pd.DataFrame:
    """Mean mIoU of one setup: budgets (rounds, local_steps) × methods, cheapest first."""
    rows = table[table["setup"] == setup]
    means = rows.pivot_table(index=["rounds", "local_steps"], columns="method", values="mean")
    costs = np.array([rounds * steps for rounds, steps in means.index])
    rounds = np.array([rounds for rounds, _ in means.index])
    return means.iloc[np.lexsort((rounds, costs))]


def longest_budget(table: pd.DataFrame, setup: str) -> Budget:
    """The most rounds of the most local steps that ran on ``setup``."""
    rows = table[table["setup"] == setup]
    steps = int(rows["local_steps"].max())
    return Budget(int(rows.loc[rows["local_steps"] == steps, "rounds"].max()), steps)


def paper_budget(
    table: pd.DataFrame, setup: str, methods: Sequence[str], tolerance: float
) -> Budget | None:
    """The cheapest budget whose mean mIoU is at least the longest budget's minus
    ``tolerance``, for every one of ``methods`` (the longest budget always qualifies);
    None while some method has not reached the longest budget."""
    means = _means(table, setup).reindex(columns=list(methods))
    longest = longest_budget(table, setup)
    key = (longest.rounds, longest.local_steps)
    if key not in means.index or means.loc[key].isna().any():
        return None
    target = means.loc[key] - tolerance
    for (rounds, steps), row in means.dropna().iterrows():
        if (row >= target).all():
            return Budget(int(rounds), int(steps))
    return longest


def default_budget(
    table: pd.DataFrame, setup: str, reference: float, margin: float
) -> Budget | None:
    """The cheapest budget at which the pooled bound (``centralized``, the registry's
    ``pools_clients``) and the better method of family ``fedcc`` both
    reach ``reference + margin`` mean mIoU; None when no budget does."""
    means = _means(table, setup)
    specs = {method: parse_method(method).spec for method in means.columns}
    fedcc = [method for method, spec in specs.items() if spec.family == "fedcc"]
    pooled = [method for method, spec in specs.items() if spec.pools_clients]
    if not pooled or not fedcc:
        return None
    for (rounds, steps), row in means.iterrows():
        if min(row[pooled].min(), row[fedcc].max()) >= reference + margin:
            return Budget(int(rounds), int(steps))
    return None


def convergence_figure(
    curves: pd.DataFrame,
    setups: Sequence[str],
    methods: Sequence[str],
    references: dict[str, float],
    marks: dict[str, dict[str, Budget | None]],
) -> Figure:
    """One panel per setup: mean mIoU over seeds against local steps per client (r·s), a
    line per method and local-steps value (solid: the most steps per round), ± one
    standard deviation over seeds as a band; the ``kmeans`` reference as a dotted line and
    the chosen budgets (``marks[setup][label]``) as vertical lines."""
    figure = Figure(figsize=(6.5 * len(setups), 4.5))
    axes = figure.subplots(1, len(setups), squeeze=False)[0]
    colours = {method: f"C{index % 10}" for index, method in enumerate(methods)}
    for ax, setup in zip(axes, setups, strict=True):
        rows = curves[curves["setup"] == setup]
        most = rows["local_steps"].max()
        for (method, steps), run in rows.groupby(["method", "local_steps"]):
            if method not in colours:
                continue
            stats = run.groupby("round")["miou"].agg(["mean", "std"]).fillna(0.0)
            x = stats.index.to_numpy() * steps
            style = "-" if steps == most else "--"
            label = f"{method} ({steps}/round)"
            ax.plot(x, stats["mean"], style, color=colours[method], marker="o", ms=3, label=label)
            low, high = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
            ax.fill_between(x, low, high, color=colours[method], alpha=0.12, linewidth=0)
        if setup in references:
            ax.axhline(
                references[setup], color="black", linestyle=":", label="kmeans (no training)"
            )
        for (label, budget), style in zip(
            marks.get(setup, {}).items(), ("-.", (0, (1, 3))), strict=False
        ):
            if budget is not None:
                ax.axvline(budget.cost, color="grey", linestyle=style, label=f"{label}: {budget}")
        ax.set_xscale("log")
        ax.set_xlabel("local steps per client (rounds × steps per round)")
        ax.set_ylabel("global mIoU (%)")
        ax.set_title(setup)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    return figure


def convergence_markdown(
    table: pd.DataFrame,
    setups: Sequence[str],
    references: dict[str, float],
    chosen: dict[str, dict[str, Budget | None]],
    header: Sequence[str],
) -> str:
    """``convergence.md``: the header lines, the chosen budgets per setup, then a table of
    mean ± std mIoU over seeds, methods × budgets, per setup."""
    lines = [*header]
    for setup in setups:
        rows = table[table["setup"] == setup]
        if rows.empty:
            continue
        lines += ["", f"## {setup}", ""]
        if setup in references:
            lines.append(f"- kmeans reference (no training): {references[setup]:.2f} mIoU")
        for label, budget in chosen.get(setup, {}).items():
            lines.append(
                f"- {label}: {budget if budget is not None else 'not decided by these runs'}"
            )
        budgets = rows[["rounds", "local_steps", "cost"]].drop_duplicates()
        budgets = budgets.sort_values(["cost", "rounds"])
        methods = list(dict.fromkeys(rows["method"]))
        lines += [
            "",
            "| rounds × steps | steps per client | " + " | ".join(methods) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in methods) + " |",
        ]
        cells = rows.set_index(["rounds", "local_steps", "method"])
        for budget in budgets.itertuples():
            values = []
            for method in methods:
                key = (budget.rounds, budget.local_steps, method)
                if key not in cells.index:
                    values.append("—")
                    continue
                cell = cells.loc[key]
                std = 0.0 if np.isnan(cell["std"]) else cell["std"]
                values.append(f"{cell['mean']:.2f} ± {std:.2f} ({int(cell['n_seeds'])})")
            lines.append(
                f"| {budget.rounds} × {budget.local_steps} | {budget.cost} | "
                + " | ".join(values)
                + " |"
            )
    return "\n".join(lines) + "\n"
