"""The written tables against the same tables rebuilt from the runs (``fussbench verify
--tables``)."""

from __future__ import annotations

from pathlib import Path


def table_mismatches(
    reports_dir: Path,
    runs_dir: Path,
    methods: list[str],
    setups: list[str],
    seeds: list[int],
) -> list[str]:
    """Differences between the written tables and the same tables rebuilt from the runs.

    ``results.csv`` is recomputed from every run's ``metrics.json``, and the main table
    from that; both must equal what ``collect`` and ``report`` wrote in ``reports_dir``.

    Returns:
        One line per difference; empty when the tables agree with the runs.
    """
    import io

    import pandas as pd

    from fussbench.reporting.results import collect_runs
    from fussbench.reporting.tables import main_table

    problems: list[str] = []
    recomputed = collect_runs(runs_dir, setups, methods, seeds)
    written_results = reports_dir / "results.csv"
    if not written_results.is_file():
        return [f"{written_results} does not exist: run `fussbench collect`"]
    key = ["setup", "method", "seed"]
    written = pd.read_csv(written_results).set_index(key).sort_index()
    expected = recomputed.set_index(key).sort_index()
    for metric in ("miou", "accuracy", "status"):
        if not written[metric].equals(expected[metric].astype(written[metric].dtype)):
            problems.append(f"{written_results}: column {metric} differs from runs/*/metrics.json")
    table = main_table(recomputed, methods, setups, seeds)
    markdown = reports_dir / "tables" / "main.md"
    if not markdown.is_file() or table.markdown not in markdown.read_text(encoding="utf-8"):
        problems.append(f"{markdown} differs from the main table rebuilt from the runs")
    numbers = reports_dir / "tables" / "main.csv"
    if not numbers.is_file() or not pd.read_csv(numbers).equals(
        pd.read_csv(io.StringIO(table.csv))
    ):
        problems.append(f"{numbers} differs from the main table rebuilt from the runs")
    return problems
