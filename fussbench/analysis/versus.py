"""Paired comparisons across two profiles' results: ``fussbench versus``.

A profile's ``results.csv`` holds one row per (setup, method, seed), and so do the records
of a one-variant study (``runs.csv``, :mod:`fussbench.studies.study`), which stand in for it
in a folder without ``results.csv``. Two profiles on the same setups and seeds can be
compared run against run: the automatic number of clusters against the oracle K
(``reports/paper_auto_clusters/`` against ``reports/paper/``), ``fedcc_auto`` against the
fixed FedCC variants (``reports/paper_auto_aggregation/`` against ``reports/paper/``), or
one budget against another (``reports/paper_converged/`` against ``reports/paper/``).
Pairs are matched on (setup, seed); only runs with status ``ok`` count (a study records
only finished runs).

A comparison names a method of profile A and a reference: a method of profile B, or
``best:M1,M2,...`` / ``worst:M1,M2,...``, which picks, per setup, the listed method (from
either profile) with the highest / lowest mean mIoU over the seeds both sides share. These
comparisons were not pre-registered, so they are exploratory: a two-sided Wilcoxon test and
a paired t-test per row, Holm over the rows of one call, and a bootstrap 95 % CI of the
mean difference. Cost columns compare seconds per round and bytes sent to each client per
round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.stats.formatting import MISSING, format_p
from fussbench.stats.tests import TWO_SIDED, bootstrap_mean_ci, holm, paired_tests

SELECTORS = ("best", "worst")
"""Reference prefixes that choose among several methods per setup."""

COLUMNS = (
    "setup",
    "a",
    "b",
    "n",
    "miou_a",
    "miou_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_wilcoxon",
    "p_holm",
    "p_t",
    "s_per_round_a",
    "s_per_round_b",
    "bytes_down_a",
    "bytes_down_b",
)
"""Columns of :func:`compare_profiles`' table: per-seed means, A minus B with its CI, the
tests, and the cost of a round on each side."""


@dataclass(frozen=True)
class Reference:
    """What a method of profile A is compared with.

    Attributes:
        selector: ``""`` (one method of profile B), ``"best"`` or ``"worst"``.
        methods: the method of B, or the candidates the selector chooses among.
    """

    selector: str
    methods: tuple[str, ...]

    @property
    def label(self) -> str:
        """How the reference is written: ``fedavg`` or ``best:fedcc_kmeans,fedcc_maximin``."""
        listed = ",".join(self.methods)
        return f"{self.selector}:{listed}" if self.selector else listed


def parse_pair(text: str) -> tuple[str, Reference]:
    """``A_METHOD=REFERENCE`` (or ``METHOD``, the same method on both sides) → the pair.

    Raises:
        FussbenchError: for an empty side or an unknown selector.
    """
    method, sep, reference = text.partition("=")
    method, reference = method.strip(), (reference.strip() if sep else method.strip())
    if not method or not reference:
        raise FussbenchError(f"--pair '{text}': write A_METHOD=B_METHOD (or one method for both)")
    selector, colon, listed = reference.partition(":")
    if not colon:
        return method, Reference("", (reference,))
    if selector not in SELECTORS:
        raise FussbenchError(
            f"--pair '{text}': unknown selector '{selector}'; use best:M1,M2 or worst:M1,M2"
        )
    candidates = tuple(name.strip() for name in listed.split(",") if name.strip())
    if not candidates:
        raise FussbenchError(f"--pair '{text}': name the methods after '{selector}:'")
    return method, Reference(selector, candidates)


def read_results(folder: Path) -> pd.DataFrame:
    """The finished runs of a profile: ``folder/results.csv`` rows with status ``ok``, or,
    without that file, a one-variant study's records ``folder/runs.csv`` (each finished).

    Raises:
        FussbenchError: when neither file is there, the records hold several variants (a
            pairing by seed would mix them), or the rows lack the columns a comparison needs.
    """
    path = folder / "results.csv"
    records = folder / "runs.csv"
    if not path.is_file() and records.is_file():
        path, results = records, pd.read_csv(records)
        variants = sorted(set(results.get("variant", pd.Series(dtype=str)).astype(str)))
        if len(variants) > 1:
            raise FussbenchError(
                f"{path} holds the variants {', '.join(variants)}; versus pairs one-variant "
                "studies by seed"
            )
        results = results.assign(status="ok")
    elif path.is_file():
        results = pd.read_csv(path)
    else:
        raise FussbenchError(
            f"{path} not found (nor a study's runs.csv): run the profile (or "
            "`fussbench collect`) first"
        )
    needed = {"setup", "method", "seed", "miou", "status", "rounds", "seconds"}
    if missing := needed - set(results.columns):
        raise FussbenchError(f"{path}: no column(s) {sorted(missing)}; rerun `fussbench collect`")
    return results[results["status"] == "ok"]


def _runs(results: pd.DataFrame, setup: str, method: str) -> pd.DataFrame:
    """One setup's runs of one method, indexed by seed."""
    chosen = results[(results["setup"] == setup) & (results["method"] == method)]
    return chosen.set_index("seed").sort_index()


def _pick(
    a_runs: pd.DataFrame, reference: Reference, pools: list[pd.DataFrame], setup: str
) -> tuple[str, pd.DataFrame]:
    """The reference's method and runs in ``setup``: the named method of profile B, or the
    best / worst candidate by mean mIoU over the seeds it shares with ``a_runs``."""
    found: dict[str, pd.DataFrame] = {}
    for method in reference.methods:
        for pool in pools if reference.selector else pools[1:]:
            runs = _runs(pool, setup, method)
            if not runs.empty:
                found[method] = runs
                break
    shared = {
        method: runs.loc[runs.index.intersection(a_runs.index)] for method, runs in found.items()
    }
    shared = {method: runs for method, runs in shared.items() if not runs.empty}
    if not shared:
        return reference.label, pd.DataFrame(columns=a_runs.columns)
    means = {method: float(runs["miou"].mean()) for method, runs in shared.items()}
    chooser = min if reference.selector == "worst" else max
    method = chooser(means, key=means.__getitem__)
    return method, shared[method]


def _per_round(runs: pd.DataFrame, column: str) -> float:
    """Mean of ``column`` per round over the runs (NaN when the column is absent)."""
    if column not in runs.columns or runs.empty:
        return float("nan")
    return float((runs[column] / runs["rounds"].clip(lower=1)).mean())


def _mean(runs: pd.DataFrame, column: str) -> float:
    """Mean of ``column`` over the runs (NaN when the column is absent or empty)."""
    if column not in runs.columns or runs.empty:
        return float("nan")
    return float(runs[column].mean())


def compare_profiles(
    a: pd.DataFrame,
    b: pd.DataFrame,
    pairs: list[tuple[str, Reference]],
    n_resamples: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every pair on every setup both profiles ran, matched by seed.

    Args:
        a: profile A's finished runs (:func:`read_results`).
        b: profile B's finished runs.
        pairs: (method of A, reference) from :func:`parse_pair`.
        n_resamples: bootstrap resamples of each CI.
        seed: the bootstrap's seed.

    Returns:
        One row per (setup, pair) with :data:`COLUMNS`; ``diff`` is A minus B in mIoU
        points, ``p_holm`` Holm-adjusted over all rows. A pair with no shared seed in a
        setup has ``n == 0`` and no statistics.
    """
    rows = []
    for setup in sorted(set(a["setup"]) & set(b["setup"])):
        for method, reference in pairs:
            a_runs = _runs(a, setup, method)
            if a_runs.empty:
                continue
            b_method, b_runs = _pick(a_runs, reference, [a, b], setup)
            seeds = a_runs.index.intersection(b_runs.index)
            x = a_runs.loc[seeds, "miou"].to_numpy(dtype=float)
            y = b_runs.loc[seeds, "miou"].to_numpy(dtype=float)
            row = {
                "setup": setup,
                "a": method,
                "b": b_method if not reference.selector else f"{reference.selector}: {b_method}",
                "n": int(seeds.size),
                "miou_a": float(x.mean()) if x.size else float("nan"),
                "miou_b": float(y.mean()) if y.size else float("nan"),
                "s_per_round_a": _per_round(a_runs.loc[seeds], "seconds"),
                "s_per_round_b": _per_round(b_runs.loc[seeds], "seconds"),
                "bytes_down_a": _mean(a_runs.loc[seeds], "bytes_down_per_client_round"),
                "bytes_down_b": _mean(b_runs.loc[seeds], "bytes_down_per_client_round"),
            }
            if seeds.size:
                diffs = x - y
                wilcoxon, t_test = paired_tests(x, y, TWO_SIDED)
                low, high = bootstrap_mean_ci(diffs, n_resamples, seed)
                row |= {
                    "diff": float(diffs.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "p_wilcoxon": wilcoxon.p_value,
                    "p_t": t_test.p_value,
                }
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if not table.empty:
        p_values = [None if pd.isna(p) else float(p) for p in table["p_wilcoxon"]]
        table["p_holm"] = holm(p_values)
    return table


def _cell(value: float, digits: int = 2) -> str:
    """A number for the markdown table; :data:`MISSING` for NaN."""
    return MISSING if pd.isna(value) else f"{value:.{digits}f}"


def to_markdown(table: pd.DataFrame, a_label: str, b_label: str) -> str:
    """The comparison as a markdown document: what was compared, then one row per pair."""
    lines = [
        f"# {a_label} against {b_label}, paired by seed",
        "",
        f"A = `{a_label}`, B = `{b_label}`. Difference = A − B in mIoU points (mean over the "
        "seeds both ran, bootstrap 95 % CI). Exploratory: two-sided Wilcoxon and paired "
        "t-test, Holm over the rows below. Cost: seconds per round of one run, bytes sent "
        "to each client per round.",
        "",
        "| setup | A | B | seeds | mIoU A | mIoU B | A − B [95 % CI] | p Wilcoxon | p Holm "
        "| p t-test | s/round A | s/round B | bytes down A | bytes down B |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for row in table.itertuples(index=False):
        interval = (
            MISSING
            if pd.isna(row.diff)
            else f"{row.diff:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
        )
        lines.append(
            f"| {row.setup} | {row.a} | {row.b} | {row.n} | {_cell(row.miou_a)} "
            f"| {_cell(row.miou_b)} | {interval} | {format_p(_p(row.p_wilcoxon))} "
            f"| {format_p(_p(row.p_holm))} | {format_p(_p(row.p_t))} "
            f"| {_cell(row.s_per_round_a, 1)} | {_cell(row.s_per_round_b, 1)} "
            f"| {_cell(row.bytes_down_a, 0)} | {_cell(row.bytes_down_b, 0)} |"
        )
    return "\n".join(lines) + "\n"


def _p(value: object) -> float | None:
    """A p-value cell as a float, ``None`` when empty."""
    return None if value is None or pd.isna(value) else float(value)


def versus_report(
    a: Path, b: Path, pairs: list[str], n_resamples: int, seed: int, out: Path | None
) -> str:
    """:func:`compare_profiles` of the reports folders ``a`` and ``b`` (each holds
    ``results.csv`` or a one-variant study's ``runs.csv``) over ``pairs`` (each as
    :func:`parse_pair` reads it), as Markdown, also written to ``out``.md, with the numbers
    in ``out``.csv, when ``out`` is given.

    Raises:
        FussbenchError: when no pair's method of ``a`` ran on a setup of ``b``.
    """
    parsed = [parse_pair(text) for text in pairs]
    table = compare_profiles(read_results(a), read_results(b), parsed, n_resamples, seed)
    if table.empty:
        raise FussbenchError(
            f"no --pair method of {a} ran on a setup of {b}: check the method names"
        )
    markdown = to_markdown(table, str(a), str(b))
    if out is not None:
        write_text(out.with_suffix(".md"), markdown)
        write_text(out.with_suffix(".csv"), table.to_csv(index=False))
    return markdown
