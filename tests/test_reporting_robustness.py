"""The robustness report on hand-made records whose verdicts are known."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fussbench.errors import FussbenchError
from fussbench.params import StatsParams, parse_params
from fussbench.reporting.robustness import robustness_report
from fussbench.reporting.study_hypotheses import hypothesis_rows, parse_hypotheses

SEEDS = range(6)


def records() -> pd.DataFrame:
    """``robust`` loses about 1 mIoU under the fault, ``fragile`` about 6; honest, robust is
    0.2 below fragile; the bad client is 2, named in 5 of the 6 faulty robust runs."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in SEEDS:
        for method, honest, drop in (("robust", 27.0, 1.0), ("fragile", 27.2, 6.0)):
            noise = rng.normal(0, 0.1)
            rows.append(
                dict(
                    variant="honest",
                    setup="s",
                    method=method,
                    seed=seed,
                    miou=honest + noise,
                    suspect_client=0,
                    fault_clients=None,
                )
            )
            rows.append(
                dict(
                    variant="random",
                    setup="s",
                    method=method,
                    seed=seed,
                    miou=honest + noise - drop,
                    suspect_client=2 if seed else 1,
                    fault_clients=2.0,  # as pandas reads a column with blanks
                )
            )
    return pd.DataFrame(rows)


HYPOTHESES = [
    {"id": "R1", "claim": "keeps_more", "variant": "random", "a": "robust", "b": "fragile"},
    {
        "id": "R2",
        "claim": "non_inferior",
        "variant": "honest",
        "a": "robust",
        "b": "fragile",
        "margin": 1.0,
    },
    {"id": "R3", "claim": "keeps_more", "variant": "random", "a": "fragile", "b": "robust"},
]


def test_verdicts_follow_the_records():
    parsed = parse_hypotheses(HYPOTHESES)
    rows = records()
    table = hypothesis_rows(parsed, rows, StatsParams(), rows, reference="honest").set_index("id")
    assert table.loc["R1", "verdict"] == "supported"
    assert table.loc["R1", "difference"] == pytest.approx(5.0, abs=0.3)
    assert table.loc["R2", "verdict"] == "supported"  # 0.2 below, margin 1
    assert table.loc["R3", "verdict"] == "not supported"
    assert (table["pairs"] == 6).all()


def test_the_report_names_the_scenarios_and_counts_detections(tmp_path):
    params = parse_params(
        {
            "reports_dir": str(tmp_path),
            "study": {
                "name": "robustness",
                "setups": ["camvid_domain"],
                "methods": ["fedavg"],
                "seeds": list(SEEDS),
                "variants": {"honest": [], "random": ["faults.scenario=random_centroids"]},
                "hypotheses": HYPOTHESES,
            },
        }
    )
    folder = robustness_report(params, records())
    text = (folder / "robustness.md").read_text()
    assert text.splitlines()[0].startswith("# One bad client: honest (every client honest)")
    assert "random (faults.scenario=random_centroids)" in text.splitlines()[0]
    table = pd.read_csv(folder / "robustness.csv")
    robust = table[(table["scenario"] == "random") & (table["method"] == "robust")].iloc[0]
    assert robust["detected"] == "5 / 6"
    assert robust["drop"].startswith("+1.0")


def test_a_study_without_an_honest_variant_is_refused(tmp_path):
    params = parse_params(
        {"reports_dir": str(tmp_path), "study": {"name": "robustness", "variants": {"a": []}}}
    )
    with pytest.raises(FussbenchError, match="must include 'honest'"):
        robustness_report(params, records())


def test_verify_rewrites_a_study_report_from_its_records(tmp_path, monkeypatch):
    from cli_workspace import REPO, invoke

    from fussbench.verification.studies import check_study, study_folders

    folder = tmp_path / "reports" / "robustness"
    folder.mkdir(parents=True)
    rows = records().assign(
        setup="camvid_domain",
        method=lambda r: r["method"].map({"robust": "fedcc_screened", "fragile": "fedcc_maximin"}),
    )
    rows["variant"] = rows["variant"].replace({"random": "random_centroids"})
    rows.to_csv(folder / "runs.csv", index=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = invoke("study", "--preset", "robustness", "--report-only")
    assert result.exit_code == 0, result.output
    assert study_folders(tmp_path) == [Path("reports/robustness")]
    assert check_study(Path("params.yaml"), Path("reports/robustness")) == []
    report = folder / "robustness.md"
    report.write_text(report.read_text().replace("R1", "R9"))
    assert check_study(Path("params.yaml"), Path("reports/robustness")) == [
        "reports/robustness/robustness.md: differs from what reports/robustness/runs.csv gives"
    ]
