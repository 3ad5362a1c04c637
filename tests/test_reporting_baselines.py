"""The plain comparison study's report and the study hypotheses, on hand-made records
whose answers are known."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fussbench.errors import FussbenchError
from fussbench.params import Params, StatsParams, parse_params
from fussbench.reporting.comparison import comparison_report, method_table
from fussbench.reporting.study_hypotheses import hypothesis_rows, parse_hypotheses
from fussbench.studies.study import KEYS, ROUNDS

SEEDS = range(6)


def records() -> pd.DataFrame:
    """On setup ``a`` (labels) ``iterative`` is 2 above ``once``; on ``b`` (no labels)
    they tie up to noise; ``local`` is 5 below everywhere."""
    rng = np.random.default_rng(0)
    rows = []
    for setup, gap, label_skew in (("a", 2.0, 0.25), ("b", 0.0, None)):
        for seed in SEEDS:
            base = 25.0 + rng.normal(0, 1.0)  # shared by a seed's methods: pairing removes it
            for method, shift in (("iterative", gap), ("once", 0.0), ("local", -5.0)):
                rows.append(
                    dict(
                        variant="plain",
                        setup=setup,
                        method=method,
                        seed=seed,
                        miou=base + shift + rng.normal(0, 0.05),
                        label_skew_js=label_skew,
                        feature_skew_cosine=0.1,
                    )
                )
    return pd.DataFrame(rows)


def test_beats_pairs_by_seed_within_the_named_setup():
    hypotheses = parse_hypotheses(
        [
            {"id": "B1", "claim": "beats", "setup": "a", "a": "iterative", "b": "once"},
            {"id": "B2", "claim": "beats", "setup": "a", "a": "once", "b": "iterative"},
            {"id": "B3", "claim": "beats", "setup": "b", "a": "iterative", "b": "once"},
        ]
    )
    table = hypothesis_rows(hypotheses, records(), StatsParams(), records()).set_index("id")
    assert table.loc["B1", "verdict"] == "supported"
    assert table.loc["B1", "difference"] == pytest.approx(2.0, abs=0.1)
    assert table.loc["B2", "verdict"] == "not supported"
    assert table.loc["B3", "verdict"] == "inconclusive"
    assert (table["pairs"] == 6).all()


def test_a_claim_without_its_keys_or_with_a_stray_margin_is_refused():
    with pytest.raises(FussbenchError, match="lacks variant"):
        parse_hypotheses([{"id": "R", "claim": "keeps_more", "a": "x", "b": "y"}])
    with pytest.raises(FussbenchError, match="only a non_inferior claim takes a margin"):
        parse_hypotheses([{"id": "B", "claim": "beats", "a": "x", "b": "y", "margin": 1}])
    keeps = parse_hypotheses(
        [{"id": "R", "claim": "keeps_more", "variant": "v", "a": "x", "b": "y"}]
    )
    with pytest.raises(FussbenchError, match="reference variant"):
        hypothesis_rows(keeps, records(), StatsParams(), records())


def test_the_table_pairs_every_method_with_the_reference():
    table = method_table(records(), ["iterative", "once", "local"], "iterative", StatsParams())
    row = table.set_index(["setup", "method"]).loc[("a", "local")]
    assert row["seeds"] == 6
    assert float(row["difference"].split()[0]) == pytest.approx(-7.0, abs=0.1)
    assert table.set_index(["setup", "method"]).loc[("a", "iterative"), "difference"] == "—"


def test_the_report_shows_each_setups_skew_and_the_verdicts(tmp_path):
    params = parse_params(
        {
            "reports_dir": str(tmp_path),
            "study": {
                "name": "baselines",
                "setups": ["a", "b"],
                "methods": ["iterative", "once", "local"],
                "seeds": list(SEEDS),
                "reference": "iterative",
                "hypotheses": [
                    {"id": "B1", "claim": "beats", "setup": "a", "a": "iterative", "b": "once"}
                ],
            },
        }
    )
    folder = comparison_report(params, records())
    text = (folder / "baselines.md").read_text()
    assert "36 of 36 runs recorded" in text
    assert "## a: label skew (JS) 0.250, feature skew 0.100" in text
    assert "## b: label skew (JS) —, feature skew 0.100" in text
    assert "| B1 | iterative beats once on a | 6 |" in text
    assert pd.read_csv(folder / "hypotheses.csv")["verdict"].tolist() == ["supported"]
    assert len(pd.read_csv(folder / "baselines.csv")) == 6


def test_b_variant_takes_bs_rows_from_its_own_variant():
    rows = records()
    rows["variant"] = np.where(rows["method"] == "local", "none", "eps8")
    hypotheses = parse_hypotheses(
        [
            {"id": "P1", "claim": "beats", "variant": "eps8", "a": "once", "b": "local"},
            {
                "id": "P2",
                "claim": "beats",
                "variant": "eps8",
                "a": "once",
                "b": "local",
                "b_variant": "none",
                "setup": "a",
            },
        ]
    )
    table = hypothesis_rows(hypotheses, rows, StatsParams(), rows).set_index("id")
    assert table.loc["P1", "pairs"] == 0  # local never runs under eps8
    assert table.loc["P2", "pairs"] == 6
    assert table.loc["P2", "difference"] == pytest.approx(5.0, abs=0.1)
    assert table.loc["P2", "verdict"] == "supported"
    assert table.loc["P2", "claim"] == "under eps8, once beats local (local under none) on a"


def test_b_variant_needs_a_variant_and_no_keeps_more_claim():
    with pytest.raises(FussbenchError, match="drop b_variant"):
        parse_hypotheses(
            [
                {
                    "id": "R",
                    "claim": "keeps_more",
                    "variant": "v",
                    "a": "x",
                    "b": "y",
                    "b_variant": "w",
                }
            ]
        )
    with pytest.raises(FussbenchError, match="lacks variant"):
        parse_hypotheses([{"id": "P", "claim": "beats", "a": "x", "b": "y", "b_variant": "w"}])


def fedcc_records(kmeans_shift: float) -> pd.DataFrame:
    """Setup ``a``: ``fedcc_maximin`` 3 above ``local`` every seed, ``fedcc_kmeans``
    ``kmeans_shift`` above ``local``."""
    rows = records()
    local = rows[(rows["method"] == "local") & (rows["setup"] == "a")]
    fedcc = [
        local.assign(method=method, miou=local["miou"] + shift)
        for method, shift in (("fedcc_kmeans", kmeans_shift), ("fedcc_maximin", 3.0))
    ]
    return pd.concat([rows, *fedcc], ignore_index=True)


BETTER = {"id": "H3", "claim": "beats", "setup": "a", "a": "better_fedcc", "b": "local"}


@pytest.mark.parametrize(
    ("kmeans_shift", "chosen", "difference"),
    [(1.0, "fedcc_maximin", 3.0), (4.0, "fedcc_kmeans", 4.0), (3.0, "fedcc_kmeans", 3.0)],
)
def test_better_fedcc_resolves_to_the_higher_mean_on_the_same_records(
    kmeans_shift, chosen, difference
):
    rows = fedcc_records(kmeans_shift)
    table = hypothesis_rows(parse_hypotheses([BETTER]), rows, StatsParams(), rows)
    row = table.set_index("id").loc["H3"]
    assert row["claim"] == f"better_fedcc ({chosen}) beats local on a"
    assert row["difference"] == pytest.approx(difference)
    assert row["pairs"] == 6 and row["verdict"] == "supported"


def test_better_fedcc_as_b_and_each_setup_resolved_on_its_own_rows():
    rows = fedcc_records(1.0)
    on_b = fedcc_records(4.0)
    on_b = on_b[on_b["method"].str.startswith("fedcc") & (on_b["setup"] == "a")]
    rows = pd.concat([rows, on_b.assign(setup="b")], ignore_index=True)
    against = {"id": "X", "claim": "beats", "a": "local", "b": "better_fedcc"}
    table = hypothesis_rows(parse_hypotheses([against]), rows, StatsParams(), rows).set_index("id")
    assert (
        table.loc["X", "claim"]
        == "local beats better_fedcc (fedcc_maximin on a, fedcc_kmeans on b)"
    )
    assert table.loc["X", "pairs"] == 12
    assert table.loc["X", "verdict"] == "not supported"
    with pytest.raises(FussbenchError, match="needs methods, not the token 'better_fedcc'"):
        parse_hypotheses([{**against, "claim": "keeps_more", "variant": "v"}])


def test_no_records_read_not_run_without_a_plan_and_pending_with_one(tmp_path):
    empty = pd.DataFrame({key: pd.Series(dtype=object) for key in KEYS})
    hypotheses = [
        {**BETTER, "setup": "camvid_domain"},
        {"id": "C2", "claim": "non_inferior", "a": "once", "b": "iterative", "margin": 1.0},
    ]
    table = hypothesis_rows(parse_hypotheses(hypotheses), empty, StatsParams(), empty)
    assert table["verdict"].tolist() == ["not run", "not run"]
    assert table["pairs"].tolist() == [0, 0]
    methods = ["local", "fedcc_kmeans", "fedcc_maximin", "once", "iterative"]
    params = parse_params(
        {
            "reports_dir": str(tmp_path),
            "study": {"name": "baselines", "methods": methods, "hypotheses": hypotheses},
        }
    )
    text = (comparison_report(params, empty) / "baselines.md").read_text()
    assert "0 of 5 runs recorded" in text
    assert (
        "| H3 | better_fedcc beats local on camvid_domain | 0 | — | — "
        "| pending (0 of 1 planned pairs) |"
    ) in text


def test_verdicts_wait_until_every_planned_pair_is_recorded():
    planned = records()
    partial = planned[~((planned["method"] == "once") & (planned["seed"] == 5))]
    hypotheses = parse_hypotheses(
        [
            {"id": "B1", "claim": "beats", "setup": "a", "a": "iterative", "b": "once"},
            {"id": "B4", "claim": "beats", "setup": "a", "a": "iterative", "b": "local"},
        ]
    )
    waiting = hypothesis_rows(hypotheses, partial, StatsParams(), planned).set_index("id")
    assert waiting.loc["B1", "verdict"] == "pending (5 of 6 planned pairs)"
    assert waiting.loc["B4", "verdict"] == "pending (6 of 6 planned pairs)"  # its family is not
    assert waiting[["p", "p_opposite", "p_holm", "p_holm_opposite"]].isna().all().all()
    assert waiting.loc["B1", "difference"] == pytest.approx(2.0, abs=0.1)  # shown meanwhile
    decided = hypothesis_rows(hypotheses, planned, StatsParams(), planned).set_index("id")
    assert decided["verdict"].tolist() == ["supported", "supported"]
    assert (decided["p_holm"] < 0.05).all()


def two_method_study(folder: Path, **changes: object) -> Params:
    """A study of ``iterative`` and ``once`` on camvid_domain, seeds 0-5, reporting into
    ``folder``, with ``changes`` to its ``study:``."""
    study = {
        "name": "baselines",
        "setups": ["camvid_domain"],
        "methods": ["iterative", "once"],
        "seeds": list(SEEDS),
    }
    return parse_params({"reports_dir": str(folder), "study": {**study, **changes}})


def first_setups_two_methods() -> pd.DataFrame:
    """:func:`records` of setup ``a`` without ``local``, relabelled camvid_domain."""
    rows = records()
    rows = rows[(rows["setup"] == "a") & (rows["method"] != "local")]
    return rows.assign(setup="camvid_domain")


def test_a_partial_study_report_prints_pending_and_no_p(tmp_path):
    claim = {"id": "B1", "claim": "beats", "a": "iterative", "b": "once"}
    params = two_method_study(tmp_path, hypotheses=[claim])
    rows = first_setups_two_methods()
    folder = comparison_report(params, rows[rows["seed"] < 4])
    text = (folder / "baselines.md").read_text()
    assert "8 of 12 runs recorded" in text
    assert text.splitlines()[-1].endswith("| — | pending (4 of 6 planned pairs) |")
    assert pd.read_csv(folder / "hypotheses.csv")["p_holm"].isna().all()


def test_the_report_shows_each_methods_miou_after_every_round(tmp_path):
    params = two_method_study(tmp_path)
    rows = [
        {"variant": "plain", "setup": "camvid_domain", "method": "iterative", "seed": seed,
         "round": r, "miou": 10.0 * r + seed, "accuracy": 50.0}
        for seed in SEEDS for r in (1, 2, 3)
    ] + [
        {"variant": "plain", "setup": "camvid_domain", "method": "once", "seed": seed,
         "round": 1, "miou": 5.0, "accuracy": 50.0}
        for seed in SEEDS
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / ROUNDS, index=False)
    finals = first_setups_two_methods()
    lines = (comparison_report(params, finals) / "baselines.md").read_text().splitlines()
    assert "| method | runs | round 1 | round 2 | round 3 | last round gain |" in lines
    assert "| iterative | 6 | 12.50 | 22.50 | 32.50 | +10.00 [+10.00, +10.00] |" in lines
    assert "| once | 6 | 5.00 | — | — | — |" in lines
    assert "![mIoU after each round on camvid_domain](rounds_camvid_domain.png)" in lines
    assert (tmp_path / "rounds_camvid_domain.png").stat().st_size > 0
    (tmp_path / ROUNDS).unlink()
    text = (comparison_report(params, finals) / "baselines.md").read_text()
    assert "after each round" not in text


def test_verify_rewrites_the_by_round_table_from_the_per_round_records(tmp_path, monkeypatch):
    from cli_workspace import REPO, invoke

    from fussbench.verification.studies import check_study

    folder = tmp_path / "reports" / "paper_converged"
    folder.mkdir(parents=True)
    finals = first_setups_two_methods().replace({"iterative": "fedcc_kmeans", "once": "fedavg"})
    finals.to_csv(folder / "runs.csv", index=False)
    per_round = pd.concat(
        [finals.assign(round=r, miou=finals["miou"] - 3 + r)[[*KEYS, "round", "miou"]]
         for r in (1, 2, 3)]
    ).assign(accuracy=50.0)  # fmt: skip
    per_round.to_csv(folder / ROUNDS, index=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = invoke("study", "--preset", "paper_converged", "--report-only")
    assert result.exit_code == 0, result.output
    assert "## mIoU after each round" in (folder / "paper_converged.md").read_text()
    assert check_study(Path("params.yaml"), Path("reports/paper_converged")) == []
    per_round.assign(miou=per_round["miou"] + 1).to_csv(folder / ROUNDS, index=False)
    assert check_study(Path("params.yaml"), Path("reports/paper_converged")) == [
        "reports/paper_converged/paper_converged.md: differs from what "
        "reports/paper_converged/runs.csv and reports/paper_converged/rounds.csv give"
    ]
