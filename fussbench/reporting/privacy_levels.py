"""Each method's mIoU at each privacy level of a privacy-utility study, from its records.

A level is a variant of the study (e.g. a target ε); a method runs under its own privacy
mechanism (``study.method_overrides``), recorded per run as ``privacy`` (central | local),
with the ε it spent (``epsilon``, at ``privacy.delta``; ``inf`` without noise) and its noise
multiplier σ (``noise_multiplier``). A method that releases nothing (a bound trained
without pooling the clients' data: ``local``) spends ε 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fussbench.methods import parse_method
from fussbench.stats.formatting import MISSING

NO_MECHANISM = "none (releases nothing)"
"""The mechanism shown for a method that sends the server nothing."""


def releases_nothing(method: str) -> bool:
    """Whether ``method``'s clients send nothing: a bound (no server aggregation) that
    does not pool the clients' data (registry ``family``, ``pools_clients``)."""
    spec = parse_method(method).spec
    return spec.family == "bound" and not spec.pools_clients


def _mean(rows: pd.DataFrame, column: str) -> float:
    """The mean of ``column`` over ``rows`` (NaN where absent or blank; ``inf`` if any
    run's is)."""
    if column not in rows:
        return math.nan
    values = rows[column].astype(float).dropna()
    return float(np.mean(values)) if len(values) else math.nan


def _mechanism(method: str, rows: pd.DataFrame) -> str:
    """The privacy mechanisms ``rows`` recorded, comma-separated; :data:`NO_MECHANISM` for
    a method that releases nothing, ``—`` where none was recorded."""
    if releases_nothing(method):
        return NO_MECHANISM
    recorded = rows["privacy"].dropna() if "privacy" in rows else pd.Series(dtype=object)
    return ", ".join(sorted(map(str, pd.unique(recorded)))) or MISSING


def privacy_levels(
    records: pd.DataFrame,
    setups: Sequence[str],
    methods: Sequence[str],
    variants: Sequence[str],
) -> pd.DataFrame:
    """One row per (setup, method, variant) that has records, in the orders given: the
    method's mechanism, its seeds, mean and std (ddof 1; NaN for one seed) of mIoU, and
    the mean ε spent (0 for a method that releases nothing) and σ of those runs."""
    rows = []
    for setup in setups:
        for method in methods:
            mine = records[(records["setup"] == setup) & (records["method"] == method)]
            for variant in [name for name in variants if (mine["variant"] == name).any()]:
                runs = mine[mine["variant"] == variant]
                miou = runs["miou"].astype(float)
                rows.append(
                    {
                        "setup": setup,
                        "method": method,
                        "mechanism": _mechanism(method, mine),
                        "variant": variant,
                        "seeds": len(runs),
                        "miou_mean": float(miou.mean()),
                        "miou_std": float(miou.std(ddof=1)) if len(runs) > 1 else math.nan,
                        "epsilon": 0.0 if releases_nothing(method) else _mean(runs, "epsilon"),
                        "noise_multiplier": _mean(runs, "noise_multiplier"),
                    }
                )
    return pd.DataFrame(rows)


def format_epsilon(epsilon: float) -> str:
    """``"∞"``, ``"7.98"``, or ``—`` for NaN."""
    if math.isnan(epsilon):
        return MISSING
    return "∞" if math.isinf(epsilon) else f"{epsilon:.2f}"


def level_cell(row: pd.Series) -> str:
    """A level's cell: ``"27.31 ± 0.42 (ε 7.98, σ 1.10)"`` (no spread for one seed, no σ
    where none was recorded)."""
    spread = "" if math.isnan(row["miou_std"]) else f" ± {row['miou_std']:.2f}"
    sigma = row["noise_multiplier"]
    noise = "" if math.isnan(sigma) else f", σ {sigma:.2f}"
    return f"{row['miou_mean']:.2f}{spread} (ε {format_epsilon(row['epsilon'])}{noise})"


def levels_table(levels: pd.DataFrame, setup: str, variants: Sequence[str]) -> pd.DataFrame:
    """``setup``'s rows of :func:`privacy_levels` as one row per method (its mechanism,
    then one column per variant, in ``variants`` order, that any method ran in; a method
    missing from a variant leaves that cell empty)."""
    mine = levels[levels["setup"] == setup]
    shown = [name for name in variants if (mine["variant"] == name).any()]
    rows = []
    for method in pd.unique(mine["method"]):
        runs = mine[mine["method"] == method].set_index("variant")
        cells = {name: level_cell(runs.loc[name]) if name in runs.index else "" for name in shown}
        rows.append({"method": method, "mechanism": runs["mechanism"].iloc[0], **cells})
    return pd.DataFrame(rows)
