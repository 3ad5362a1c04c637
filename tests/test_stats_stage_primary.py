"""The primary family of the ``stats`` stage (``write_significance``): one-sided tests, one Holm
family, verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fussbench.errors import FussbenchError
from fussbench.stats.significance import write_significance

IMAGES = [f"img_{i:02d}" for i in range(8)]
SHIFT = np.linspace(-3.0, 3.0, len(IMAGES))
"""Each image's mIoU is its run's mIoU plus this shift and some noise (both of mean 0), so
results.csv agrees."""

PRIMARY = [
    {"id": "H1", "dataset": "camvid", "a": "fedcc_kmeans", "b": "fedavg"},
    {"id": "H2", "dataset": "camvid", "a": "fedcc_maximin", "b": "fedavg"},
    {"id": "H3", "dataset": "camvid", "a": "better_fedcc", "b": "local"},
    {"id": "H4", "dataset": "magnetic_tile", "a": "fedcc_maximin.uniform", "b": "fedprox"},
]


def design(n_seeds: int) -> dict[str, tuple[str, dict[str, np.ndarray]]]:
    """Per setup, its dataset and each method's final mIoU by seed, shape (n_seeds,).

    camvid_a: fedcc_kmeans beats fedavg on every seed, fedcc_maximin loses to it on every
    seed. camvid_b: fedcc_kmeans against fedavg changes sign from seed to seed, fedcc_maximin
    beats it on every seed. tile: no fedprox run.
    """
    jitter = np.random.default_rng(0).uniform(0.1, 0.5, size=(8, n_seeds))
    signs = np.resize([1.0, -1.0], n_seeds)
    return {
        "camvid_a": (
            "camvid",
            {
                "local": 20 + jitter[0],
                "fedavg": 21 + jitter[1],
                "fedcc_kmeans": 23 + jitter[2],
                "fedcc_maximin": 19 + jitter[3],
            },
        ),
        "camvid_b": (
            "camvid",
            {
                "local": 20 + jitter[4],
                "fedavg": 21 + jitter[5],
                "fedcc_kmeans": 21 + jitter[5] + signs,
                "fedcc_maximin": 23 + jitter[6],
            },
        ),
        "tile": (
            "magnetic_tile",
            {"local": 30 + jitter[7], "fedcc_maximin.uniform": 31 + jitter[0]},
        ),
    }


def make_tree(root: Path, n_seeds: int) -> None:
    """``root/results.csv`` (3 rounds × 50 steps) and ``root/runs/*/*/seed*/images.csv``."""
    rows = []
    for setup, (dataset, methods) in design(n_seeds).items():
        for method, mious in methods.items():
            for seed, miou in enumerate(mious):
                path = root / "runs" / setup / method / f"seed{seed}" / "images.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                noise = np.random.default_rng([seed, len(method)]).normal(0, 0.2, len(IMAGES))
                per_image = miou + SHIFT + noise - noise.mean()
                pd.DataFrame({"image": IMAGES, "miou": per_image}).to_csv(path, index=False)
                rows.append(
                    {"dataset": dataset, "partition": "p", "setup": setup, "method": method,
                     "seed": seed, "miou": miou, "rounds": 3, "local_steps": 50, "status": "ok"}
                )  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)


def stage(root: Path, **options) -> pd.DataFrame:
    options = {"primary": PRIMARY, **options}
    return write_significance(
        root / "results.csv", root / "runs", root / "out", n_resamples=200, **options
    )


def decided(frame: pd.DataFrame, hypothesis: str, setup: str, test: str = "wilcoxon"):
    rows = frame[
        (frame.family == "primary")
        & (frame.hypothesis == hypothesis)
        & (frame.setup == setup)
        & (frame.test == test)
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_primary_rows_come_first_one_sided_and_paired_over_seeds(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path)
    primary = frame[frame.family == "primary"]
    assert list(frame.family[: len(primary)]) == ["primary"] * len(primary)
    assert (primary.alternative == "greater").all() and (primary.pairing == "seeds").all()
    keys = list(dict.fromkeys(zip(primary.hypothesis, primary.setup, strict=True)))
    assert keys == [
        ("H1", "camvid_a"), ("H1", "camvid_b"), ("H2", "camvid_a"), ("H2", "camvid_b"),
        ("H3", "camvid_a"), ("H3", "camvid_b"), ("H4", "tile"),
    ]  # fmt: skip
    h1 = decided(frame, "H1", "camvid_a")
    assert h1.p_value == pytest.approx(1 / 2**10)  # all 10 differences positive, exact
    assert h1.n_pairs == 10 and h1.mean_diff > 0
    on_disk = pd.read_csv(tmp_path / "out/significance.csv", keep_default_na=False)
    assert list(on_disk.columns) == list(frame.columns)
    assert "nan" not in (tmp_path / "out/significance.csv").read_text().lower()


def test_holm_runs_over_the_whole_primary_family(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path)
    for test in ("wilcoxon", "t-test"):
        rows = frame[
            (frame.family == "primary") & (frame.test == test) & (frame.verdict != "not run")
        ]
        assert len(rows) == 6  # H1-H3 on both CamVid setups; H4 was not run
        smallest = rows.loc[rows.p_value.idxmin()]
        assert smallest.p_holm == pytest.approx(smallest.p_value * 6)  # not 3: across setups
        assert (rows.p_holm >= rows.p_value).all() and rows.p_holm_opposite.notna().all()


def test_verdicts(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path)
    assert decided(frame, "H1", "camvid_a").verdict == "supported"
    assert decided(frame, "H1", "camvid_b").verdict == "inconclusive"  # signs alternate
    maximin = decided(frame, "H2", "camvid_a")
    assert maximin.verdict == "not supported"  # fedavg wins on every seed
    assert maximin.mean_diff < 0 and maximin.p_holm_opposite < 0.05
    assert decided(frame, "H2", "camvid_b").verdict == "supported"
    assert decided(frame, "H1", "camvid_a", "t-test").verdict == ""  # secondary: no verdict
    tile = decided(frame, "H4", "tile")
    assert tile.verdict == "not run" and tile.note == "fedprox not in the results of tile"
    assert tile.n_pairs == 0 and np.isnan(tile.p_value)


def test_the_better_fedcc_is_chosen_per_setup_and_said_so(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path)
    first, second = decided(frame, "H3", "camvid_a"), decided(frame, "H3", "camvid_b")
    assert (first.method_a, second.method_a) == ("fedcc_kmeans", "fedcc_maximin")
    assert first.note.startswith("better_fedcc = fedcc_kmeans (mean mIoU 23.")
    assert "against fedcc_maximin 19." in first.note
    assert first.verdict == second.verdict == "supported"


def test_six_seeds_cannot_decide_and_the_note_says_so(tmp_path):
    make_tree(tmp_path, 6)
    frame = stage(tmp_path)
    h1 = decided(frame, "H1", "camvid_a")
    assert h1.p_value == pytest.approx(1 / 64) and h1.p_holm >= 0.05
    assert h1.verdict == "inconclusive"
    assert "cannot reach alpha = 0.05 with 6 pairs" in h1.note
    assert "1/2^6 = 0.0156" in h1.note
    assert "cannot reach" not in decided(frame, "H1", "camvid_a", "t-test").note


def test_ten_seeds_can_decide_without_an_unreachable_note(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path)
    assert not frame.note.str.contains("cannot reach").any()


def test_exploratory_rows_leave_out_the_primary_seed_comparisons(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path)
    exploratory = frame[frame.family == "exploratory"]
    assert (exploratory.alternative == "two-sided").all() and (exploratory.verdict == "").all()
    pairs = {
        (pairing, a, b)
        for pairing, a, b in zip(
            exploratory[exploratory.setup == "camvid_a"].pairing,
            exploratory[exploratory.setup == "camvid_a"].method_a,
            exploratory[exploratory.setup == "camvid_a"].method_b,
            strict=True,
        )
    }
    assert ("seeds", "fedcc_kmeans", "fedavg") not in pairs  # H1
    assert ("seeds", "fedcc_kmeans", "local") not in pairs  # H3, better_fedcc resolved
    assert ("images", "fedcc_kmeans", "fedavg") in pairs  # primary is over seeds only
    assert ("seeds", "fedcc_maximin", "local") in pairs
    seeds = exploratory[(exploratory.setup == "camvid_a") & (exploratory.pairing == "seeds")]
    assert len(seeds) == 3 * 2  # 6 comparisons less H1, H2, H3; two tests each


def test_the_t_test_can_be_the_pre_registered_test(tmp_path):
    make_tree(tmp_path, 6)
    frame = stage(tmp_path, primary_test="t-test")
    h1 = decided(frame, "H1", "camvid_a", "t-test")
    assert h1.verdict == "supported"  # the t-test has no 1/2^n floor
    assert decided(frame, "H1", "camvid_a").verdict == ""
    with pytest.raises(FussbenchError, match="stats.primary_test must be one of"):
        stage(tmp_path, primary_test="sign")
    with pytest.raises(FussbenchError, match="stats.alpha must lie strictly between 0 and 1"):
        stage(tmp_path, alpha=5.0)


def test_a_stricter_alpha_changes_the_verdicts(tmp_path):
    make_tree(tmp_path, 10)
    frame = stage(tmp_path, alpha=0.001)
    assert decided(frame, "H1", "camvid_a").verdict == "inconclusive"  # 6/1024 > 0.001
    assert "cannot reach alpha = 0.001 with 10 pairs" in decided(frame, "H1", "camvid_a").note


def test_markdown_starts_with_the_budget_then_the_primary_family(tmp_path):
    make_tree(tmp_path, 10)
    stage(tmp_path)
    lines = (tmp_path / "out/significance.md").read_text().splitlines()
    assert lines[0] == "# Significance of mIoU differences between methods"
    assert lines[2] == "Budget: 3 rounds × 50 local steps per client; 10 seeds (0-9)."
    text = "\n".join(lines)
    assert text.index("## Primary hypotheses") < text.index("## Exploratory comparisons")
    assert "**one-sided**" in text and "**two-sided**" in text
    assert "over all 6 primary hypotheses that were run" in text
    assert "chosen on the same results" in text
    row = next(line for line in lines if line.startswith("| H2 | camvid_a |"))
    assert "| fedcc_maximin > fedavg | 10 |" in row and "| not supported |" in row
    assert "| H4 | tile | fedcc_maximin.uniform > fedprox | 0 |" in text


def test_bad_primary_entries_stop_the_stage(tmp_path):
    make_tree(tmp_path, 3)
    with pytest.raises(FussbenchError, match="unknown key 'side'"):
        stage(tmp_path, primary=[{"dataset": "camvid", "a": "x", "b": "y", "side": "less"}])
