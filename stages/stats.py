"""Stage ``stats``: paired significance tests between methods, per setup.

Reads ``results.csv`` (from ``collect``) and each run's ``images.csv``; writes
``significance.csv`` and ``significance.md``. Two pairings: ``seeds`` pairs the final mIoU
of the seeds both methods ran, ``images`` pairs each evaluation image's mIoU averaged over
those seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fussbench.atomic import write_text
from fussbench.errors import FussbenchError
from fussbench.stats.comparisons import comparisons
from fussbench.stats.tests import T_TEST, WILCOXON, bootstrap_mean_ci, holm, paired_tests

COLUMNS = [
    "dataset",
    "partition",
    "setup",
    "method_a",
    "method_b",
    "pairing",
    "n_pairs",
    "mean_diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
    "note",
]
"""Columns of ``significance.csv``: one row per comparison, pairing and test."""

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
    return runs_dir / setup / method / f"seed{seed}" / "images.csv"


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


def _rows(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> list[dict[str, object]]:
    """The summary and one row per test of the paired samples ``a``, ``b`` (shape (n,))."""
    diffs = a - b
    mean = float(diffs.mean()) if diffs.size else None
    low, high = (None, None)
    if diffs.size > 1:
        low, high = bootstrap_mean_ci(diffs, n_resamples, seed, LEVEL)
    summary = {"n_pairs": diffs.size, "mean_diff": mean, "ci_low": low, "ci_high": high}
    return [
        {**summary, "test": result.test, "p_value": result.p_value, "note": result.note}
        for result in paired_tests(a, b)
    ]


def _setup_rows(
    read: ImageReader, runs_dir: Path, ok: pd.DataFrame, n_resamples: int, seed: int
) -> list[dict[str, object]]:
    """Every comparison × pairing × test of one setup; ``ok`` is its ok runs."""
    first = ok.iloc[0]
    where = {"dataset": first.dataset, "partition": first.partition, "setup": first.setup}
    miou = ok.pivot(index="seed", columns="method", values="miou").sort_index()
    family = comparisons(list(ok["method"]))
    rows = []
    for pairing in PAIRINGS:
        for pair in family:
            a, b = _pairs(read, runs_dir, first.setup, miou, pair, pairing)
            names = {"method_a": pair[0], "method_b": pair[1], "pairing": pairing}
            rows.extend({**where, **names, **row} for row in _rows(a, b, n_resamples, seed))
    return rows


def _with_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``p_holm``: Holm over the rows of the same setup, pairing and test."""
    frame = frame.copy()
    frame["p_holm"] = np.nan
    for _, group in frame.groupby(["setup", "pairing", "test"], sort=False):
        frame.loc[group.index, "p_holm"] = holm(group["p_value"].to_numpy(dtype=np.float64))
    return frame


def format_p(p: float) -> str:
    """A p-value to 3 significant digits, "< 0.001" below that; "–" when missing."""
    if np.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def _p_cell(row: pd.Series) -> str:
    if np.isnan(row["p_value"]):
        return "–"
    return f"{format_p(row['p_value'])} ({format_p(row['p_holm'])})"


def _diff_cell(row: pd.Series) -> str:
    if np.isnan(row["mean_diff"]):
        return "–"
    if np.isnan(row["ci_low"]):
        return f"{row['mean_diff']:+.2f}"
    return f"{row['mean_diff']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"


def _note_cell(tests: dict[str, pd.Series]) -> str:
    notes = {name: row["note"] for name, row in tests.items() if row["note"]}
    if len(set(notes.values())) == 1 and len(notes) == len(tests):
        return next(iter(notes.values()))
    return "; ".join(f"{name}: {note}" for name, note in notes.items())


def _markdown_table(group: pd.DataFrame) -> list[str]:
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
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(frame: pd.DataFrame, n_resamples: int, seed: int) -> str:
    """``significance.md``: an explanation, then one table per setup and pairing."""
    lines = [
        "# Significance of mIoU differences between methods",
        "",
        "Each row tests method A against method B on paired mIoU (difference A − B, in mIoU "
        "points) with two two-sided tests: the Wilcoxon signed-rank test (zero differences "
        "dropped; exact null distribution for small samples) and the paired t-test. The "
        "Holm-Bonferroni correction (in brackets) runs over all comparisons of one setup, "
        "pairing and test. The 95% CI is a percentile bootstrap of the mean difference "
        f"({n_resamples} resamples, seed {seed}). Pairing `seeds` pairs the final mIoU of "
        "the seeds both methods ran; pairing `images` pairs each evaluation image's mIoU, "
        "averaged over those seeds (images without labelled pixels left out). The two "
        "answer different questions: seeds ask whether a method wins across training "
        "randomness; images ask whether it wins across the evaluation images of one split, "
        "which share one training and are not independent draws, so their tiny p-values "
        "overstate certainty about a new run. Bounds and reference rows (centralized, "
        "kmeans, kmeans_local, majority) are not tested.",
    ]
    for (setup, pairing), group in frame.groupby(["setup", "pairing"], sort=False):
        lines += ["", f"## {setup}, paired by {pairing}", "", *_markdown_table(group)]
    return "\n".join(lines) + "\n"


def run(
    results_csv: Path, runs_dir: Path, out_dir: Path, n_resamples: int = 10_000, seed: int = 0
) -> pd.DataFrame:
    """Test every comparison of every setup in ``results_csv``; write ``significance.csv``
    and ``significance.md`` into ``out_dir``; return the table (columns ``COLUMNS``)."""
    ok = _read_results(Path(results_csv))
    read = functools.cache(_read_images)
    rows = []
    for _, setup_runs in ok.groupby("setup", sort=False):
        rows.extend(_setup_rows(read, Path(runs_dir), setup_runs, n_resamples, seed))
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_holm"])
    frame = frame.astype({name: np.float64 for name in ("mean_diff", "ci_low", "ci_high")})
    frame["p_value"] = frame["p_value"].astype(np.float64)
    frame = _with_holm(frame)[COLUMNS]
    out_dir = Path(out_dir)
    write_text(out_dir / "significance.csv", frame.to_csv(index=False))
    write_text(out_dir / "significance.md", markdown(frame, n_resamples, seed))
    return frame
