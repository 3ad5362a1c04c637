"""The privacy-utility study's report on hand-made records whose numbers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from fussbench.params import parse_params
from fussbench.reporting.privacy import privacy_report
from fussbench.reporting.privacy_levels import privacy_levels
from fussbench.studies.reports import study_report

SEEDS = range(4)
SETUPS = {"camvid_domain": {"dataset": "camvid"}, "camvid_embedding": {"dataset": "camvid"}}
METHODS = ["local", "fedavg.uniform", "fedcc_kmeans"]
LEVELS = {"eps1": (1.0, 3.0), "eps8": (8.0, 0.8), "eps_inf": (math.inf, 0.0)}
"""variant -> (ε spent, σ)."""


def records() -> pd.DataFrame:
    """fedavg at 20 + ε-dependent gain and fedcc_kmeans 3 above it, under every level but
    eps1 for fedcc_kmeans (missing); local at 18 under ``none`` only."""
    rng = np.random.default_rng(0)
    rows = []
    for setup in SETUPS:
        for seed in SEEDS:
            rows.append(dict(variant="none", setup=setup, method="local", seed=seed, miou=18.0))
            for variant, (epsilon, sigma) in LEVELS.items():
                gain = min(epsilon, 10.0)
                for method, mechanism, shift in (
                    ("fedavg.uniform", "central", 0.0),
                    ("fedcc_kmeans", "local", 3.0),
                ):
                    if (variant, method) == ("eps1", "fedcc_kmeans"):
                        continue
                    rows.append(
                        dict(
                            variant=variant,
                            setup=setup,
                            method=method,
                            seed=seed,
                            miou=20.0 + gain + shift + rng.normal(0, 0.1),
                            privacy=mechanism,
                            epsilon=epsilon,
                            noise_multiplier=sigma,
                            sample_rate=0.5,
                        )
                    )
    return pd.DataFrame(rows)


def params(tmp_path, hypotheses=()):
    return parse_params(
        {
            "reports_dir": str(tmp_path),
            "setups": SETUPS,
            "study": {
                "name": "privacy",
                "setups": list(SETUPS),
                "methods": METHODS,
                "seeds": list(SEEDS),
                "variants": {
                    "eps1": ["privacy.target_epsilon=1"],
                    "eps8": ["privacy.target_epsilon=8"],
                    "eps_inf": ["privacy.noise_multiplier=0"],
                    "none": [],
                },
                "method_overrides": {
                    "fedavg.uniform": ["privacy.mechanism=central"],
                    "fedcc_kmeans": ["privacy.mechanism=local"],
                },
                "skip": [
                    "eps1/local",
                    "eps8/local",
                    "eps_inf/local",
                    "none/fedavg.uniform",
                    "none/fedcc_kmeans",
                ],
                "hypotheses": list(hypotheses),
            },
        }
    )


def row_of(text: str, method: str, setup: str = "camvid_domain") -> list[str]:
    """The cells of ``method``'s row in ``setup``'s table of the report ``text``."""
    section = text.split(f"## {setup}\n")[1].split("\n## ")[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| {method} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def mean(cell: str) -> float:
    """The mean mIoU of a level's cell."""
    return float(cell.split()[0])


def test_the_table_comes_from_the_records(tmp_path):
    text = (privacy_report(params(tmp_path), records()) / "privacy.md").read_text()
    assert "| method | mechanism | eps1 | eps8 | eps_inf | none |" in text
    fedavg = row_of(text, "fedavg.uniform")
    assert fedavg[1] == "central"
    assert mean(fedavg[2]) == pytest.approx(21.0, abs=0.2) and "(ε 1.00, σ 3.00)" in fedavg[2]
    assert "(ε ∞, σ 0.00)" in fedavg[4] and fedavg[5] == ""
    kmeans = row_of(text, "fedcc_kmeans")
    assert kmeans[1] == "local" and kmeans[2] == ""  # never ran under eps1
    assert mean(kmeans[3]) == pytest.approx(31.0, abs=0.2)
    local = row_of(text, "local")
    assert local[1] == "none (releases nothing)" and local[2:5] == ["", "", ""]
    assert local[5] == "18.00 ± 0.00 (ε 0.00)"
    changed = records()
    changed.loc[changed["method"] == "local", "miou"] = 17.0
    again = (privacy_report(params(tmp_path), changed) / "privacy.md").read_text()
    assert row_of(again, "local")[5] == "17.00 ± 0.00 (ε 0.00)"


def test_the_csv_holds_each_level_in_the_studys_orders(tmp_path):
    folder = privacy_report(params(tmp_path), records())
    table = pd.read_csv(folder / "privacy.csv")
    assert table["method"].tolist()[:4] == ["local", *["fedavg.uniform"] * 3]
    assert table["variant"].tolist()[:4] == ["none", "eps1", "eps8", "eps_inf"]
    assert len(table) == 2 * (1 + 3 + 2)
    inf = table[(table["variant"] == "eps_inf") & (table["method"] == "fedcc_kmeans")].iloc[0]
    assert math.isinf(inf["epsilon"]) and inf["noise_multiplier"] == 0.0


def test_the_header_counts_runs_and_the_figure_is_written(tmp_path):
    folder = privacy_report(params(tmp_path), records().iloc[:-1])
    text = (folder / "privacy.md").read_text()
    assert "4 seeds (0-3); 47 of 56 runs recorded" in text
    assert (folder / "privacy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## What the server sees" in text and "| `fedcc_kmeans` |" in text


def test_the_figure_and_table_are_the_same_on_a_rerun(tmp_path):
    first = privacy_report(params(tmp_path / "a"), records())
    second = privacy_report(params(tmp_path / "b"), records())
    for name in ("privacy.md", "privacy.csv", "privacy.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_hypotheses_pair_a_level_with_local_under_none(tmp_path):
    hypotheses = [
        {
            "id": "P1",
            "claim": "beats",
            "variant": "eps8",
            "a": "fedavg.uniform",
            "b": "local",
            "b_variant": "none",
        }
    ]
    folder = privacy_report(params(tmp_path, hypotheses), records())
    text = (folder / "privacy.md").read_text()
    assert "| P1 | under eps8, fedavg.uniform beats local (local under none) | 8 |" in text
    assert pd.read_csv(folder / "hypotheses.csv")["verdict"].tolist() == ["supported"]


def test_no_records_writes_the_header_only(tmp_path):
    empty = pd.DataFrame({key: pd.Series(dtype=object) for key in ("variant", "setup")})
    hypotheses = [{"id": "P1", "claim": "beats", "a": "fedavg.uniform", "b": "local"}]
    folder = privacy_report(params(tmp_path, hypotheses), empty)
    assert "0 of 56 runs recorded" in (folder / "privacy.md").read_text()
    assert not (folder / "privacy.png").exists()


def test_levels_leave_out_a_method_missing_from_a_variant():
    levels = privacy_levels(records(), ["camvid_domain"], METHODS, ["eps1", "eps8", "none"])
    assert set(levels.loc[levels["method"] == "fedcc_kmeans", "variant"]) == {"eps8"}
    assert levels.loc[levels["method"] == "local", "epsilon"].tolist() == [0.0]


def test_the_study_named_privacy_writes_this_report(tmp_path):
    assert study_report(params(tmp_path)) is privacy_report


@pytest.fixture(autouse=True)
def _quiet_matplotlib(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
