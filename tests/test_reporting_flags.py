"""Collapsed runs and unlabelled setups in the main table: marked, noted, never bold."""

from __future__ import annotations

import io

import pandas as pd

from fussbench.reporting.flags import COLLAPSED_MARK
from fussbench.reporting.tables import main_table


def results(rows: list[tuple]) -> pd.DataFrame:
    """results.csv rows (setup, method, seed, miou, accuracy, labels, collapsed), read back
    from CSV as `fussbench report` reads them."""
    frame = pd.DataFrame(
        [
            {
                "setup": setup,
                "method": method,
                "seed": seed,
                "miou": miou,
                "accuracy": accuracy,
                "labels": labels,
                "collapsed": collapsed,
                "rounds": 1,
                "local_steps": 2,
                "status": "ok",
            }
            for setup, method, seed, miou, accuracy, labels, collapsed in rows
        ]
    )
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


def test_a_collapsed_run_is_marked_and_never_bold():
    frame = results(
        [
            ("tile", "fedavg", 0, 49.5, 99.0, True, True),
            ("tile", "fedcc_kmeans", 0, 40.0, 80.0, True, False),
            ("tile", "majority", 0, 49.5, 99.0, True, None),
        ]
    )
    table = main_table(frame, ["fedavg", "fedcc_kmeans", "majority"], ["tile"], [0])
    rows = {line.split(" | ")[0].strip("| "): line for line in table.markdown.splitlines()}
    assert f"49.5 {COLLAPSED_MARK}" in rows["fedavg"] and "**" not in rows["fedavg"]
    assert "**40.0**" in rows["fedcc_kmeans"]
    assert (
        f"{COLLAPSED_MARK}: collapsed" in table.markdown and "tile/fedavg seed 0" in table.markdown
    )


def test_a_setup_without_labels_says_so():
    frame = results([("mine", "fedavg", 0, None, None, False, False)])
    table = main_table(frame, ["fedavg"], ["mine"], [0])
    assert "nan" not in table.markdown
    assert "No labels were available for mine (no masks)" in table.markdown
