"""Stage ``stats``: paired significance tests between methods, per setup.

Reads ``results.csv`` (from ``collect``) and each run's ``images.csv``; writes
``significance.csv`` and ``significance.md``. Two families of rows:

- ``primary``: the pre-registered hypotheses of ``stats.primary``
  (:mod:`fussbench.stats.primary`), one-sided, paired over seeds, one Holm family across
  all setups, each with a verdict;
- ``exploratory``: every comparison of :func:`fussbench.stats.comparisons.comparisons`
  that is not a primary hypothesis, two-sided, with Holm per setup, pairing and test.

Two pairings: ``seeds`` pairs the final mIoU of the seeds both methods ran, ``images``
pairs each evaluation image's mIoU averaged over those seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.methods import names
from fussbench.paths import run_dir
from fussbench.reporting.results import budget_line
from fussbench.stats.comparisons import comparisons
from fussbench.stats.formatting import MISSING, format_p
from fussbench.stats.primary import (
    NOT_RUN,
    TOKENS,
    Target,
    best_holm_wilcoxon,
    holm_whole_family,
    parse_primary,
    targets,
    verdict,
)
from fussbench.stats.tests import (
    ALPHA,
    GREATER,
    LESS,
    T_TEST,
    TWO_SIDED,
    WILCOXON,
    bootstrap_mean_ci,
    holm,
    paired_tests,
)

COLUMNS = [
    "family",
    "hypothesis",
    "dataset",
    "partition",
    "setup",
    "method_a",
    "method_b",
    "pairing",
    "alternative",
    "n_pairs",
    "mean_diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
    "p_holm_opposite",
    "verdict",
    "note",
]
"""Columns of ``significance.csv``: one row per comparison, pairing and test.

``family`` is ``primary`` or ``exploratory``; ``hypothesis`` the primary hypothesis's id;
``alternative`` ``greater`` (primary: is A above B?) or ``two-sided``; ``p_holm_opposite``
the Holm-adjusted p of the opposite one-sided claim (primary rows only); ``verdict`` is set
on the row of the pre-registered test of each primary hypothesis.
"""

PRIMARY = "primary"
EXPLORATORY = "exploratory"
PRIMARY_TESTS = (WILCOXON, T_TEST)
PAIRINGS = ("seeds", "images")
LEVEL = 0.95
RESULTS_NEEDED = ("dataset", "partition", "setup", "method", "seed", "miou", "status")
EXAMPLES = 3
"""How many differing image names an error message shows."""

ImageReader = Callable[[Path], pd.Series]


def _read_results(path: Path) -> pd.DataFrame:
    """The runs with status ok from ``results.csv``."""
    if not path.is_file():
        raise FussbenchError(f"{path} does not exist: run `fussbench collect` first")
    results = pd.read_csv(path)
    missing = [column for column in RESULTS_NEEDED if column not in results.columns]
    if missing:
        raise FussbenchError(
            f"{path} lacks the columns {missing}: rerun `fussbench collect` to rewrite it"
        )
    ok = results[results["status"] == "ok"]
    duplicated = ok[ok.duplicated(["setup", "method", "seed"])]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        raise FussbenchError(
            f"{path} lists {first.setup}/{first.method}/seed{first.seed} more than once: "
            "rerun `fussbench collect` to rewrite it"
        )
    return ok


def images_csv(runs_dir: Path, setup: str, method: str, seed: int) -> Path:
    """Where a run's per-image mIoU lives."""
    return run_dir(runs_dir, setup, method, seed) / "images.csv"


def _read_images(path: Path) -> pd.Series:
    """Per-image mIoU of one run, indexed by image name, shape (n_images,)."""
    if not path.is_file():
        raise FussbenchError(
            f"{path} does not exist although results.csv lists the run as ok: rerun that "
            "method with `fussbench federate`, or rerun `fussbench collect`"
        )
    table = pd.read_csv(path, dtype={"image": str})
    if list(table.columns) != ["image", "miou"]:
        raise FussbenchError(f"{path} must have the header `image,miou`, not {list(table.columns)}")
    if table["image"].duplicated().any():
        repeated = table.loc[table["image"].duplicated(), "image"].iloc[0]
        raise FussbenchError(f"{path} lists the image {repeated!r} more than once: rerun the run")
    return table.set_index("image")["miou"].astype(np.float64)


def _check_same_images(path_a: Path, a: pd.Index, path_b: Path, b: pd.Index) -> None:
    """Raise unless the image names ``a`` (from ``path_a``) and ``b`` (from ``path_b``) match."""
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if not only_a and not only_b:
        return
    raise FussbenchError(
        f"{path_a} ({len(a)} images) and {path_b} ({len(b)} images) evaluate different "
        f"images: {len(only_a)} only in the first (e.g. {only_a[:EXAMPLES]}), {len(only_b)} "
        f"only in the second (e.g. {only_b[:EXAMPLES]}); rerun both methods on the same "
        "evaluation split"
    )


def _method_images(
    read: ImageReader, runs_dir: Path, setup: str, method: str, seeds: list[int]
) -> tuple[Path, pd.Series]:
    """The first seed's ``images.csv`` and each image's mIoU averaged over ``seeds``.

    ``seeds`` is non-empty; the Series has shape (n_images,), indexed by image name.
    """
    paths = [images_csv(runs_dir, setup, method, seed) for seed in seeds]
    tables = [read(path) for path in paths]
    for path, table in zip(paths[1:], tables[1:], strict=True):
        _check_same_images(paths[0], tables[0].index, path, table.index)
    return paths[0], pd.concat(tables, axis=1).mean(axis=1)


def _pairs(
    read: ImageReader,
    runs_dir: Path,
    setup: str,
    miou: pd.DataFrame,
    pair: tuple[str, str],
    pairing: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Paired mIoU of ``pair`` = (a, b), each of shape (n,), under ``pairing``.

    ``miou`` is the setup's final mIoU, seeds × methods, NaN where a run is not ok. Images
    whose mIoU is NaN (no labelled pixels) are left out of the ``images`` pairing.
    """
    both = miou[list(pair)].dropna()
    if pairing == "seeds":
        return both[pair[0]].to_numpy(), both[pair[1]].to_numpy()
    seeds = [int(seed) for seed in both.index]
    if not seeds:
        return np.empty(0), np.empty(0)
    path_a, images_a = _method_images(read, runs_dir, setup, pair[0], seeds)
    path_b, images_b = _method_images(read, runs_dir, setup, pair[1], seeds)
    _check_same_images(path_a, images_a.index, path_b, images_b.index)
    paired = pd.concat([images_a, images_b.reindex(images_a.index)], axis=1).dropna()
    return paired.iloc[:, 0].to_numpy(), paired.iloc[:, 1].to_numpy()


def _rows(
    a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int, alternative: str
) -> list[dict[str, object]]:
    """The summary and one row per test of the paired samples ``a``, ``b`` (shape (n,))."""
    diffs = a - b
    mean = float(diffs.mean()) if diffs.size else None
    low, high = (None, None)
    if diffs.size > 1:
        low, high = bootstrap_mean_ci(diffs, n_resamples, seed, LEVEL)
    summary = {"n_pairs": diffs.size, "mean_diff": mean, "ci_low": low, "ci_high": high}
    return [
        {**summary, "test": result.test, "p_value": result.p_value, "note": result.note}
        for result in paired_tests(a, b, alternative)
    ]


def _setup_rows(
    read: ImageReader,
    runs_dir: Path,
    ok: pd.DataFrame,
    n_resamples: int,
    seed: int,
    primary_pairs: set[frozenset[str]],
) -> list[dict[str, object]]:
    """Every exploratory comparison × pairing × test of one setup; ``ok`` is its ok runs.

    Pairs in ``primary_pairs`` are primary hypotheses of this setup and are left out of the
    seed pairing (the image pairing never tests a primary hypothesis).
    """
    first = ok.iloc[0]
    where = {"dataset": first.dataset, "partition": first.partition, "setup": first.setup}
    family = {"family": EXPLORATORY, "hypothesis": "", "alternative": TWO_SIDED, "verdict": ""}
    miou = _miou(ok)
    rows = []
    for pairing in PAIRINGS:
        for pair in comparisons(list(ok["method"])):
            if pairing == "seeds" and frozenset(pair) in primary_pairs:
                continue
            a, b = _pairs(read, runs_dir, first.setup, miou, pair, pairing)
            names = {"method_a": pair[0], "method_b": pair[1], "pairing": pairing}
            rows.extend(
                {**family, **where, **names, **row}
                for row in _rows(a, b, n_resamples, seed, TWO_SIDED)
            )
    return rows


def _miou(ok: pd.DataFrame) -> pd.DataFrame:
    """Final mIoU of one setup's ok runs, seeds × methods, NaN where a run is not ok."""
    return ok.pivot(index="seed", columns="method", values="miou").sort_index()


def _target_rows(
    target: Target, ok: pd.DataFrame, n_resamples: int, seed: int, test: str
) -> list[dict[str, object]]:
    """The rows of one primary hypothesis on one setup: one per test, or a single "not run"
    row of the pre-registered ``test``. ``ok`` holds every ok run of the results.

    Each row carries ``p_opposite`` (the one-sided p of B > A) and ``nonzero`` (non-zero
    differences), which :func:`_primary_holm` uses and drops.
    """
    runs = ok[ok["setup"] == target.setup]
    first = runs.iloc[0] if len(runs) else None
    row: dict[str, Any] = {
        "family": PRIMARY,
        "hypothesis": target.hypothesis.id,
        "dataset": (target.hypothesis.dataset or "") if first is None else first.dataset,
        "partition": "" if first is None else first.partition,
        "setup": target.setup,
        "method_a": target.method_a,
        "method_b": target.method_b,
        "pairing": "seeds",
        "alternative": GREATER,
        "verdict": "",
    }
    if target.missing:
        untested = {"n_pairs": 0, "test": test, "p_opposite": None, "nonzero": 0}
        return [{**row, **untested, "verdict": NOT_RUN, "note": target.missing}]
    both = _miou(runs)[[target.method_a, target.method_b]].dropna()
    a, b = both[target.method_a].to_numpy(), both[target.method_b].to_numpy()
    opposite = {result.test: result.p_value for result in paired_tests(a, b, LESS)}
    nonzero = int(np.count_nonzero(a - b))
    return [
        {**row, **tested, "p_opposite": opposite[tested["test"]], "nonzero": nonzero}
        for tested in _rows(a, b, n_resamples, seed, GREATER)
    ]


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _unreachable_note(nonzero: int, best: float, alpha: float) -> str:
    """The note of a hypothesis whose best possible Holm-adjusted Wilcoxon p is ``best``."""
    if best < alpha:
        return ""
    return (
        f"cannot reach alpha = {alpha:g} with {nonzero} pairs: the smallest one-sided "
        f"Wilcoxon p is 1/2^{nonzero} = {format_p(2.0**-nonzero)}, at best {format_p(best)} "
        "after Holm"
    )


def _primary_holm(
    frame: pd.DataFrame, targets_found: Sequence[Target], test: str, alpha: float
) -> pd.DataFrame:
    """The primary rows of :func:`_target_rows` with Holm over the whole family (per test,
    both directions), the verdict on each row of the pre-registered ``test``, and a note
    where ``n`` pairs cannot reach ``alpha``."""
    frame = frame.copy()
    run = frame["verdict"] != NOT_RUN
    for _, group in frame[run].groupby("test", sort=False):
        frame.loc[group.index, "p_holm"] = holm_whole_family(list(group["p_value"]))
        frame.loc[group.index, "p_holm_opposite"] = holm_whole_family(list(group["p_opposite"]))
    deciding = frame[run & (frame["test"] == test)]
    nonzero = list(deciding["nonzero"].astype(int))
    # only the Wilcoxon test has a floor; the t-test can reach any p
    best = best_holm_wilcoxon(nonzero) if test == WILCOXON else np.zeros(len(nonzero))
    for (index, row), best_p in zip(deciding.iterrows(), best, strict=True):
        frame.loc[index, "verdict"] = verdict(row["p_holm"], row["p_holm_opposite"], alpha)
        unreachable = _unreachable_note(int(row["nonzero"]), best_p, alpha)
        frame.loc[index, "note"] = _join(row["note"], unreachable)
    choices = {(t.hypothesis.id, t.setup): t.choice for t in targets_found}
    for index, row in frame[run].iterrows():
        frame.loc[index, "note"] = _join(choices[(row["hypothesis"], row["setup"])], row["note"])
    return frame


def _with_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``p_holm``: Holm over the rows of the same setup, pairing and test."""
    frame = frame.copy()
    frame["p_holm"] = np.nan
    for _, group in frame.groupby(["setup", "pairing", "test"], sort=False):
        frame.loc[group.index, "p_holm"] = holm(group["p_value"].to_numpy(dtype=np.float64))
    return frame


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """``rows`` as a table with every column of :data:`COLUMNS` (plus any helper columns),
    numbers as float64 (NaN where missing) and text as str."""
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    numbers = ["mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "p_holm_opposite"]
    frame = frame.astype({name: np.float64 for name in numbers})
    return frame.fillna({"note": "", "verdict": "", "hypothesis": ""})


# --- significance.md ------------------------------------------------------------------------


def _p_cell(row: pd.Series | None) -> str:
    if row is None or np.isnan(row["p_value"]):
        return MISSING
    return f"{format_p(row['p_value'])} ({format_p(row['p_holm'])})"


def _diff_cell(row: pd.Series) -> str:
    if np.isnan(row["mean_diff"]):
        return MISSING
    if np.isnan(row["ci_low"]):
        return f"{row['mean_diff']:+.2f}"
    return f"{row['mean_diff']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"


def _note_cell(tests: dict[str, pd.Series]) -> str:
    notes = {name: row["note"] for name, row in tests.items() if row["note"]}
    if len(set(notes.values())) == 1 and len(notes) == len(tests):
        return next(iter(notes.values()))
    return "; ".join(f"{name}: {note}" for name, note in notes.items())


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _primary_table(group: pd.DataFrame) -> list[str]:
    """Markdown lines of the primary family: one line per hypothesis and setup."""
    lines = [
        "| hypothesis | setup | claim (A > B) | pairs | mean diff [95% CI] | "
        "Wilcoxon p (Holm) | t-test p (Holm) | verdict | note |",
        "| --- | --- | --- | ---: | --- | --- | --- | --- | --- |",
    ]
    keys = ["hypothesis", "setup", "method_a", "method_b"]
    for (name, setup, method_a, method_b), rows in group.groupby(keys, sort=False):
        tests = {row["test"]: row for _, row in rows.iterrows()}
        first = rows.iloc[0]
        cells = [
            name,
            setup or MISSING,
            f"{method_a} > {method_b}",
            str(first["n_pairs"]),
            _diff_cell(first),
            _p_cell(tests.get(WILCOXON)),
            _p_cell(tests.get(T_TEST)),
            "".join(rows["verdict"]),
            _note_cell(tests),
        ]
        lines.append(_line(cells))
    return lines


def _exploratory_table(group: pd.DataFrame) -> list[str]:
    """Markdown lines of one setup and pairing: one line per comparison."""
    lines = [
        "| A | B | pairs | mean diff [95% CI] | Wilcoxon p (Holm) | t-test p (Holm) | note |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    for (method_a, method_b), rows in group.groupby(["method_a", "method_b"], sort=False):
        tests = {row["test"]: row for _, row in rows.iterrows()}
        first = rows.iloc[0]
        cells = [
            method_a,
            method_b,
            str(first["n_pairs"]),
            _diff_cell(first),
            _p_cell(tests[WILCOXON]),
            _p_cell(tests[T_TEST]),
            _note_cell(tests),
        ]
        lines.append(_line(cells))
    return lines


def _primary_text(primary: pd.DataFrame, test: str, alpha: float) -> str:
    """The paragraph above the primary table."""
    tested = primary[(primary["verdict"] != NOT_RUN) & (primary["test"] == test)]
    tokens = "; ".join(
        f"`{token}` is whichever of {' / '.join(methods)} has the higher mean mIoU over the "
        "seeds of that setup, chosen on the same results it is then tested on (a choice that "
        "favours the claim)"
        for token, methods in TOKENS.items()
    )
    return (
        "Fixed in `stats.primary` (params.yaml) before any result existed. Each hypothesis "
        "claims that A has a higher final mIoU than B, so both tests are **one-sided** "
        "(alternative: A − B > 0), paired over the seeds both methods ran. The "
        f"pre-registered {test} test decides; the other is shown for information. Holm's "
        f"correction runs over all {len(tested)} primary hypotheses that were run, across "
        "setups: one family (a hypothesis run with too few pairs to test counts as p = 1). "
        f"Verdict: **supported** when the Holm-adjusted one-sided p is below α = {alpha:g}; "
        "**not supported** when the same test of the opposite claim (B > A), Holm-adjusted "
        "over the same family, is below α; **inconclusive** otherwise; **not run** when the "
        f"results lack a setup or method. {tokens}. With n non-zero differences the one-sided "
        "exact Wilcoxon p cannot go below 1/2^n; the note says when no outcome of that many "
        "pairs could reach α after Holm."
    )


EXPLORATORY_TEXT = (
    "Every other comparison: each federated method against `local` and against `fedavg`, "
    "and the FedCC variants against each other, on paired mIoU (difference A − B, in mIoU "
    "points) with two **two-sided** tests: the Wilcoxon signed-rank test (zero differences "
    "dropped; exact null distribution for small samples) and the paired t-test. The "
    "Holm-Bonferroni correction (in brackets) runs over all comparisons of one setup, "
    "pairing and test. Pairing `seeds` pairs the final mIoU of the seeds both methods ran "
    "(a primary hypothesis is not repeated there); pairing `images` pairs each evaluation "
    "image's mIoU, averaged over those seeds (images without labelled pixels left out). The "
    "two answer different questions: seeds ask whether a method wins across training "
    "randomness; images ask whether it wins across the evaluation images of one split, "
    "which share one training and are not independent draws, so their tiny p-values "
    "overstate certainty about a new run. Bounds and reference rows (centralized, kmeans, "
    "kmeans_local, majority) are not tested."
)


def markdown(
    frame: pd.DataFrame, budget: str, n_resamples: int, seed: int, test: str, alpha: float
) -> str:
    """``significance.md``: the budget, the primary family with its verdicts, then one
    exploratory table per setup and pairing."""
    primary = frame[frame["family"] == PRIMARY]
    exploratory = frame[frame["family"] == EXPLORATORY]
    lines = [
        "# Significance of mIoU differences between methods",
        "",
        budget,
        "",
        "The 95% CI is a percentile bootstrap of the mean difference A − B in mIoU points "
        f"({n_resamples} resamples, seed {seed}).",
        "",
        "## Primary hypotheses (pre-registered, one-sided)",
        "",
    ]
    if len(primary):
        lines += [_primary_text(primary, test, alpha), "", *_primary_table(primary)]
    else:
        lines.append("None: `stats.primary` in params.yaml is empty.")
    lines += ["", "## Exploratory comparisons (two-sided)", "", EXPLORATORY_TEXT]
    for (setup, pairing), group in exploratory.groupby(["setup", "pairing"], sort=False):
        lines += ["", f"### {setup}, paired by {pairing}", "", *_exploratory_table(group)]
    return "\n".join(lines) + "\n"


# --- the stage ------------------------------------------------------------------------------


def _check_settings(test: str, alpha: float) -> None:
    if test not in PRIMARY_TESTS:
        raise FussbenchError(f"stats.primary_test must be one of {PRIMARY_TESTS}, got {test!r}")
    if not 0.0 < alpha < 1.0:
        raise FussbenchError(f"stats.alpha must lie strictly between 0 and 1, got {alpha}")


def _primary_frame(
    ok: pd.DataFrame,
    hypotheses: Sequence[Mapping[str, Any]],
    n_resamples: int,
    seed: int,
    test: str,
    alpha: float,
) -> tuple[pd.DataFrame, list[Target]]:
    """The primary rows (helper columns dropped) and the targets they test."""
    datasets = dict(zip(ok["setup"], ok["dataset"], strict=True))
    means = {
        setup: runs.groupby("method")["miou"].mean().to_dict()
        for setup, runs in ok.groupby("setup")
    }
    found = targets(parse_primary(hypotheses), datasets, means)
    rows = [row for target in found for row in _target_rows(target, ok, n_resamples, seed, test)]
    frame = _primary_holm(_frame(rows), found, test, alpha) if rows else _frame([])
    return frame[COLUMNS], found


def run(
    results_csv: Path,
    runs_dir: Path,
    out_dir: Path,
    n_resamples: int = 10_000,
    seed: int = 0,
    primary: Sequence[Mapping[str, Any]] = (),
    primary_test: str = WILCOXON,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Test the primary hypotheses and every exploratory comparison of every setup in
    ``results_csv``; write ``significance.csv`` and ``significance.md`` into ``out_dir``;
    return the table (columns ``COLUMNS``, primary rows first).

    Args:
        primary: the entries of ``stats.primary`` (:func:`fussbench.stats.primary.parse_primary`).
        primary_test: the pre-registered test whose Holm-adjusted p gives the verdicts.
        alpha: the significance level of the verdicts.
    """
    _check_settings(primary_test, alpha)
    ok = _read_results(Path(results_csv))
    primary_rows, found = _primary_frame(ok, primary, n_resamples, seed, primary_test, alpha)
    read = functools.cache(_read_images)
    rows = []
    for setup, setup_runs in ok.groupby("setup", sort=False):
        tested = {
            frozenset((t.method_a, t.method_b)) for t in found if t.setup == setup and not t.missing
        }
        rows.extend(_setup_rows(read, Path(runs_dir), setup_runs, n_resamples, seed, tested))
    parts = [primary_rows] if len(primary_rows) else []
    if rows:
        parts.append(_with_holm(_frame(rows))[COLUMNS])
    frame = pd.concat(parts, ignore_index=True) if parts else _frame([])[COLUMNS]
    seeds = sorted(set(ok["seed"].astype(int)))
    budget = budget_line(ok, list(pd.unique(ok["setup"])), seeds, names("reference"))
    out_dir = Path(out_dir)
    write_text(out_dir / "significance.csv", frame.to_csv(index=False))
    text = markdown(frame, budget, n_resamples, seed, primary_test, alpha)
    write_text(out_dir / "significance.md", text)
    return frame
