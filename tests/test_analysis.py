"""The analyses run after profiles: `fussbench versus` (two profiles paired by seed),
`fussbench winners` (fedcc_auto's choices) and `fussbench cluster-counts`, on results,
metrics and rounds files written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_workspace import REPO, invoke

from fussbench.analysis.versus import compare_profiles, parse_pair, read_results
from fussbench.analysis.winners import winner_counts
from fussbench.errors import FussbenchError

PARAMS = str(REPO / "params.yaml")


def _rows(setup: str, method: str, mious: list[float], **extra) -> list[dict]:
    """results.csv rows of one method, seeds 0.., 3 rounds of 30 s each."""
    return [
        {
            "setup": setup,
            "method": method,
            "seed": seed,
            "miou": miou,
            "status": "ok",
            "rounds": 3,
            "seconds": 90.0,
            "bytes_down_per_client_round": 1000.0,
        }
        | extra
        for seed, miou in enumerate(mious)
    ]


@pytest.fixture
def profiles(tmp_path: Path) -> tuple[Path, Path]:
    """Profile A (seeds 0-5: fedcc_auto, fedcc_matched) and B (seeds 0-9: fedcc_kmeans,
    whose mean over seeds 0-5 is above fedcc_maximin's but below it over 0-9)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    auto = [30.0, 31.0, 29.5, 30.5, 31.5, 30.0]
    rows_a = _rows("s1", "fedcc_auto", auto, seconds=120.0, bytes_down_per_client_round=2000.0)
    rows_a += _rows("s1", "fedcc_matched", [20.0] * 6)
    rows_a.append({**rows_a[0], "seed": 6, "status": "failed"})  # not counted
    rows_b = _rows("s1", "fedcc_kmeans", [29.0, 30.0, 29.0, 30.0, 30.0, 29.0] + [20.0] * 4)
    rows_b += _rows("s1", "fedcc_maximin", [28.0] * 10)
    rows_b += _rows("s2", "fedcc_kmeans", [1.0] * 10)  # a setup A did not run
    pd.DataFrame(rows_a).to_csv(a / "results.csv", index=False)
    pd.DataFrame(rows_b).to_csv(b / "results.csv", index=False)
    return a, b


def test_pairs_are_matched_by_seed_and_best_and_worst_use_shared_seeds(profiles):
    a, b = profiles
    pairs = [
        parse_pair("fedcc_auto=fedcc_kmeans"),
        parse_pair("fedcc_auto=best:fedcc_kmeans,fedcc_maximin,fedcc_matched"),
        parse_pair("fedcc_auto=worst:fedcc_kmeans,fedcc_maximin,fedcc_matched"),
    ]
    table = compare_profiles(read_results(a), read_results(b), pairs, n_resamples=500)
    assert list(table["setup"]) == ["s1"] * 3
    assert list(table["b"]) == ["fedcc_kmeans", "best: fedcc_kmeans", "worst: fedcc_matched"]
    assert list(table["n"]) == [6, 6, 6]
    auto = np.array([30.0, 31.0, 29.5, 30.5, 31.5, 30.0])
    kmeans = np.array([29.0, 30.0, 29.0, 30.0, 30.0, 29.0])
    assert table.loc[0, "diff"] == pytest.approx((auto - kmeans).mean())
    assert table.loc[2, "diff"] == pytest.approx(auto.mean() - 20.0)
    assert table.loc[0, "ci_low"] <= table.loc[0, "diff"] <= table.loc[0, "ci_high"]
    assert (table["p_holm"] >= table["p_wilcoxon"] - 1e-12).all()
    assert table.loc[0, "s_per_round_a"] == pytest.approx(40.0)
    assert table.loc[0, "s_per_round_b"] == pytest.approx(30.0)
    assert table.loc[0, "bytes_down_a"] == 2000.0


def test_bad_pairs_and_missing_results_are_named(tmp_path):
    assert parse_pair("fedcc_kmeans") == parse_pair("fedcc_kmeans=fedcc_kmeans")
    with pytest.raises(FussbenchError, match="unknown selector 'top'"):
        parse_pair("fedcc_auto=top:fedcc_kmeans")
    with pytest.raises(FussbenchError, match="name the methods after 'best:'"):
        parse_pair("fedcc_auto=best:")
    with pytest.raises(FussbenchError, match="write A_METHOD=B_METHOD"):
        parse_pair("=fedavg")
    with pytest.raises(FussbenchError, match=r"results\.csv not found \(nor a study's runs\.csv\)"):
        read_results(tmp_path)


def test_a_one_variant_studys_records_stand_in_for_results(profiles, tmp_path):
    _, b = profiles
    study = tmp_path / "study"
    study.mkdir()
    rows = pd.DataFrame(_rows("s1", "fedcc_kmeans", [31.0, 32.0, 31.0, 32.0, 32.0, 31.0]))
    rows.drop(columns="status").assign(variant="plain").to_csv(study / "runs.csv", index=False)
    table = compare_profiles(read_results(study), read_results(b), [parse_pair("fedcc_kmeans")])
    assert table.loc[0, "n"] == 6
    assert table.loc[0, "diff"] == pytest.approx(2.0)
    two = pd.concat([rows.assign(variant="plain"), rows.assign(variant="noisy")])
    two.drop(columns="status").to_csv(study / "runs.csv", index=False)
    with pytest.raises(FussbenchError, match="holds the variants noisy, plain"):
        read_results(study)


def test_the_command_writes_markdown_and_csv(profiles, tmp_path):
    a, b = profiles
    out = tmp_path / "out" / "versus"
    result = invoke(
        "versus", str(a), str(b), "--pair", "fedcc_auto=best:fedcc_kmeans,fedcc_maximin",
        "--out", str(out), "--params", PARAMS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| s1 | fedcc_auto | best: fedcc_kmeans | 6 |" in result.output
    assert (out.with_suffix(".md")).read_text() in result.output
    assert pd.read_csv(out.with_suffix(".csv"))["n"].tolist() == [6]
    nothing = invoke("versus", str(a), str(b), "--pair", "fedavg", "--params", PARAMS)
    assert nothing.exit_code == 2 and "no --pair method" in nothing.output


def _auto_run(folder: Path, winners: list[str]) -> None:
    folder.mkdir(parents=True)
    selection = [
        {"round": r + 1, "winner": name, "scores": {}, "voters": 3}
        for r, name in enumerate(winners)
    ]
    (folder / "metrics.json").write_text(json.dumps({"auto_selection": selection}))


def test_winners_are_counted_per_round_and_drawn(tmp_path):
    runs = tmp_path / "runs"
    _auto_run(runs / "s1/fedcc_auto/seed0", ["fedcc_kmeans", "fedcc_maximin"])
    _auto_run(runs / "s1/fedcc_auto/seed1", ["fedcc_kmeans", "fedcc_kmeans"])
    counts = winner_counts(sorted((runs / "s1/fedcc_auto").glob("seed*/metrics.json")))
    assert counts.to_dict("records") == [
        {"round": 1, "winner": "fedcc_kmeans", "runs": 2},
        {"round": 2, "winner": "fedcc_kmeans", "runs": 1},
        {"round": 2, "winner": "fedcc_maximin", "runs": 1},
    ]
    out = tmp_path / "fig" / "winners"
    result = invoke("winners", "--setup", "s1", "--runs", str(runs), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(out.with_suffix(".csv"))["runs"].sum() == 4
    empty = invoke("winners", "--setup", "s2", "--runs", str(runs), "--out", str(out))
    assert empty.exit_code == 2 and "no fedcc_auto run recorded a choice" in empty.output


def test_cluster_counts_gather_each_seed_and_round(tmp_path):
    method = tmp_path / "runs/s1/fedcc_kmeans"
    for seed, global_k in ((0, [11, 9]), (1, [12, 12])):
        (method / f"seed{seed}").mkdir(parents=True)
        pd.DataFrame(
            {
                "round": [1, 2],
                "miou": [10.0, 11.0],
                "n_clusters_global": global_k,
                "client0_n_clusters": [7, global_k[0]],
                "client1_n_clusters": [2, global_k[0]],
            }
        ).to_csv(method / f"seed{seed}/rounds.csv", index=False)
    out = tmp_path / "counts"
    result = invoke(
        "cluster-counts", "--setup", "s1", "--runs", str(tmp_path / "runs"), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table.columns) == ["seed", "round", "client0", "client1", "global"]
    assert table["global"].tolist() == [11, 9, 12, 12]
    assert "| 0 | 1 | 7 | 2 | 11 |" in result.output
    empty = invoke("cluster-counts", "--setup", "s2", "--runs", str(tmp_path / "runs"))
    assert empty.exit_code == 2 and "no seed*/rounds.csv with cluster counts" in empty.output
